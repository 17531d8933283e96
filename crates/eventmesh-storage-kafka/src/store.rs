//! [`KafkaStore`]: the [`EventStore`] over Kafka.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cursor::{Cursor, Env, read_token};
use crate::groups::Groups;
use crate::names::Names;
use crate::options::KafkaOptions;

/// The Kafka event store. See the crate docs for the mapping and the guarantees.
#[derive(Clone)]
pub struct KafkaStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: KafkaOptions,
    pub(crate) env: Arc<Env>,
    pub(crate) names: Names,
    /// Settings shared by every client (bootstrap, reconnects, user properties).
    pub(crate) base: ClientConfig,
    /// Replaced by a new one after a fatal error (an idempotent producer whose sequence the
    /// broker lost, after a broker restart for instance).
    producer: Mutex<FutureProducer>,
    producer_config: ClientConfig,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// Topics known to exist, with their partition counts.
    topics: Mutex<HashMap<String, u32>>,
    cursors: Mutex<HashMap<ConsumerRef, Arc<Cursor>>>,
    /// Held while a cursor is made, so that concurrent first fetches of one cursor make one
    /// consumer: a second consumer would join the group as another member and start a
    /// rebalance that takes partitions from the first.
    making: tokio::sync::Mutex<()>,
    /// Consumers made for cursors since the store opened (tests check there is one per cursor).
    consumers_made: AtomicU32,
    epochs: AtomicU32,
    closed: AtomicBool,
}

impl KafkaStore {
    /// Builds the clients and checks that the brokers answer within `request_timeout`: fails
    /// with [`StorageError::Unavailable`] when they do not and with [`StorageError::Invalid`] for
    /// invalid options. The clients reconnect by themselves after that.
    pub async fn connect(opts: KafkaOptions) -> StorageResult<Self> {
        let brokers = opts.bootstrap()?;
        let env = Arc::new(Env {
            brokers: brokers.clone(),
            request_timeout: opts.request_timeout,
            metadata_max_bytes: opts.metadata_max_bytes,
            state: std::sync::OnceLock::new(),
        });
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string();
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &brokers)
            .set("client.id", "eventmesh")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000")
            .set(
                "socket.connection.setup.timeout.ms",
                ms(opts.request_timeout),
            )
            .set("allow.auto.create.topics", "false");
        for (k, v) in &opts.properties {
            base.set(k, v);
        }
        let request = opts.request_timeout.min(opts.publish_timeout);
        let mut producer_config = base.clone();
        producer_config
            .set("acks", "all")
            .set("enable.idempotence", opts.idempotence.to_string())
            .set("message.timeout.ms", ms(opts.publish_timeout))
            .set("request.timeout.ms", ms(request))
            .set("linger.ms", "1")
            .set("message.max.bytes", "16777216")
            .set("partitioner", "murmur2_random");
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|e| env.err("create the producer", e))?;
        let admin: AdminClient<DefaultClientContext> = base
            .create()
            .map_err(|e| env.err("create the admin client", e))?;
        let store = KafkaStore {
            inner: Arc::new(Inner {
                names: Names::new(&opts.topic_prefix, &opts.group_prefix),
                env,
                base,
                producer: Mutex::new(producer),
                producer_config,
                admin: Arc::new(admin),
                topics: Mutex::new(HashMap::new()),
                cursors: Mutex::new(HashMap::new()),
                making: tokio::sync::Mutex::new(()),
                consumers_made: AtomicU32::new(0),
                epochs: AtomicU32::new(seed()),
                closed: AtomicBool::new(false),
                opts,
            }),
        };
        store.inner.metadata(None, "connect").await?;
        let s = &store.inner;
        let log = crate::state::StateLog::open(
            s.opts.cursor_state,
            &s.env,
            &s.base,
            &s.admin,
            &s.opts.group_prefix,
            s.opts.replication_factor,
            s.opts.publish_timeout,
        )
        .await?;
        let state_topics = log.is_some();
        if let Some(log) = log {
            let _ = s.env.state.set(Arc::new(log));
        }
        info!(
            message = "Opened the Kafka store.",
            brokers = %brokers,
            topic_prefix = %store.inner.opts.topic_prefix,
            group_prefix = %store.inner.opts.group_prefix,
            partitions = store.inner.opts.partitions,
            state_topics
        );
        Ok(store)
    }

    /// How many Kafka consumers this store has made for cursors (one per cursor it serves, and
    /// one more after each seek). For tests.
    #[doc(hidden)]
    pub fn consumers_made(&self) -> u32 {
        self.inner.consumers_made.load(Ordering::Relaxed)
    }

    /// Whether cursor state also goes to state topics (chosen by `cursor_state`, for `auto`
    /// by the probe at start-up).
    pub fn uses_state_topics(&self) -> bool {
        self.inner.env.state.get().is_some()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &KafkaOptions {
        &self.inner.opts
    }
}

fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish() as u32
}

impl Inner {
    fn check_open(&self) -> StorageResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Topic name → partitions, for one topic or all.
    pub(crate) async fn metadata(
        &self,
        topic: Option<&str>,
        op: &str,
    ) -> StorageResult<Vec<(String, u32)>> {
        // A metadata request only reads: one the broker dropped (a closed connection, which
        // tansu does now and then) is sent again until the request timeout is spent.
        let deadline = Instant::now() + self.opts.request_timeout;
        let mut pause = Duration::from_millis(20);
        let md = loop {
            let client = self.producer_handle();
            let topic = topic.map(str::to_owned);
            let timeout = deadline.saturating_duration_since(Instant::now());
            let got = self
                .env
                .blocking(op, move || {
                    client.client().fetch_metadata(topic.as_deref(), timeout)
                })
                .await?;
            match got {
                Ok(md) => break md,
                Err(e) if crate::error::is_unavailable(&e) && Instant::now() + pause < deadline => {
                    debug!(message = "Kafka metadata request failed; retrying.", error = %e, op);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(self.env.err(op, e)),
            }
        };
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| {
                (
                    t.name().to_owned(),
                    u32::try_from(t.partitions().len()).unwrap_or(0),
                )
            })
            .collect())
    }

    /// The partitions of a topic, or `UnknownTopic`.
    pub(crate) async fn partitions(&self, topic: &Topic, kafka_topic: &str) -> StorageResult<u32> {
        if let Some(n) = self.topics.lock().get(kafka_topic) {
            return Ok(*n);
        }
        let found = self
            .metadata(Some(kafka_topic), "read topic metadata")
            .await?;
        match found.into_iter().find(|(n, _)| n == kafka_topic) {
            Some((_, n)) => {
                self.topics.lock().insert(kafka_topic.to_owned(), n);
                Ok(n)
            }
            None => Err(StorageError::UnknownTopic(topic.to_string())),
        }
    }

    fn kafka_topic(&self, topic: &Topic) -> StorageResult<String> {
        Ok(self.names.topic(topic)?)
    }

    fn groups(&self) -> Groups<'_> {
        Groups { inner: self }
    }

    /// This node's cursor, made (joining its group) if the cursor exists in Kafka.
    async fn cursor(&self, c: &ConsumerRef) -> StorageResult<Arc<Cursor>> {
        if let Some(cur) = self.cursors.lock().get(c) {
            return Ok(cur.clone());
        }
        let _making = self.making.lock().await;
        if let Some(cur) = self.cursors.lock().get(c) {
            return Ok(cur.clone());
        }
        let kt = self.kafka_topic(&c.topic)?;
        let n = self.partitions(&c.topic, &kt).await?;
        let group = self.names.group(c, &kt);
        if self.groups().committed(&group, &kt, n).await?.is_empty() {
            return Err(StorageError::UnknownConsumer(c.to_string()));
        }
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
        self.consumers_made.fetch_add(1, Ordering::Relaxed);
        let cur = Arc::new(Cursor::new(
            self.env.clone(),
            &self.consumer_config(),
            c.topic.clone(),
            kt,
            &group,
            n,
            epoch,
        )?);
        let mut map = self.cursors.lock();
        Ok(map.entry(c.clone()).or_insert(cur).clone())
    }

    fn consumer_config(&self) -> ClientConfig {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string();
        let mut cfg = self.base.clone();
        cfg.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", ms(self.opts.session_timeout))
            .set("heartbeat.interval.ms", ms(self.opts.session_timeout / 4))
            .set("fetch.wait.max.ms", "100");
        cfg
    }

    /// Forgets this node's cursor (its in-flight deliveries) and leaves its group.
    async fn drop_cursor(&self, c: &ConsumerRef, commit_first: bool) {
        let cur = self.cursors.lock().remove(c);
        if let Some(cur) = cur {
            if commit_first && let Err(error) = cur.commit().await {
                warn!(message = "Final Kafka commit failed.", %error, cursor = %c);
            }
            let consumer = cur.consumer();
            drop(cur);
            // Closing the consumer leaves the group; it blocks until the broker answered.
            let _ = self
                .env
                .blocking("leave the group", move || drop(consumer))
                .await;
        }
    }

    fn cursors_of(&self, topic: &Topic) -> Vec<ConsumerRef> {
        self.cursors
            .lock()
            .keys()
            .filter(|c| c.topic == *topic)
            .cloned()
            .collect()
    }

    fn cursor_refs(&self) -> Vec<ConsumerRef> {
        self.cursors.lock().keys().cloned().collect()
    }

    fn unavailable(&self, op: &str, e: KafkaError) -> StorageError {
        self.env.err(op, e)
    }

    pub(crate) fn producer_handle(&self) -> FutureProducer {
        self.producer.lock().clone()
    }

    /// Replaces the producer if librdkafka declared it unusable (a fatal error).
    fn renew_producer_if_fatal(&self, used: &FutureProducer) {
        let Some((code, reason)) = used.client().fatal_error() else {
            return;
        };
        let mut current = self.producer.lock();
        if !std::ptr::eq(current.client().native_ptr(), used.client().native_ptr()) {
            return; // Renewed already.
        }
        match self.producer_config.create::<FutureProducer>() {
            Ok(p) => {
                warn!(
                    message = "Kafka producer hit a fatal error; replaced it.",
                    code = %code,
                    reason = %reason
                );
                *current = p;
            }
            Err(error) => warn!(message = "Could not replace the Kafka producer.", %error),
        }
    }

    /// With state topics: writes an empty state at `targets` if `group` has a state topic
    /// (left by an earlier cursor of that name, or before a seek), so that an older state at
    /// the same floor is not applied to the new position.
    async fn reset_state(&self, group: &str, n: u32, targets: &[(i32, u64)]) -> StorageResult<()> {
        if let Some(log) = self.env.state.get()
            && log.exists(&self.env, group).await?
        {
            let empty: Vec<(i32, u64, String)> = targets
                .iter()
                .map(|(p, o)| (*p, *o, String::new()))
                .collect();
            log.write(&self.env, group, n, &empty).await?;
        }
        Ok(())
    }

    pub(crate) fn admin_handle(&self) -> &AdminClient<DefaultClientContext> {
        &self.admin
    }
}

#[async_trait]
impl EventStore for KafkaStore {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(topic)?;
        let partitions = i32::try_from(s.opts.partitions).unwrap_or(1);
        let replication = TopicReplication::Fixed(i32::from(s.opts.replication_factor));
        let new = NewTopic::new(&kt, partitions, replication);
        let opts = AdminOptions::new().request_timeout(Some(s.opts.request_timeout));
        let res = tokio::time::timeout(
            s.opts.request_timeout + Duration::from_secs(1),
            s.admin.create_topics([&new], &opts),
        )
        .await
        .map_err(|_| s.env.timeout("create topic"))?
        .map_err(|e| s.unavailable("create topic", e))?;
        match res.into_iter().next() {
            Some(Ok(_)) => {
                s.topics.lock().insert(kt.clone(), s.opts.partitions);
                info!(message = "Created Kafka topic.", topic = %topic, kafka_topic = %kt);
                Ok(true)
            }
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((_, code))) => Err(s.unavailable("create topic", KafkaError::AdminOp(code))),
            None => Err(StorageError::Backend(format!(
                "Kafka at {}: create topic `{kt}` got no answer",
                s.env.brokers
            ))),
        }
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(topic)?;
        for c in s.cursors_of(topic) {
            s.drop_cursor(&c, false).await;
        }
        s.topics.lock().remove(&kt);
        let opts = AdminOptions::new().request_timeout(Some(s.opts.request_timeout));
        let res = tokio::time::timeout(
            s.opts.request_timeout + Duration::from_secs(1),
            s.admin.delete_topics(&[&kt], &opts),
        )
        .await
        .map_err(|_| s.env.timeout("delete topic"))?
        .map_err(|e| s.unavailable("delete topic", e))?;
        match res.into_iter().next() {
            Some(Ok(_)) | None => {}
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                return Err(StorageError::UnknownTopic(topic.to_string()));
            }
            Some(Err((_, code))) => {
                return Err(s.unavailable("delete topic", KafkaError::AdminOp(code)));
            }
        }
        s.groups().delete_of_topic(&kt).await?;
        info!(message = "Deleted Kafka topic.", topic = %topic, kafka_topic = %kt);
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        let s = &self.inner;
        s.check_open()?;
        let mut out = Vec::new();
        for (name, partitions) in s.metadata(None, "list topics").await? {
            let Some(topic) = s.names.topic_of(&name) else {
                continue;
            };
            let marks = s.groups().watermarks(&name, partitions).await?;
            out.push(TopicInfo {
                topic,
                partitions,
                retained_events: marks.iter().map(|(lo, hi)| hi.saturating_sub(*lo)).sum(),
                retained_bytes: None,
            });
        }
        Ok(out)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        let s = &self.inner;
        s.check_open()?;
        if let Some(r) = records.iter().find(|r| r.topic != *topic) {
            return Err(StorageError::Invalid(format!(
                "event {} is for topic `{}`, not `{topic}`; the batch was refused as a whole",
                r.id, r.topic
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let kt = s.kafka_topic(topic)?;
        s.partitions(topic, &kt).await?;
        let payloads: Vec<_> = records.iter().map(EventRecord::to_bytes).collect();
        let producer = s.producer_handle();
        let mut pending = Vec::with_capacity(records.len());
        for (r, p) in records.iter().zip(&payloads) {
            let mut fr = FutureRecord::<str, [u8]>::to(&kt)
                .payload(p.as_ref())
                .timestamp(r.ingest_time_ms);
            if let Some(k) = &r.partition_key {
                fr = fr.key(k.as_str());
            }
            match producer.send_result(fr) {
                Ok(f) => pending.push(f),
                Err((e, _)) => {
                    s.renew_producer_if_fatal(&producer);
                    return Err(s.env.err("publish", e));
                }
            }
        }
        let mut offsets = Vec::with_capacity(pending.len());
        let mut first_err = None;
        for f in pending {
            match f.await {
                Ok(Ok(d)) => offsets.push(Offset {
                    partition: u32::try_from(d.partition).unwrap_or(0),
                    seq: u64::try_from(d.offset).unwrap_or(0),
                }),
                Ok(Err((e, _))) => {
                    if crate::error::is_unknown_topic(&e) {
                        s.topics.lock().remove(&kt);
                        first_err.get_or_insert(StorageError::UnknownTopic(topic.to_string()));
                    } else {
                        first_err.get_or_insert(s.env.err("publish", e));
                    }
                }
                Err(_) => {
                    first_err.get_or_insert(StorageError::Unavailable(format!(
                        "Kafka at {}: the producer dropped a publish",
                        s.env.brokers
                    )));
                }
            }
        }
        match first_err {
            Some(e) => {
                s.renew_producer_if_fatal(&producer);
                Err(e)
            }
            None => Ok(offsets),
        }
    }

    async fn subscribe(&self, c: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(&c.topic)?;
        let n = s.partitions(&c.topic, &kt).await?;
        if s.cursors.lock().contains_key(c) {
            return Ok(());
        }
        let group = s.names.group(c, &kt);
        let g = s.groups();
        if !g.committed(&group, &kt, n).await?.is_empty() {
            return Ok(());
        }
        let targets = g.resolve(&kt, n, start).await?;
        g.commit(&group, &kt, &targets).await?;
        s.reset_state(&group, n, &targets).await?;
        info!(message = "Created cursor.", cursor = %c, group = %group, start = ?start);
        Ok(())
    }

    async fn unsubscribe(&self, c: &ConsumerRef) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(&c.topic)?;
        s.drop_cursor(c, false).await;
        let group = s.names.group(c, &kt);
        s.groups().delete(std::slice::from_ref(&group)).await?;
        if let Some(log) = s.env.state.get() {
            log.delete(&s.env, &[group]).await;
        }
        Ok(())
    }

    async fn fetch(
        &self,
        c: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let s = &self.inner;
        s.check_open()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let cur = s.cursor(c).await?;
        cur.fetch(max, lease, wait).await
    }

    async fn ack(&self, c: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        for t in tokens {
            read_token(t)?;
        }
        let Some(cur) = s.cursors.lock().get(c).cloned() else {
            // Not held here: these deliveries belong to an incarnation that is gone.
            return Ok(());
        };
        let mut refs = Vec::with_capacity(tokens.len());
        for t in tokens {
            if let Some(r) = cur.check(t)? {
                refs.push(r);
            }
        }
        cur.ack(&refs).await
    }

    async fn nack(&self, c: &ConsumerRef, token: &AckToken, delay: Duration) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        read_token(token)?;
        if let Some(cur) = s.cursors.lock().get(c).cloned()
            && let Some(r) = cur.check(token)?
        {
            cur.nack(&r, delay);
        }
        Ok(())
    }

    async fn extend_lease(
        &self,
        c: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        for t in tokens {
            read_token(t)?;
        }
        if let Some(cur) = s.cursors.lock().get(c).cloned() {
            for t in tokens {
                if let Some(r) = cur.check(t)? {
                    cur.extend(&r, lease);
                }
            }
        }
        Ok(())
    }

    async fn seek(&self, c: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(&c.topic)?;
        let n = s.partitions(&c.topic, &kt).await?;
        let group = s.names.group(c, &kt);
        let g = s.groups();
        let held = s.cursors.lock().contains_key(c);
        if !held && g.committed(&group, &kt, n).await?.is_empty() {
            return Err(StorageError::UnknownConsumer(c.to_string()));
        }
        // Kafka moves a group's offsets only while no member consumes: this node leaves the
        // group, commits the new position, and joins again at the next fetch.
        s.drop_cursor(c, false).await;
        let targets = g.resolve(&kt, n, target).await?;
        g.commit(&group, &kt, &targets).await?;
        s.reset_state(&group, n, &targets).await?;
        info!(message = "Moved cursor.", cursor = %c, target = ?target);
        Ok(())
    }

    async fn cursor_info(&self, c: &ConsumerRef) -> StorageResult<CursorInfo> {
        let s = &self.inner;
        s.check_open()?;
        let kt = s.kafka_topic(&c.topic)?;
        let n = s.partitions(&c.topic, &kt).await?;
        let group = s.names.group(c, &kt);
        let g = s.groups();
        let mut committed: HashMap<i32, (u64, u64, u64)> = g
            .committed(&group, &kt, n)
            .await?
            .into_iter()
            .map(|(p, o)| (p, (o, 0, 0)))
            .collect();
        let local = s.cursors.lock().get(c).cloned();
        if committed.is_empty() && local.is_none() {
            return Err(StorageError::UnknownConsumer(c.to_string()));
        }
        if let Some(cur) = local {
            for (p, floor, held, done) in cur.positions() {
                committed.insert(p, (floor, held, done));
            }
        }
        let marks = g.watermarks(&kt, n).await?;
        let mut info = CursorInfo::default();
        let mut backlog = 0u64;
        for (p, (floor, held, done)) in &committed {
            let hi = usize::try_from(*p)
                .ok()
                .and_then(|i| marks.get(i))
                .map_or(*floor, |(_, hi)| *hi);
            backlog += hi.saturating_sub(*floor).saturating_sub(*done);
            info.in_flight += held;
            info.committed
                .push((u32::try_from(*p).unwrap_or(0), *floor));
        }
        info.committed.sort_unstable();
        info.backlog = Some(backlog);
        Ok(info)
    }

    async fn health(&self) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        s.metadata(None, "health check").await.map(drop)
    }

    async fn close(&self) -> StorageResult<()> {
        let s = &self.inner;
        if s.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        for c in s.cursor_refs() {
            s.drop_cursor(&c, true).await;
        }
        let producer = s.producer_handle();
        let timeout = s.opts.publish_timeout;
        match s
            .env
            .blocking("flush", move || producer.flush(timeout))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(message = "Kafka producer did not flush on close.", %error),
            Err(error) => warn!(message = "Kafka producer did not flush on close.", %error),
        }
        info!(message = "Closed the Kafka store.", brokers = %s.env.brokers);
        Ok(())
    }
}
