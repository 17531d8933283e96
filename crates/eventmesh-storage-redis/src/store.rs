//! The store: connections, the calls every operation shares, and the [`EventStore`] impl.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Error;
use crate::fetch::Local;
use crate::keys::{self, CONSUMER, Keys, StreamId, Token};
use crate::options::RedisOptions;
use crate::reply::{self, Status};
use crate::scripts;

/// The oldest Redis this store runs on (`XAUTOCLAIM` reporting deleted entries, group lag).
const MIN_REDIS_MAJOR: u32 = 7;

/// An [`EventStore`] on Redis Streams. See the crate docs for the mapping and its guarantees.
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: RedisOptions,
    pub(crate) url: String,
    pub(crate) keys: Keys,
    pub(crate) client: Client,
    pub(crate) conn: ConnectionManager,
    /// Idle connections for blocking reads (one per parked fetch while it waits).
    pub(crate) blocking: Mutex<Vec<MultiplexedConnection>>,
    pub(crate) closed: CancellationToken,
    /// Per cursor: wake-ups for fetches parked on this node.
    pub(crate) locals: Mutex<HashMap<(String, String), Arc<Local>>>,
}

impl RedisStore {
    /// Connects to Redis (within `request_timeout`), checks its version and logs how durable
    /// its persistence settings make a publish. The connection reconnects by itself afterwards.
    pub async fn open(opts: RedisOptions) -> StorageResult<RedisStore> {
        opts.validate()?;
        let url = opts.masked_url();
        let client = Client::open(opts.url.as_str())
            .map_err(|e| StorageError::Invalid(format!("redis url `{url}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.request_timeout))
            .set_response_timeout(Some(opts.request_timeout))
            .set_max_delay(Duration::from_secs(2));
        let conn = match tokio::time::timeout(
            opts.request_timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
                return Err(Error::Redis {
                    url,
                    op: "connect",
                    source,
                }
                .into());
            }
            Err(_) => {
                return Err(Error::Timeout {
                    url,
                    op: "connect",
                    after: opts.request_timeout,
                }
                .into());
            }
        };
        let inner = Arc::new(Inner {
            keys: Keys::new(&opts.key_prefix),
            url,
            opts,
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            closed: CancellationToken::new(),
            locals: Mutex::new(HashMap::new()),
        });
        inner.check_server().await?;
        crate::janitor::spawn(&inner);
        info!(
            message = "Redis store opened.",
            url = %inner.url,
            key_prefix = %inner.opts.key_prefix
        );
        Ok(RedisStore { inner })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.opts
    }
}

impl Inner {
    pub(crate) fn ensure_open(&self) -> StorageResult<()> {
        if self.closed.is_cancelled() {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs one request within `request_timeout`.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.opts.request_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(Error::Redis {
                url: self.url.clone(),
                op,
                source,
            }),
            Err(_) => Err(Error::Timeout {
                url: self.url.clone(),
                op,
                after: self.opts.request_timeout,
            }),
        }
    }

    /// Runs a script with keys and arguments; returns its status.
    pub(crate) async fn script(
        &self,
        op: &'static str,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Status, Error> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        let v: Value = self.timed(op, inv.invoke_async(&mut conn)).await?;
        reply::status(op, v)
    }

    pub(crate) async fn cmd<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        self.timed(op, cmd.query_async(&mut conn)).await
    }

    async fn check_server(&self) -> StorageResult<()> {
        let info: String = self.cmd("INFO", redis::cmd("INFO").arg("server")).await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major.is_none_or(|m| m < MIN_REDIS_MAJOR) {
            return Err(StorageError::Invalid(format!(
                "the redis store needs Redis {MIN_REDIS_MAJOR}.0 or newer; {} runs {version}",
                self.url
            )));
        }
        // CONFIG may be disabled (managed Redis): then only say that it could not be checked.
        let config: Result<Vec<String>, _> = self
            .cmd(
                "CONFIG GET",
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("appendonly")
                    .arg("appendfsync"),
            )
            .await;
        match config {
            Ok(kv) => {
                let get = |k: &str| {
                    kv.chunks(2)
                        .find(|c| c.first().is_some_and(|x| x == k))
                        .and_then(|c| c.get(1).cloned())
                        .unwrap_or_default()
                };
                let (aof, fsync) = (get("appendonly"), get("appendfsync"));
                if aof != "yes" || fsync != "always" {
                    warn!(
                        message = "Redis does not fsync every write: an acknowledged publish can be lost if Redis crashes (set appendonly yes, appendfsync always).",
                        url = %self.url,
                        appendonly = %aof,
                        appendfsync = %fsync,
                        redis_version = %version
                    );
                } else {
                    info!(message = "Redis persists every write before answering.", url = %self.url, redis_version = %version);
                }
            }
            Err(error) => {
                warn!(message = "Could not read Redis's persistence settings.", url = %self.url, %error);
            }
        }
        Ok(())
    }

    pub(crate) fn stream(&self, topic: &Topic) -> String {
        self.keys.stream(&topic.to_string())
    }

    /// The wake-up state of a cursor on this node.
    pub(crate) fn local(&self, c: &ConsumerRef) -> Arc<Local> {
        self.locals
            .lock()
            .entry((c.topic.to_string(), keys::group_name(c)))
            .or_default()
            .clone()
    }

    fn forget_local(&self, c: &ConsumerRef) {
        if let Some(l) = self
            .locals
            .lock()
            .remove(&(c.topic.to_string(), keys::group_name(c)))
        {
            l.wake();
        }
    }

    /// The blocking-read connection pool.
    pub(crate) async fn take_blocking(&self) -> Result<MultiplexedConnection, Error> {
        if let Some(c) = self.blocking.lock().pop() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.request_timeout))
            .set_response_timeout(None);
        self.timed(
            "connect",
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
    }

    pub(crate) fn put_blocking(&self, c: MultiplexedConnection) {
        let mut idle = self.blocking.lock();
        if idle.len() < 64 && !self.closed.is_cancelled() {
            idle.push(c);
        }
    }

    /// Moves (or creates) a cursor's group to a start position.
    async fn position(
        &self,
        c: &ConsumerRef,
        start: StartFrom,
        mode: &'static str,
    ) -> StorageResult<()> {
        let (how, id, before) = start_ids(start);
        let topic = c.topic.to_string();
        let (stream, group, member) = (
            self.keys.stream(&topic),
            keys::group_name(c),
            keys::member_entry(c),
        );
        let status = self
            .script(
                mode,
                &scripts::POSITION_SCRIPT,
                &[&self.keys.topics(), &stream, &self.keys.members()],
                &[
                    topic.as_bytes(),
                    group.as_bytes(),
                    how.as_bytes(),
                    id.as_bytes(),
                    before.as_bytes(),
                    member.as_bytes(),
                    mode.as_bytes(),
                ],
            )
            .await?;
        match status {
            Status::Ok(_) => Ok(()),
            Status::NoTopic => Err(StorageError::UnknownTopic(topic)),
            Status::NoGroup => Err(StorageError::UnknownConsumer(c.to_string())),
        }
    }

    /// Re-lets deliveries: a nack (`ms` = its delay) or a lease extension (`ms` = the lease).
    async fn relet(
        &self,
        op: &'static str,
        c: &ConsumerRef,
        tokens: &[Token],
        ms: u64,
    ) -> StorageResult<()> {
        let (stream, group) = (self.stream(&c.topic), keys::group_name(c));
        let (ms, horizon) = (ms.to_string(), self.horizon_ms().to_string());
        let pairs: Vec<(String, String)> = tokens
            .iter()
            .map(|t| (t.id.to_string(), t.count.to_string()))
            .collect();
        let mut args: Vec<&[u8]> = vec![
            group.as_bytes(),
            CONSUMER.as_bytes(),
            ms.as_bytes(),
            horizon.as_bytes(),
        ];
        for (id, count) in &pairs {
            args.push(id.as_bytes());
            args.push(count.as_bytes());
        }
        match self
            .script(op, &scripts::RELET_SCRIPT, &[&stream], &args)
            .await?
        {
            Status::Ok(_) => Ok(()),
            Status::NoTopic | Status::NoGroup => Err(StorageError::UnknownConsumer(c.to_string())),
        }
    }

    pub(crate) fn horizon_ms(&self) -> u64 {
        self.opts.max_lease.as_millis() as u64
    }

    /// A lease or delay in whole milliseconds (rounded up), cut to `max_lease`.
    pub(crate) fn clamp_ms(&self, d: Duration) -> u64 {
        let ms = d.as_micros().div_ceil(1000) as u64;
        ms.min(self.horizon_ms())
    }
}

/// How a start position is passed to the position script: (how, id, the id before it).
fn start_ids(start: StartFrom) -> (&'static str, String, String) {
    match start {
        StartFrom::Earliest => ("id", "0".to_owned(), String::new()),
        StartFrom::Latest => ("id", "$".to_owned(), String::new()),
        StartFrom::Time(t) if t <= 0 => ("id", "0".to_owned(), String::new()),
        // Everything added before millisecond `t` counts as read.
        StartFrom::Time(t) => ("id", format!("{}-{}", t - 1, u64::MAX), String::new()),
        StartFrom::Offset(seq) => {
            let target = StreamId::from_offset(seq);
            let before = target
                .prev()
                .map_or_else(|| "0".to_owned(), |p| p.to_string());
            ("offset", target.to_string(), before)
        }
    }
}

fn decode_tokens(tokens: &[AckToken]) -> StorageResult<Vec<Token>> {
    tokens
        .iter()
        .map(|t| {
            Token::decode(t).ok_or_else(|| {
                StorageError::InvalidToken(format!(
                    "{} bytes that the redis store did not issue",
                    t.0.len()
                ))
            })
        })
        .collect()
}

#[async_trait]
impl EventStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        let s = &self.inner;
        s.ensure_open()?;
        let added: i64 = s
            .cmd(
                "SADD",
                redis::cmd("SADD")
                    .arg(s.keys.topics())
                    .arg(topic.to_string()),
            )
            .await?;
        Ok(added == 1)
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let name = topic.to_string();
        match s
            .script(
                "delete_topic",
                &scripts::DELETE_TOPIC_SCRIPT,
                &[&s.keys.topics(), &s.keys.stream(&name)],
                &[name.as_bytes()],
            )
            .await?
        {
            Status::Ok(_) => {
                s.locals.lock().retain(|(t, _), l| {
                    let keep = *t != name;
                    if !keep {
                        l.wake();
                    }
                    keep
                });
                info!(message = "Topic deleted.", topic = %name);
                Ok(())
            }
            Status::NoTopic | Status::NoGroup => Err(StorageError::UnknownTopic(name)),
        }
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        let s = &self.inner;
        s.ensure_open()?;
        let names: Vec<String> = s
            .cmd("SMEMBERS", redis::cmd("SMEMBERS").arg(s.keys.topics()))
            .await?;
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.cmd("XLEN").arg(s.keys.stream(n));
        }
        let lens: Vec<u64> = if names.is_empty() {
            Vec::new()
        } else {
            let mut conn = s.conn.clone();
            s.timed("XLEN", pipe.query_async(&mut conn)).await?
        };
        let mut out = Vec::with_capacity(names.len());
        for (name, len) in names.iter().zip(lens) {
            match Topic::parse(name) {
                Ok(topic) => out.push(TopicInfo {
                    topic,
                    partitions: 1,
                    retained_events: len,
                    retained_bytes: None,
                }),
                Err(error) => {
                    warn!(message = "Skipping a topic whose name is not valid.", topic = %name, %error)
                }
            }
        }
        Ok(out)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        let s = &self.inner;
        s.ensure_open()?;
        if let Some(r) = records.iter().find(|r| r.topic != *topic) {
            return Err(StorageError::Invalid(format!(
                "a record for topic `{}` in a batch published to `{topic}`",
                r.topic
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let name = topic.to_string();
        let max_len = s.opts.max_len.unwrap_or(0).to_string();
        let encoded: Vec<bytes::Bytes> = records.iter().map(EventRecord::to_bytes).collect();
        let mut args: Vec<&[u8]> = vec![name.as_bytes(), max_len.as_bytes()];
        args.extend(encoded.iter().map(|b| &b[..]));
        let status = s
            .script(
                "publish",
                &scripts::PUBLISH_SCRIPT,
                &[&s.keys.topics(), &s.keys.stream(&name)],
                &args,
            )
            .await?;
        let rest = match status {
            Status::Ok(rest) => rest,
            Status::NoTopic | Status::NoGroup => return Err(StorageError::UnknownTopic(name)),
        };
        let ids = reply::array("publish", rest.into_iter().next().unwrap_or(Value::Nil))?;
        if ids.len() != records.len() {
            return Err(StorageError::Backend(format!(
                "publish of {} records to `{name}` returned {} ids",
                records.len(),
                ids.len()
            )));
        }
        ids.iter()
            .map(|v| {
                let id = reply::id("publish", v)?;
                let seq = id.to_offset().ok_or_else(|| {
                    StorageError::Backend(format!(
                        "stream id {id} of topic `{name}` does not fit an offset (more than 4,194,304 entries in one millisecond?)"
                    ))
                })?;
                Ok(Offset { partition: 0, seq })
            })
            .collect()
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        self.inner.ensure_open()?;
        self.inner.position(consumer, start, "subscribe").await
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let topic = consumer.topic.to_string();
        let (group, member) = (keys::group_name(consumer), keys::member_entry(consumer));
        let status = s
            .script(
                "unsubscribe",
                &scripts::UNSUBSCRIBE_SCRIPT,
                &[&s.keys.topics(), &s.keys.stream(&topic), &s.keys.members()],
                &[topic.as_bytes(), group.as_bytes(), member.as_bytes()],
            )
            .await?;
        s.forget_local(consumer);
        match status {
            Status::Ok(_) => Ok(()),
            Status::NoTopic => Err(StorageError::UnknownTopic(topic)),
            Status::NoGroup => Err(StorageError::UnknownConsumer(consumer.to_string())),
        }
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        crate::fetch::fetch(&self.inner, consumer, max, lease, wait).await
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let tokens = decode_tokens(tokens)?;
        if tokens.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(s.stream(&consumer.topic))
            .arg(keys::group_name(consumer));
        for t in &tokens {
            cmd.arg(t.id.to_string());
        }
        let _acked: i64 = s.cmd("XACK", &cmd).await?;
        Ok(())
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let tokens = decode_tokens(std::slice::from_ref(token))?;
        let ms = s.clamp_ms(delay);
        s.relet("nack", consumer, &tokens, ms).await?;
        s.local(consumer).due_in(Duration::from_millis(ms));
        Ok(())
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let tokens = decode_tokens(tokens)?;
        if tokens.is_empty() {
            return Ok(());
        }
        s.relet("extend_lease", consumer, &tokens, s.clamp_ms(lease))
            .await
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        s.position(consumer, target, "seek").await?;
        s.local(consumer).reset();
        Ok(())
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        let s = &self.inner;
        s.ensure_open()?;
        let group = keys::group_name(consumer);
        let status = s
            .script(
                "cursor_info",
                &scripts::CURSOR_INFO_SCRIPT,
                &[&s.stream(&consumer.topic)],
                &[group.as_bytes()],
            )
            .await?;
        let rest = match status {
            Status::Ok(rest) if rest.len() >= 4 => rest,
            Status::Ok(_) => {
                return Err(StorageError::Backend(
                    "cursor_info: short script reply".to_owned(),
                ));
            }
            Status::NoTopic | Status::NoGroup => {
                return Err(StorageError::UnknownConsumer(consumer.to_string()));
            }
        };
        const OP: &str = "cursor_info";
        let last = reply::id(OP, &rest[0])?;
        let pending = reply::int(OP, &rest[1])?.max(0) as u64;
        let lowest = reply::opt_id(OP, &rest[2])?;
        let lag = reply::opt_int(OP, &rest[3])?;
        let committed = match lowest {
            Some(id) if pending > 0 => id.to_offset().unwrap_or(u64::MAX),
            _ => last.next_offset(),
        };
        Ok(CursorInfo {
            committed: vec![(0, committed)],
            in_flight: pending,
            backlog: lag.map(|l| l.max(0) as u64 + pending),
        })
    }

    async fn health(&self) -> StorageResult<()> {
        let s = &self.inner;
        s.ensure_open()?;
        let pong: String = s.cmd("PING", &redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StorageError::Unavailable(format!(
                "redis at {} answered PING with {pong:?}",
                s.url
            )))
        }
    }

    async fn close(&self) -> StorageResult<()> {
        let s = &self.inner;
        if s.closed.is_cancelled() {
            return Ok(());
        }
        s.closed.cancel();
        s.blocking.lock().clear();
        for l in s.locals.lock().values() {
            l.wake();
        }
        info!(message = "Redis store closed.", url = %s.url);
        Ok(())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Stops the janitor and any parked fetch of this store.
        self.inner.closed.cancel();
    }
}
