//! The [`EventStore`] implementation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use parking_lot::Mutex;

use crate::catalog::{Catalog, Entry};
use crate::conn::Conn;
use crate::error::RabbitError;
use crate::names::Names;
use crate::options::RabbitOptions;
use crate::serve::{Cursor, CursorConfig, CursorError, Role, TOKENS, read_snapshot, state_args};
use crate::stream::{MARKER_TYPE, RECORD_TYPE, Tail, new_key};
use eventmesh_storage::lease_cursor::{Attach, CursorState};

/// The RabbitMQ event store. See the [crate docs](crate).
pub struct RabbitStore {
    opts: RabbitOptions,
    names: Names,
    conn: Arc<Conn>,
    catalog: Catalog,
    writer: u64,
    closed: AtomicBool,
    known: Mutex<HashSet<Topic>>,
    tails: Arc<Mutex<HashMap<Topic, Arc<Tail>>>>,
    cursors: Arc<Mutex<HashMap<ConsumerRef, Arc<Cursor>>>>,
}

impl std::fmt::Debug for RabbitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitStore")
            .field("url", &self.opts.masked_url())
            .field("prefix", &self.opts.prefix)
            .finish_non_exhaustive()
    }
}

fn gone(c: &ConsumerRef) -> StorageError {
    StorageError::UnknownConsumer(c.to_string())
}

impl RabbitStore {
    /// Connects to the broker and declares the catalog stream. Fails with
    /// [`StorageError::Unavailable`] when the broker cannot be reached within `connect_timeout`.
    pub async fn open(opts: RabbitOptions) -> StorageResult<RabbitStore> {
        opts.validate()?;
        let conn = Conn::open(opts.clone()).await?;
        let names = Names::new(&opts.prefix);
        let catalog = Catalog {
            queue: names.catalog(),
        };
        let (_, ch) = conn.channel().await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        conn.bounded(
            "queue.declare (catalog)",
            ch.queue_declare(
                catalog.queue.as_str().into(),
                QueueDeclareOptions::durable(),
                args,
            ),
        )
        .await?;
        let _ = ch.close(200, "opened".into()).await;
        let cursors = Arc::new(Mutex::new(HashMap::new()));
        let tails = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(release_idle(
            Arc::downgrade(&cursors),
            Arc::downgrade(&tails),
            conn.clone(),
            opts.release_idle_after,
        ));
        tracing::info!(message = "RabbitMQ store opened.", url = %opts.masked_url(), prefix = %opts.prefix);
        Ok(RabbitStore {
            names,
            conn,
            catalog,
            writer: rand::random(),
            closed: AtomicBool::new(false),
            known: Mutex::new(HashSet::new()),
            tails,
            cursors,
            opts,
        })
    }

    fn check_open(&self) -> StorageResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether a queue exists (a passive declare on a throwaway channel).
    async fn queue_exists(&self, queue: &str) -> Result<Option<u32>, RabbitError> {
        let (_, ch) = self.conn.channel().await?;
        let r = self
            .conn
            .bounded(
                "queue.declare (passive)",
                ch.queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await;
        match r {
            Ok(q) => {
                let _ = ch.close(200, "probed".into()).await;
                Ok(Some(q.message_count()))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn require_topic(&self, topic: &Topic) -> StorageResult<()> {
        if self.known.lock().contains(topic) {
            return Ok(());
        }
        match self.queue_exists(&self.names.topic(topic)).await? {
            Some(_) => {
                self.known.lock().insert(topic.clone());
                Ok(())
            }
            None => Err(StorageError::UnknownTopic(topic.to_string())),
        }
    }

    fn forget_topic(&self, topic: &Topic) {
        self.known.lock().remove(topic);
    }

    fn tail(&self, topic: &Topic) -> Arc<Tail> {
        self.tails
            .lock()
            .entry(topic.clone())
            .or_insert_with(|| Tail::new(self.names.topic(topic)))
            .clone()
    }

    fn cursor_config(&self, c: &ConsumerRef) -> CursorConfig {
        let expiry = if c.member.is_some() {
            self.opts.member_expiry
        } else {
            self.opts.group_expiry
        };
        CursorConfig {
            state_queue: self.names.state(c),
            lock_queue: self.names.lock(c),
            topic_queue: self.names.topic(&c.topic),
            expiry_ms: u32::try_from(expiry.as_millis()).unwrap_or(u32::MAX),
            prefetch: self.opts.prefetch,
            read_ahead: self.opts.read_ahead,
        }
    }

    /// The local cursor, or one loaded from the broker; `UnknownConsumer`/`UnknownTopic` if none.
    async fn cursor(&self, c: &ConsumerRef) -> StorageResult<Arc<Cursor>> {
        if let Some(cur) = self.cursors.lock().get(c) {
            return Ok(cur.clone());
        }
        if self.queue_exists(&self.names.state(c)).await?.is_none() {
            self.forget_topic(&c.topic);
            self.require_topic(&c.topic).await?;
            return Err(gone(c));
        }
        let cur = Cursor::new(c.clone(), self.cursor_config(c), self.writer, None);
        Ok(self.cursors.lock().entry(c.clone()).or_insert(cur).clone())
    }

    /// Maps a cursor failure; a cursor that is gone is dropped from the local map.
    fn cursor_err(&self, c: &ConsumerRef, e: CursorError) -> StorageError {
        match e {
            CursorError::Gone => {
                self.cursors.lock().remove(c);
                gone(c)
            }
            CursorError::NoTopic => {
                self.cursors.lock().remove(c);
                self.forget_topic(&c.topic);
                StorageError::UnknownTopic(c.topic.to_string())
            }
            CursorError::Rabbit(e) => e.into(),
        }
    }

    /// Publishes a marker to the topic and returns the offset after it: the stream's end.
    async fn end_of(&self, topic: &Topic) -> StorageResult<u64> {
        let tail = self.tail(topic);
        tail.ensure(&self.conn)
            .await
            .map_err(|e| self.topic_err(topic, e))?;
        let key = new_key();
        let rx = tail.expect(&key);
        let props = BasicProperties::default()
            .with_type(MARKER_TYPE.into())
            .with_correlation_id(key.clone().into());
        let sent = self
            .conn
            .publish_confirmed(&self.names.topic(topic), "", b"", props)
            .await;
        let routed = match sent {
            Ok(r) => r,
            Err(e) => {
                tail.forget(&[key]);
                return Err(self.topic_err(topic, e));
            }
        };
        if !routed {
            tail.forget(&[key]);
            self.forget_topic(topic);
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        match tokio::time::timeout(self.opts.confirm_timeout, rx).await {
            Ok(Ok(o)) => Ok(o + 1),
            _ => {
                tail.forget(&[key]);
                Err(StorageError::Unavailable(format!(
                    "the end of topic `{topic}` could not be read within {} ms",
                    self.opts.confirm_timeout.as_millis()
                )))
            }
        }
    }

    fn topic_err(&self, topic: &Topic, e: RabbitError) -> StorageError {
        if e.is_not_found() {
            self.forget_topic(topic);
            StorageError::UnknownTopic(topic.to_string())
        } else {
            e.into()
        }
    }

    /// Where `start` puts a new or moved cursor.
    async fn resolve(&self, topic: &Topic, start: StartFrom) -> StorageResult<Attach> {
        Ok(match start {
            StartFrom::Earliest => Attach::Offset(0),
            StartFrom::Latest => Attach::Offset(self.end_of(topic).await?),
            StartFrom::Offset(n) => Attach::Offset(n.min(self.end_of(topic).await?)),
            StartFrom::Time(t) => Attach::Time(t),
        })
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), RabbitError> {
        let (_, ch) = self.conn.channel().await?;
        match self
            .conn
            .bounded(
                "queue.delete",
                ch.queue_delete(queue.into(), Default::default()),
            )
            .await
        {
            Ok(_) => {
                let _ = ch.close(200, "deleted".into()).await;
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn publish_batch(
        &self,
        topic: &Topic,
        tail: &Tail,
        records: &[EventRecord],
        keys: &[String],
    ) -> Result<Vec<Offset>, StorageError> {
        let exchange = self.names.topic(topic);
        let receivers: Vec<_> = keys.iter().map(|k| tail.expect(k)).collect();
        let ch = self.conn.publisher().await?;
        let mut confirms = Vec::with_capacity(records.len());
        for (r, key) in records.iter().zip(keys) {
            let props = BasicProperties::default()
                .with_type(RECORD_TYPE.into())
                .with_content_type("application/vnd.eventmesh.record".into())
                .with_message_id(r.id.to_string().into())
                .with_correlation_id(key.as_str().into())
                .with_timestamp(u64::try_from(r.ingest_time_ms.div_euclid(1000)).unwrap_or(0))
                .with_delivery_mode(2);
            let confirm = self
                .conn
                .bounded(
                    "basic.publish",
                    ch.basic_publish(
                        exchange.as_str().into(),
                        "".into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &r.to_bytes(),
                        props,
                    ),
                )
                .await
                .map_err(|e| self.topic_err(topic, e))?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            match self
                .conn
                .bounded("publisher confirm", confirm)
                .await
                .map_err(|e| self.topic_err(topic, e))?
            {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_)) => {
                    self.forget_topic(topic);
                    return Err(StorageError::UnknownTopic(topic.to_string()));
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(RabbitError::Refused(exchange.clone()).into());
                }
            }
        }
        let mut offsets = Vec::with_capacity(receivers.len());
        for rx in receivers {
            match tokio::time::timeout(self.opts.confirm_timeout, rx).await {
                Ok(Ok(seq)) => offsets.push(Offset { partition: 0, seq }),
                Ok(Err(_)) => {
                    return Err(StorageError::Unavailable(format!(
                        "RabbitMQ confirmed the publish to `{topic}` but its offsets could not be read (connection lost)"
                    )));
                }
                Err(_) => {
                    return Err(StorageError::Unavailable(format!(
                        "the offsets of a confirmed publish to `{topic}` were not read within {} ms",
                        self.opts.confirm_timeout.as_millis()
                    )));
                }
            }
        }
        Ok(offsets)
    }
}

/// Tail readers unused this long stop.
const TAIL_IDLE: Duration = Duration::from_secs(60);

/// Every few seconds, releases the cursors this store no longer uses and stops tail readers of
/// topics it no longer publishes to.
async fn release_idle(
    cursors: std::sync::Weak<Mutex<HashMap<ConsumerRef, Arc<Cursor>>>>,
    tails: std::sync::Weak<Mutex<HashMap<Topic, Arc<Tail>>>>,
    conn: Arc<Conn>,
    idle: Duration,
) {
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        let Some(map) = cursors.upgrade() else { return };
        if conn.is_closed() {
            return;
        }
        let all: Vec<Arc<Cursor>> = map.lock().values().cloned().collect();
        drop(map);
        for cur in all {
            cur.release_if_idle(&conn, idle).await;
        }
        let Some(tails) = tails.upgrade() else { return };
        let all: Vec<Arc<Tail>> = tails.lock().values().cloned().collect();
        drop(tails);
        for tail in all {
            tail.stop_if_idle(TAIL_IDLE).await;
        }
    }
}

#[async_trait]
impl EventStore for RabbitStore {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        self.check_open()?;
        let name = self.names.topic(topic);
        if self.queue_exists(&name).await?.is_some() {
            self.known.lock().insert(topic.clone());
            return Ok(false);
        }
        let (_, ch) = self.conn.channel().await?;
        self.conn
            .bounded(
                "exchange.declare",
                ch.exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        if let Some(age) = self.opts.max_age {
            args.insert(
                "x-max-age".into(),
                AMQPValue::LongString(format!("{}s", age.as_secs().max(1)).into()),
            );
        }
        if let Some(bytes) = self.opts.max_bytes {
            args.insert(
                "x-max-length-bytes".into(),
                AMQPValue::LongLongInt(i64::try_from(bytes).unwrap_or(i64::MAX)),
            );
        }
        self.conn
            .bounded(
                "queue.declare (topic stream)",
                ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args),
            )
            .await?;
        self.conn
            .bounded(
                "queue.bind",
                ch.queue_bind(
                    name.as_str().into(),
                    name.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        let _ = ch.close(200, "topic created".into()).await;
        self.catalog
            .append(
                &self.conn,
                &Entry::Topic {
                    topic: topic.to_string(),
                },
            )
            .await?;
        self.known.lock().insert(topic.clone());
        tracing::info!(message = "Topic created.", topic = %topic, stream = %name);
        Ok(true)
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        self.check_open()?;
        let name = self.names.topic(topic);
        if self.queue_exists(&name).await?.is_none() {
            self.forget_topic(topic);
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        let listed = self.catalog.read(&self.conn).await?;
        let local: Vec<Arc<Cursor>> = {
            let mut map = self.cursors.lock();
            let keys: Vec<ConsumerRef> =
                map.keys().filter(|c| c.topic == *topic).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        let mut queues: HashSet<String> = listed
            .get(&topic.to_string())
            .map(|t| t.cursors.iter().cloned().collect())
            .unwrap_or_default();
        for cur in local {
            cur.stop(&self.conn, true).await;
            queues.insert(cur.state_queue.clone());
        }
        let tail = self.tails.lock().remove(topic);
        if let Some(tail) = tail {
            tail.stop().await;
        }
        for q in &queues {
            self.delete_queue(q).await?;
        }
        self.delete_queue(&name).await?;
        let (_, ch) = self.conn.channel().await?;
        match self
            .conn
            .bounded(
                "exchange.delete",
                ch.exchange_delete(name.as_str().into(), Default::default()),
            )
            .await
        {
            Ok(()) => {
                let _ = ch.close(200, "deleted".into()).await;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        self.catalog
            .append(
                &self.conn,
                &Entry::Untopic {
                    topic: topic.to_string(),
                },
            )
            .await?;
        self.forget_topic(topic);
        tracing::info!(message = "Topic deleted.", topic = %topic, cursors = queues.len());
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        self.check_open()?;
        let listed = self.catalog.read(&self.conn).await?;
        let mut out = Vec::with_capacity(listed.len());
        for name in listed.keys() {
            let Ok(topic) = Topic::new(name) else {
                continue;
            };
            if let Some(count) = self.queue_exists(&self.names.topic(&topic)).await? {
                out.push(TopicInfo {
                    topic,
                    partitions: 1,
                    retained_events: u64::from(count),
                    retained_bytes: None,
                });
            }
        }
        Ok(out)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        self.check_open()?;
        if let Some(r) = records.iter().find(|r| r.topic != *topic) {
            return Err(StorageError::Invalid(format!(
                "a record for topic `{}` in a batch published to `{topic}`",
                r.topic
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.require_topic(topic).await?;
        let tail = self.tail(topic);
        tail.ensure(&self.conn)
            .await
            .map_err(|e| self.topic_err(topic, e))?;
        let keys: Vec<String> = records.iter().map(|_| new_key()).collect();
        let result = self.publish_batch(topic, &tail, records, &keys).await;
        if let Err(error) = &result {
            tail.forget(&keys);
            tracing::debug!(message = "Publish failed.", topic = %topic, events = records.len(), %error);
        }
        result
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        self.check_open()?;
        self.require_topic(&consumer.topic).await?;
        if self.cursors.lock().contains_key(consumer) {
            return Ok(());
        }
        let cfg = self.cursor_config(consumer);
        if self.queue_exists(&cfg.state_queue).await?.is_some() {
            self.cursor(consumer).await?;
            return Ok(());
        }
        let at = self.resolve(&consumer.topic, start).await?;
        let state = CursorState::new(at, TOKENS);
        let snap = state.snapshot(&cfg.state_queue, self.writer);
        let (_, ch) = self.conn.channel().await?;
        self.conn
            .bounded(
                "queue.declare (state)",
                ch.queue_declare(
                    cfg.state_queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    state_args(cfg.expiry_ms),
                ),
            )
            .await?;
        let _ = ch.close(200, "declared".into()).await;
        let body = serde_json::to_vec(&snap).map_err(|e| StorageError::Backend(e.to_string()))?;
        let props = BasicProperties::default().with_content_type("application/json".into());
        if !self
            .conn
            .publish_confirmed("", &cfg.state_queue, &body, props)
            .await?
        {
            return Err(gone(consumer));
        }
        self.catalog
            .append(
                &self.conn,
                &Entry::Cursor {
                    topic: consumer.topic.to_string(),
                    queue: cfg.state_queue.clone(),
                },
            )
            .await?;
        let cur = Cursor::new(consumer.clone(), cfg, self.writer, Some(state));
        self.cursors.lock().entry(consumer.clone()).or_insert(cur);
        tracing::debug!(message = "Cursor created.", cursor = %consumer, start = ?at);
        Ok(())
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        self.check_open()?;
        let local = self.cursors.lock().remove(consumer);
        let queue = self.names.state(consumer);
        match local {
            Some(cur) => cur.stop(&self.conn, true).await,
            None => {
                if self.queue_exists(&queue).await?.is_none() {
                    self.require_topic(&consumer.topic).await?;
                    return Err(gone(consumer));
                }
            }
        }
        self.delete_queue(&queue).await?;
        Ok(())
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        self.check_open()?;
        let cur = self.cursor(consumer).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let r = cur.fetch(&self.conn, max, lease, wait).await;
        self.check_open()?;
        r.map_err(|e| self.cursor_err(consumer, e))
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        self.check_open()?;
        let parsed = tokens
            .iter()
            .map(|t| TOKENS.decode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let cur = self.cursor(consumer).await?;
        cur.update(&self.conn, |st| st.ack(&parsed))
            .await
            .map(drop)
            .map_err(|e| self.cursor_err(consumer, e))
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        self.check_open()?;
        let t = TOKENS.decode(token)?;
        let cur = self.cursor(consumer).await?;
        let now = tokio::time::Instant::now();
        cur.update(&self.conn, |st| st.nack(t, delay, now))
            .await
            .map(drop)
            .map_err(|e| self.cursor_err(consumer, e))
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        self.check_open()?;
        let parsed = tokens
            .iter()
            .map(|t| TOKENS.decode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let cur = self.cursor(consumer).await?;
        let now = tokio::time::Instant::now();
        cur.update(&self.conn, |st| st.extend(&parsed, lease, now))
            .await
            .map(drop)
            .map_err(|e| self.cursor_err(consumer, e))
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        self.check_open()?;
        let cur = self.cursor(consumer).await?;
        let at = self.resolve(&consumer.topic, target).await?;
        match cur
            .update(&self.conn, |st| st.seek(at))
            .await
            .map_err(|e| self.cursor_err(consumer, e))?
        {
            Role::Owner => Ok(()),
            Role::Standby => Err(StorageError::Unavailable(format!(
                "cursor {consumer} is served by another store (another mesh node holds its lock)"
            ))),
        }
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        self.check_open()?;
        let local = self.cursors.lock().get(consumer).cloned();
        let cur = match local {
            Some(c) => c,
            None => {
                let snap = read_snapshot(&self.conn, &self.names.state(consumer))
                    .await?
                    .ok_or_else(|| gone(consumer))?;
                return Ok(CursorInfo {
                    committed: vec![(0, snap.committed)],
                    in_flight: snap.pending.len() as u64,
                    backlog: None,
                });
            }
        };
        let (committed, in_flight) = cur
            .info(&self.conn)
            .await
            .map_err(|e| self.cursor_err(consumer, e))?;
        Ok(CursorInfo {
            committed: vec![(0, committed)],
            in_flight,
            backlog: None,
        })
    }

    async fn health(&self) -> StorageResult<()> {
        self.check_open()?;
        self.conn.link()?;
        Ok(())
    }

    async fn close(&self) -> StorageResult<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let cursors: Vec<Arc<Cursor>> = self.cursors.lock().drain().map(|(_, c)| c).collect();
        for cur in cursors {
            cur.stop(&self.conn, false).await;
        }
        let tails: Vec<Arc<Tail>> = self.tails.lock().drain().map(|(_, t)| t).collect();
        for tail in tails {
            tail.stop().await;
        }
        self.conn.close().await;
        tracing::info!(message = "RabbitMQ store closed.", url = %self.opts.masked_url());
        Ok(())
    }
}
