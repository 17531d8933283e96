//! [`RocketStore`]: the [`EventStore`] over RocketMQ.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::BytesMut;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::{Clients, Route};
use crate::error::RocketError;
use crate::message::to_message;
use crate::names::Names;
use crate::options::RocketOptions;
use crate::serve::{Cursor, CursorNames, Stored, TOKENS, parse_tokens};
use eventmesh_storage::lease_cursor::{Attach, CursorState, Snapshot};

/// How long a new topic may take to show in the name servers' routes.
const ROUTE_PROPAGATION: Duration = Duration::from_secs(10);

/// The RocketMQ event store. See the crate docs for the mapping and the guarantees.
///
/// The store behind it is held as a `dyn EventStore`: the RocketMQ client's types are deep
/// enough that proving them `Send` needs a raised recursion limit, which this crate sets and
/// its users need not.
pub struct RocketStore {
    inner: Arc<dyn EventStore>,
}

/// The store itself.
struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    opts: RocketOptions,
    names: Names,
    clients: Clients,
    closed: AtomicBool,
    writer: u64,
    /// This store's client id, under which it holds the queue locks of the cursors it serves.
    instance: String,
    cursors: Mutex<HashMap<ConsumerRef, Arc<Cursor>>>,
    /// Serializes loading cursors, so that one cursor is loaded once.
    loading: tokio::sync::Mutex<()>,
}

/// The longest a fetch of a cursor another store serves waits before it answers nothing (it
/// tries to take the cursor at its next call).
const STANDBY_WAIT: Duration = Duration::from_secs(1);

/// Whether this store serves a cursor.
enum Served {
    /// It does: its copy and the routes of its data and state topics.
    Owner(Arc<Cursor>, Route, Route),
    /// Another store holds the cursor's queue lock.
    Standby,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RocketStore {
    /// Connects to the name servers of `opts.url` and checks that a master broker of
    /// `opts.cluster` is registered.
    ///
    /// Returns a boxed future: the client's futures are deep enough that proving them `Send`
    /// needs a raised recursion limit, which this crate sets and its users need not.
    #[inline(never)]
    pub fn open(
        opts: RocketOptions,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = StorageResult<RocketStore>> + Send>>
    {
        Box::pin(open_store(opts))
    }
}

async fn open_store(opts: RocketOptions) -> StorageResult<RocketStore> {
    let store = Store::open(opts).await?;
    let inner: Arc<dyn EventStore> = Arc::new(store);
    Ok(RocketStore { inner })
}

impl Store {
    async fn open(opts: RocketOptions) -> StorageResult<Store> {
        let namesrv = opts.parse()?;
        let writer: u64 = rand::random();
        let instance = format!("eventmesh-{}-{writer:016x}", std::process::id());
        let clients =
            Clients::start(&namesrv, &opts.cluster, &instance, opts.request_timeout).await?;
        let instance = instance.clone();
        let store = Store {
            inner: Arc::new(Inner {
                names: Names::new(&opts.prefix),
                opts,
                clients,
                closed: AtomicBool::new(false),
                writer,
                instance,
                cursors: Mutex::new(HashMap::new()),
                loading: tokio::sync::Mutex::new(()),
            }),
        };
        if let Err(e) = store.inner.clients.check_cluster().await {
            store.inner.clients.shutdown().await;
            return Err(e.into());
        }
        if store.inner.opts.defibus.enabled {
            let reply = store.inner.opts.defibus.reply_topic();
            if store.inner.clients.route(&reply).await?.is_none() {
                store.inner.clients.create_topic(&reply).await?;
            }
        }
        info!(
            message = "RocketMQ store open.",
            url = %store.inner.opts.url,
            prefix = %store.inner.opts.prefix,
            cluster = %store.inner.opts.cluster
        );
        Ok(store)
    }
}

impl Inner {
    fn check_open(&self) -> StorageResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn topic_name(&self, topic: &Topic) -> StorageResult<String> {
        self.names.topic(topic).ok_or_else(|| {
            StorageError::Invalid(format!(
                "topic `{topic}` is too long for a RocketMQ topic name once encoded"
            ))
        })
    }

    fn state_name(&self, topic: &Topic) -> StorageResult<String> {
        self.names.state_topic(topic).ok_or_else(|| {
            StorageError::Invalid(format!(
                "topic `{topic}` is too long for a RocketMQ topic name once encoded"
            ))
        })
    }

    /// The routes of a topic's data and state topics; `UnknownTopic` when it does not exist.
    async fn routes(&self, topic: &Topic) -> StorageResult<(String, Route, String, Route)> {
        let name = self.topic_name(topic)?;
        let state = self.state_name(topic)?;
        let Some(data_route) = self.clients.route(&name).await? else {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        };
        let Some(state_route) = self.clients.route(&state).await? else {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        };
        Ok((name, data_route, state, state_route))
    }

    fn cursor_names(
        &self,
        c: &ConsumerRef,
        topic: String,
        state: String,
    ) -> StorageResult<CursorNames> {
        let group = self.names.group(c).ok_or_else(|| {
            StorageError::Invalid(format!(
                "cursor `{c}` is too long for a RocketMQ group name once encoded"
            ))
        })?;
        Ok(CursorNames {
            group,
            topic,
            state_topic: state,
        })
    }

    /// Where `start` is on a topic's queue.
    async fn attach(&self, topic: &str, route: &Route, start: StartFrom) -> StorageResult<Attach> {
        Ok(match start {
            StartFrom::Time(t) => Attach::Time(t),
            other => {
                let (min, max) = self.clients.offsets(topic, route).await?;
                Attach::Offset(match other {
                    StartFrom::Earliest => min,
                    StartFrom::Latest => max,
                    StartFrom::Offset(o) => o.clamp(min, max),
                    StartFrom::Time(_) => min,
                })
            }
        })
    }

    /// The cursor, loaded from the brokers when this store does not serve it yet; `create`
    /// makes it at that position when it does not exist.
    /// This store's copy of a cursor it serves; `Unavailable` while another store serves it.
    async fn cursor(
        &self,
        c: &ConsumerRef,
        create: Option<StartFrom>,
    ) -> StorageResult<(Arc<Cursor>, Route, Route)> {
        match self.serve(c, create).await? {
            Served::Owner(cur, data_route, state_route) => Ok((cur, data_route, state_route)),
            Served::Standby => Err(StorageError::Unavailable(format!(
                "cursor {c} is served by another mesh node (it holds the RocketMQ lock of the \
                 cursor's queue)"
            ))),
        }
    }

    /// Serves a cursor if this store holds (or can take) the broker's lock of its queue for its
    /// group, loading it the first time; renews the lock every `lock_renew`. A store that finds
    /// another holding it forgets its own copy: the holder serves the cursor.
    async fn serve(&self, c: &ConsumerRef, create: Option<StartFrom>) -> StorageResult<Served> {
        let (name, data_route, state, state_route) = self.routes(&c.topic).await?;
        let cached = self.cursors.lock().get(c).cloned();
        if let Some(cur) = cached {
            if cur.lock_due(self.opts.lock_renew) {
                if self
                    .clients
                    .lock_queue(cur.group(), cur.topic(), &data_route, &self.instance)
                    .await?
                {
                    cur.relocked();
                } else {
                    warn!(message = "Another store took a cursor over; this one stops serving it.", cursor = %c);
                    cur.lost_lock();
                    self.cursors.lock().remove(c);
                    return Ok(Served::Standby);
                }
            }
            return Ok(Served::Owner(cur, data_route, state_route));
        }
        let _loading = self.loading.lock().await;
        if let Some(cur) = self.cursors.lock().get(c) {
            return Ok(Served::Owner(cur.clone(), data_route, state_route));
        }
        let n = self.cursor_names(c, name.clone(), state)?;
        let group = n.group.clone();
        if !self
            .clients
            .lock_queue(&group, &name, &data_route, &self.instance)
            .await?
        {
            return Ok(Served::Standby);
        }
        match self.load(c, create, n, &data_route, &state_route).await {
            Ok(cur) => {
                self.cursors.lock().insert(c.clone(), cur.clone());
                Ok(Served::Owner(cur, data_route, state_route))
            }
            Err(e) => {
                // Not served here after all (no such cursor, or the broker failed): another
                // node may take it at once.
                if let Err(error) = self
                    .clients
                    .unlock_queue(&group, &name, &data_route, &self.instance)
                    .await
                {
                    warn!(message = "Could not release a cursor's queue lock.", cursor = %c, %error);
                }
                Err(e)
            }
        }
    }

    /// Loads a cursor from what the brokers hold (creating it with `create` when there is
    /// none), under its queue lock.
    async fn load(
        &self,
        c: &ConsumerRef,
        create: Option<StartFrom>,
        n: CursorNames,
        data_route: &Route,
        state_route: &Route,
    ) -> StorageResult<Arc<Cursor>> {
        let key = Cursor::key_of(c);
        let stored = Cursor::stored(&self.clients, &key, &n, state_route, data_route).await?;
        let now = Instant::now();
        let (st, fresh) = match stored {
            Stored::Snapshot(snap) => (CursorState::restore(&snap, now, TOKENS), false),
            Stored::Committed(at) => {
                let snap = Snapshot {
                    cursor: key.clone(),
                    version: 1,
                    writer: self.writer,
                    deleted: false,
                    committed: at,
                    horizon: at,
                    time: None,
                    pending: Vec::new(),
                };
                (CursorState::restore(&snap, now, TOKENS), false)
            }
            Stored::None => {
                let Some(start) = create else {
                    return Err(StorageError::UnknownConsumer(key));
                };
                let at = self.attach(&n.topic, data_route, start).await?;
                (CursorState::new(at, TOKENS), true)
            }
        };
        if fresh {
            create_groups(self, &n.group, data_route, state_route).await?;
        }
        let flushed = if fresh { 0 } else { st.version };
        let cur = Cursor::new(c.clone(), n, self.writer, st, flushed);
        if fresh {
            cur.persist(&self.clients, state_route, data_route).await?;
        }
        Ok(cur)
    }

    /// Waits until the name servers route a new topic.
    async fn await_route(&self, name: &str) -> StorageResult<()> {
        let deadline = Instant::now() + ROUTE_PROPAGATION;
        let mut pause = Duration::from_millis(20);
        loop {
            self.clients.forget_route(name);
            if self.clients.route(name).await?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "RocketMQ: topic `{name}` was created but the name servers do not route it after {} s",
                    ROUTE_PROPAGATION.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[async_trait]
impl EventStore for RocketStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        self.inner.create_topic(topic).await
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        self.inner.delete_topic(topic).await
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        self.inner.list_topics().await
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        self.inner.publish(topic, records).await
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        self.inner.subscribe(consumer, start).await
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        self.inner.unsubscribe(consumer).await
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        self.inner.fetch(consumer, max, lease, wait).await
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        self.inner.ack(consumer, tokens).await
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        self.inner.nack(consumer, token, delay).await
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        self.inner.extend_lease(consumer, tokens, lease).await
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        self.inner.seek(consumer, target).await
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        self.inner.cursor_info(consumer).await
    }

    async fn health(&self) -> StorageResult<()> {
        self.inner.health().await
    }

    async fn close(&self) -> StorageResult<()> {
        self.inner.close().await
    }
}

#[async_trait]
impl EventStore for Store {
    fn kind(&self) -> &'static str {
        "rocketmq"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        let s = &self.inner;
        s.check_open()?;
        let name = s.topic_name(topic)?;
        let state = s.state_name(topic)?;
        let exists = s.clients.route(&name).await?.is_some();
        let state_exists = s.clients.route(&state).await?.is_some();
        if exists && state_exists {
            return Ok(false);
        }
        if !state_exists {
            s.clients.create_topic(&state).await?;
            s.await_route(&state).await?;
        }
        if !exists {
            s.clients.create_topic(&name).await?;
            s.await_route(&name).await?;
        }
        Ok(!exists)
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (name, _, state, _) = s.routes(topic).await?;
        let gone: Vec<Arc<Cursor>> = {
            let mut map = s.cursors.lock();
            let keys: Vec<ConsumerRef> =
                map.keys().filter(|c| &c.topic == topic).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for c in gone {
            c.retire();
        }
        s.clients.delete_topic(&name).await?;
        s.clients.delete_topic(&state).await?;
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        let s = &self.inner;
        s.check_open()?;
        let mut out = Vec::new();
        for name in s.clients.all_topics().await? {
            let Some(topic) = s.names.topic_of(&name) else {
                continue;
            };
            let Some(route) = s.clients.route(&name).await? else {
                continue;
            };
            let (min, max) = s.clients.offsets(&name, &route).await?;
            out.push(TopicInfo {
                topic,
                partitions: 1,
                retained_events: max.saturating_sub(min),
                retained_bytes: None,
            });
        }
        out.sort_by_key(|a| a.topic.to_string());
        Ok(out)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        let s = &self.inner;
        s.check_open()?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(r) = records.iter().find(|r| &r.topic != topic) {
            return Err(StorageError::Invalid(format!(
                "record {} is for topic `{}`, not `{topic}`",
                r.id, r.topic
            )));
        }
        let mut bodies = Vec::with_capacity(records.len());
        for r in records {
            let mut b = BytesMut::with_capacity(r.encoded_len_hint());
            r.encode(&mut b);
            if b.len() > s.opts.max_message_bytes {
                return Err(StorageError::Invalid(format!(
                    "event {} is {} bytes; the RocketMQ store takes at most {} (max_message_bytes)",
                    r.id,
                    b.len(),
                    s.opts.max_message_bytes
                )));
            }
            bodies.push(b.freeze());
        }
        let name = s.topic_name(topic)?;
        let Some(route) = s.clients.route(&name).await? else {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        };
        let now = now_ms();
        let mut offsets = Vec::with_capacity(records.len());
        // One send per run of events that fits in one broker message.
        let mut batch = Vec::new();
        let mut size = 0usize;
        for (r, body) in records.iter().zip(bodies) {
            let len = body.len() + 256;
            if !batch.is_empty() && size + len > s.opts.max_message_bytes {
                let sent = std::mem::take(&mut batch);
                offsets.extend(send_run(s, &name, &route, sent).await?);
                size = 0;
            }
            size += len;
            batch.push(to_message(&name, r, body, &s.opts.defibus, now)?);
        }
        offsets.extend(send_run(s, &name, &route, batch).await?);
        Ok(offsets)
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        // A cursor another store serves exists already.
        s.serve(consumer, Some(start)).await.map(drop)
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (cur, data_route, state_route) = s.cursor(consumer, None).await?;
        cur.write_deleted(&s.clients, &state_route).await?;
        cur.retire();
        s.cursors.lock().remove(consumer);
        if let Err(error) = s
            .clients
            .unlock_queue(cur.group(), cur.topic(), &data_route, &s.instance)
            .await
        {
            warn!(message = "Could not release an unsubscribed cursor's queue lock.", cursor = %consumer, %error);
        }
        Ok(())
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let s = &self.inner;
        s.check_open()?;
        let (cur, data_route, state_route) = match s.serve(consumer, None).await? {
            Served::Owner(cur, data_route, state_route) => (cur, data_route, state_route),
            Served::Standby => {
                // Another node serves the cursor: nothing for this one, until it stops.
                tokio::time::sleep(wait.min(STANDBY_WAIT)).await;
                return Ok(Vec::new());
            }
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = cur
            .fetch(&s.clients, &data_route, max, lease, wait, s.opts.pull_batch)
            .await?;
        if !out.is_empty() {
            cur.persist(&s.clients, &state_route, &data_route).await?;
        }
        Ok(out)
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let parsed = parse_tokens(tokens)?;
        if parsed.is_empty() {
            return Ok(());
        }
        let (cur, data_route, state_route) = s.cursor(consumer, None).await?;
        cur.update(|st| st.ack(&parsed))?;
        cur.persist(&s.clients, &state_route, &data_route).await?;
        Ok(())
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let parsed = parse_tokens(std::slice::from_ref(token))?;
        let (cur, _, _) = s.cursor(consumer, None).await?;
        let now = Instant::now();
        cur.update(|st| {
            for t in parsed {
                st.nack(t, delay, now);
            }
        })
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let parsed = parse_tokens(tokens)?;
        let (cur, _, _) = s.cursor(consumer, None).await?;
        let now = Instant::now();
        cur.update(|st| st.extend(&parsed, lease, now))
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (cur, data_route, state_route) = s.cursor(consumer, None).await?;
        let name = s.topic_name(&consumer.topic)?;
        let at = s.attach(&name, &data_route, target).await?;
        cur.seek(at)?;
        cur.persist(&s.clients, &state_route, &data_route).await?;
        Ok(())
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        let s = &self.inner;
        s.check_open()?;
        let (cur, data_route, _) = s.cursor(consumer, None).await?;
        let name = s.topic_name(&consumer.topic)?;
        let (_, max) = s.clients.offsets(&name, &data_route).await?;
        let (committed, in_flight) = cur.info()?;
        Ok(CursorInfo {
            committed: vec![(0, committed)],
            in_flight,
            backlog: Some(max.saturating_sub(committed)),
        })
    }

    async fn health(&self) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        s.clients.check_cluster().await.map_err(Into::into)
    }

    async fn close(&self) -> StorageResult<()> {
        let s = &self.inner;
        if s.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let cursors: Vec<Arc<Cursor>> = s.cursors.lock().drain().map(|(_, c)| c).collect();
        let mut first_error = None;
        for cur in cursors {
            let r = async {
                let (_, data_route, _, state_route) = s.routes(&cur.consumer.topic).await?;
                cur.persist(&s.clients, &state_route, &data_route).await?;
                // Another node may take the cursor over at once.
                s.clients
                    .unlock_queue(cur.group(), cur.topic(), &data_route, &s.instance)
                    .await
                    .map_err(StorageError::from)
            }
            .await;
            if let Err(error) = r {
                warn!(message = "Could not write a cursor on close.", cursor = %cur.consumer, %error);
                first_error.get_or_insert(error);
            }
        }
        s.clients.shutdown().await;
        info!(message = "RocketMQ store closed.");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Creates a cursor's consumer group on the brokers of its data and state topics.
async fn create_groups(
    s: &Inner,
    group: &str,
    data_route: &Route,
    state_route: &Route,
) -> Result<(), RocketError> {
    s.clients
        .create_group(&data_route.broker_addr, group)
        .await?;
    if state_route.broker_addr != data_route.broker_addr {
        s.clients
            .create_group(&state_route.broker_addr, group)
            .await?;
    }
    Ok(())
}

/// Sends one run of messages; returns the offset of each.
async fn send_run(
    s: &Inner,
    name: &str,
    route: &Route,
    batch: Vec<rocketmq_model::common::message::message_single::Message>,
) -> Result<Vec<Offset>, RocketError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch.len() as u64;
    let first = s.clients.send(name, route, batch).await?;
    Ok((first..first + n)
        .map(|seq| Offset { partition: 0, seq })
        .collect())
}
