//! The [`EventStore`] impl: topics, publish, and the cursor operations (delegating to
//! [`conn`](crate::conn), [`cursor`](crate::cursor) and [`fetch`](crate::fetch)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::conn::Inner;
use crate::cursor::decode_tokens;
use crate::error::Error;
use crate::keys::{self, Keys};
use crate::options::RedisOptions;
use crate::reply::{self, Status};
use crate::scripts;

/// An [`EventStore`] on Redis Streams. See the crate docs for the mapping and its guarantees.
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
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
        let opts_horizon = opts.max_lease.as_millis() as u64;
        let inner = Arc::new(Inner {
            keys: Keys::new(&opts.key_prefix),
            url,
            opts,
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            closed: CancellationToken::new(),
            horizon_ms: AtomicU64::new(opts_horizon),
            locals: Mutex::new(HashMap::new()),
        });
        inner.check_server().await?;
        inner.agree_horizon().await?;
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

    /// The lease horizon in use: the `max_lease` of the first store that opened this prefix.
    pub fn max_lease(&self) -> Duration {
        Duration::from_millis(self.inner.horizon_ms())
    }
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
        self.inner.cursor_info(consumer).await
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
