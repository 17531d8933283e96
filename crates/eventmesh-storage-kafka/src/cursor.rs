//! One mesh cursor on this node: a Kafka consumer in the cursor's own group, the events it
//! handed out (for leases, nacks and delivery counts) and the commits of its position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{AckToken, Delivery, Offset, StorageError, StorageResult};
use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::KafkaStoreError;
use crate::part::{Held, Part, state_changed};
use crate::state::StateLog;

/// What a cursor needs from the store.
pub(crate) struct Env {
    /// The bootstrap brokers, for error messages.
    pub(crate) brokers: String,
    pub(crate) request_timeout: Duration,
    pub(crate) metadata_max_bytes: usize,
    /// Set at start-up when cursor state also goes to state topics (see [`crate::state`]).
    pub(crate) state: std::sync::OnceLock<Arc<StateLog>>,
}

impl Env {
    pub(crate) fn err(&self, op: &str, e: rdkafka::error::KafkaError) -> StorageError {
        KafkaStoreError::from_kafka(&self.brokers, op, e).into()
    }

    pub(crate) fn timeout(&self, op: &str) -> StorageError {
        KafkaStoreError::timeout(&self.brokers, op, self.request_timeout).into()
    }

    /// Runs a blocking client call on the blocking pool, bounded by the request timeout.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        op: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> StorageResult<T> {
        match tokio::time::timeout(
            self.request_timeout + Duration::from_secs(1),
            tokio::task::spawn_blocking(f),
        )
        .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StorageError::Backend(format!(
                "Kafka client call {op} failed: {e}"
            ))),
            Err(_) => Err(self.timeout(op)),
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    parts: HashMap<i32, Part>,
}

/// The consumer's context: forgets the partitions the group takes away from this node.
pub(crate) struct CursorContext {
    state: Arc<Mutex<State>>,
}

impl ClientContext for CursorContext {}

impl ConsumerContext for CursorContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut s = self.state.lock();
            for e in tpl.elements() {
                if let Some(p) = s.parts.remove(&e.partition())
                    && p.in_flight() > 0
                {
                    debug!(
                        message = "Partition revoked; its deliveries go to its next owner.",
                        topic = e.topic(),
                        partition = e.partition(),
                        in_flight = p.in_flight()
                    );
                }
            }
        }
    }
}

/// A cursor held by this node.
pub(crate) struct Cursor {
    /// Changes with every local incarnation of the cursor (a seek makes a new one): tokens of
    /// another incarnation are stale.
    epoch: u32,
    /// A hash of the group id: tokens of another cursor are refused.
    tag: u32,
    topic: Topic,
    kafka_topic: String,
    /// The cursor's consumer group id.
    group: String,
    /// Partitions of the topic (and of the cursor's state topic).
    partitions: u32,
    consumer: Arc<StreamConsumer<CursorContext>>,
    state: Arc<Mutex<State>>,
    /// One fetch at a time takes new events from Kafka (offset order per partition).
    intake: tokio::sync::Mutex<()>,
    /// One commit at a time, each carrying the newest state.
    commit_lock: tokio::sync::Mutex<()>,
    env: Arc<Env>,
}

/// What a token says.
pub(crate) struct TokenRef {
    epoch: u32,
    tag: u32,
    partition: i32,
    offset: u64,
    count: u32,
}

const TOKEN_MAGIC: [u8; 2] = *b"K1";
const TOKEN_LEN: usize = 26;

pub(crate) fn read_token(t: &AckToken) -> StorageResult<TokenRef> {
    let b = &t.0;
    if b.len() != TOKEN_LEN || b[..2] != TOKEN_MAGIC {
        return Err(StorageError::InvalidToken(format!(
            "not a token of the Kafka store ({} bytes)",
            b.len()
        )));
    }
    let mut r = &b[2..];
    let epoch = r.get_u32();
    let tag = r.get_u32();
    let partition = r.get_i32();
    let offset = r.get_u64();
    let count = r.get_u32();
    Ok(TokenRef {
        epoch,
        tag,
        partition,
        offset,
        count,
    })
}

/// A 32-bit FNV-1a hash.
pub(crate) fn tag_of(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Cursor {
    /// Joins the cursor's group through a new consumer subscribed to `kafka_topic`.
    pub(crate) fn new(
        env: Arc<Env>,
        config: &rdkafka::ClientConfig,
        topic: Topic,
        kafka_topic: String,
        group: &str,
        partitions: u32,
        epoch: u32,
    ) -> StorageResult<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let consumer: StreamConsumer<CursorContext> = config
            .clone()
            .set("group.id", group)
            .create_with_context(CursorContext {
                state: state.clone(),
            })
            .map_err(|e| env.err("create a consumer", e))?;
        consumer
            .subscribe(&[&kafka_topic])
            .map_err(|e| env.err("subscribe", e))?;
        Ok(Cursor {
            epoch,
            tag: tag_of(group),
            topic,
            kafka_topic,
            group: group.to_owned(),
            partitions,
            consumer: Arc::new(consumer),
            state,
            intake: tokio::sync::Mutex::new(()),
            commit_lock: tokio::sync::Mutex::new(()),
            env,
        })
    }

    fn token(&self, partition: i32, offset: u64, count: u32) -> AckToken {
        let mut b = BytesMut::with_capacity(TOKEN_LEN);
        b.put_slice(&TOKEN_MAGIC);
        b.put_u32(self.epoch);
        b.put_u32(self.tag);
        b.put_i32(partition);
        b.put_u64(offset);
        b.put_u32(count);
        AckToken(b.freeze())
    }

    /// Reads tokens; `Ok(None)` for tokens of an older incarnation (nothing to do).
    pub(crate) fn check(&self, t: &AckToken) -> StorageResult<Option<TokenRef>> {
        let r = read_token(t)?;
        if r.tag != self.tag {
            return Err(StorageError::InvalidToken(
                "the token belongs to another cursor".to_owned(),
            ));
        }
        Ok((r.epoch == self.epoch).then_some(r))
    }

    fn delivery(&self, partition: i32, offset: u64, count: u32, record: EventRecord) -> Delivery {
        Delivery {
            token: self.token(partition, offset, count),
            offset: Offset {
                partition: u32::try_from(partition).unwrap_or(0),
                seq: offset,
            },
            delivery_count: count,
            record,
        }
    }

    /// Held events that are due again, in (partition, offset) order, leased anew.
    fn due(&self, max: usize, lease: Duration) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut s = self.state.lock();
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        let mut parts: Vec<_> = s.parts.iter_mut().collect();
        parts.sort_by_key(|(p, _)| **p);
        for (p, part) in parts {
            for (o, h) in part.held.iter_mut() {
                if h.due <= now && out.len() < max {
                    h.count = h.count.saturating_add(1);
                    h.due = now + lease;
                    out.push(self.delivery(*p, *o, h.count, h.record.clone()));
                } else if h.due > now {
                    next = Some(next.map_or(h.due, |n: Instant| n.min(h.due)));
                }
            }
        }
        (out, next)
    }

    /// Loads a partition's committed position and metadata the first time an event of it
    /// arrives on this node.
    async fn ensure_part(&self, partition: i32, first_offset: u64) -> StorageResult<()> {
        if self.state.lock().parts.contains_key(&partition) {
            return Ok(());
        }
        let part = self
            .committed_part(partition)
            .await?
            .unwrap_or_else(|| Part::load(first_offset, ""));
        self.state.lock().parts.entry(partition).or_insert(part);
        Ok(())
    }

    /// The partition's state as its group last committed it; `None` when nothing is committed.
    /// With state topics, the newest state record at the committed floor takes the place of
    /// the commit's metadata.
    async fn committed_part(&self, partition: i32) -> StorageResult<Option<Part>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.kafka_topic, partition);
        let consumer = self.consumer.clone();
        let timeout = self.env.request_timeout;
        let got = self
            .env
            .blocking("read the committed offset", move || {
                consumer.committed_offsets(tpl, timeout)
            })
            .await?
            .map_err(|e| self.env.err("read the committed offset", e))?;
        let (committed, mut metadata) =
            match got.elements().first().map(|e| (e.offset(), e.metadata())) {
                Some((rdkafka::Offset::Offset(o), meta)) if o >= 0 => {
                    (u64::try_from(o).unwrap_or(0), meta.to_owned())
                }
                _ => return Ok(None),
            };
        let mut saved = None;
        if let Some(log) = self.env.state.get()
            && let Some(s) = log.read(&self.env, &self.group, partition).await?
        {
            if s.floor == committed {
                metadata.clone_from(&s.metadata);
            }
            saved = Some((s.floor, s.metadata));
        }
        let mut part = Part::load(committed, &metadata);
        part.saved = saved;
        Ok(Some(part))
    }

    /// See [`EventStore::fetch`](eventmesh_storage::EventStore::fetch).
    pub(crate) async fn fetch(
        &self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        let (mut out, mut next_due) = self.due(max, lease);
        if out.len() >= max {
            return Ok(out);
        }
        let Ok(_intake) = tokio::time::timeout_at(deadline, self.intake.lock()).await else {
            return Ok(out);
        };
        loop {
            if out.is_empty() {
                let (d, n) = self.due(max, lease);
                out = d;
                next_due = n;
            }
            if out.len() >= max {
                break;
            }
            let now = Instant::now();
            let until = if out.is_empty() {
                next_due.map_or(deadline, |n| n.min(deadline))
            } else {
                now
            };
            let got = tokio::time::timeout_at(until.max(now), self.consumer.recv()).await;
            let msg = match got {
                Err(_) => {
                    if !out.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    let unknown = crate::error::is_unknown_topic(&e);
                    let err = self.env.err("fetch", e);
                    if !out.is_empty() {
                        break;
                    }
                    if unknown {
                        return Err(StorageError::UnknownTopic(self.topic.to_string()));
                    }
                    if matches!(err, StorageError::Unavailable(_)) {
                        return Err(err);
                    }
                    warn!(message = "Kafka consumer error.", error = %err, topic = %self.topic);
                    continue;
                }
                Ok(Ok(m)) => (
                    m.partition(),
                    u64::try_from(m.offset()).unwrap_or(0),
                    m.payload().map(Bytes::copy_from_slice),
                ),
            };
            let (partition, offset, payload) = msg;
            self.ensure_part(partition, offset).await?;
            let record = payload.map(|p| EventRecord::decode(&p));
            let mut s = self.state.lock();
            let Some(part) = s.parts.get_mut(&partition) else {
                continue;
            };
            match record {
                Some(Ok(r)) if r.topic == self.topic => {
                    if let Some(count) = part.take(offset) {
                        part.held.insert(
                            offset,
                            Held {
                                record: r.clone(),
                                count,
                                due: Instant::now() + lease,
                            },
                        );
                        out.push(self.delivery(partition, offset, count, r));
                    }
                }
                other => {
                    warn!(
                        message = "Skipped a Kafka record that is not an event of this topic.",
                        topic = %self.topic,
                        partition,
                        offset,
                        reason = match other {
                            Some(Err(e)) => e.to_string(),
                            Some(Ok(r)) => format!("event of topic {}", r.topic),
                            None => "no payload".to_owned(),
                        }
                    );
                    part.skip(offset);
                }
            }
        }
        Ok(out)
    }

    /// Marks events done and commits the new position; returns once Kafka recorded it.
    ///
    /// A rebalance may have taken a token's partition away since its event was handed out (this
    /// node's state of it was dropped then), or may refuse the commit while it runs. The ack is
    /// still recorded: a partition no longer loaded is loaded again from the last commit, the
    /// events marked done, and a refused commit retried (with the acks applied again) until the
    /// rebalance is over, within the request timeout. Only then does the ack return `Ok`; an ack
    /// that could not be recorded fails with `Unavailable` (its events will be delivered again).
    pub(crate) async fn ack(&self, tokens: &[TokenRef]) -> StorageResult<()> {
        let deadline = Instant::now() + self.env.request_timeout;
        let mut pause = Duration::from_millis(20);
        let mut retry = false;
        loop {
            self.reload_missing(tokens).await?;
            let mut changed = false;
            {
                let mut s = self.state.lock();
                for t in tokens {
                    if let Some(p) = s.parts.get_mut(&t.partition) {
                        changed |= p.ack(t.offset);
                    }
                }
            }
            if !changed && !retry {
                return Ok(());
            }
            if self.try_commit().await? {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(StorageError::Unavailable(format!(
                    "Kafka refused the commit of an ack on `{}` for longer than {:?} (a \
                     rebalance): its events will be delivered again",
                    self.kafka_topic, self.env.request_timeout
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            retry = true;
        }
    }

    /// Loads again, from the last commit, the partitions of `tokens` this node no longer holds.
    async fn reload_missing(&self, tokens: &[TokenRef]) -> StorageResult<()> {
        let mut missing: Vec<i32> = {
            let s = self.state.lock();
            tokens
                .iter()
                .map(|t| t.partition)
                .filter(|p| !s.parts.contains_key(p))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        for partition in missing {
            let Some(part) = self.committed_part(partition).await? else {
                return Err(StorageError::Unavailable(format!(
                    "Kafka partition {partition} of `{}` was reassigned (rebalance) before the \
                     ack and has no committed position: its events will be delivered again",
                    self.kafka_topic
                )));
            };
            debug!(
                message = "Acking on a partition this node no longer holds: reloaded its commit.",
                topic = %self.topic,
                partition
            );
            self.state.lock().parts.entry(partition).or_insert(part);
        }
        Ok(())
    }

    /// Gives a delivery back, due again after `delay`.
    pub(crate) fn nack(&self, t: &TokenRef, delay: Duration) {
        self.set_due(t, Instant::now() + delay);
    }

    /// Extends a delivery's lease.
    pub(crate) fn extend(&self, t: &TokenRef, lease: Duration) {
        self.set_due(t, Instant::now() + lease);
    }

    fn set_due(&self, t: &TokenRef, due: Instant) {
        let mut s = self.state.lock();
        if let Some(h) = s
            .parts
            .get_mut(&t.partition)
            .and_then(|p| p.held.get_mut(&t.offset))
            && h.count == t.count
        {
            h.due = due;
        }
    }

    /// Per loaded partition: (floor, in flight, done above the floor).
    pub(crate) fn positions(&self) -> Vec<(i32, u64, u64, u64)> {
        let s = self.state.lock();
        s.parts
            .iter()
            .map(|(p, part)| (*p, part.floor(), part.in_flight(), part.done_above()))
            .collect()
    }

    /// Commits every loaded partition's floor with its metadata. A commit refused during a
    /// rebalance is logged and not an error: the partitions' next owner resumes from the last
    /// commit (at least once). Acks use [`Self::try_commit`] and retry instead.
    pub(crate) async fn commit(&self) -> StorageResult<()> {
        if !self.try_commit().await? {
            warn!(message = "Kafka commit refused during a rebalance.", topic = %self.topic);
        }
        Ok(())
    }

    /// Commits every loaded partition's floor with its metadata; `false` when a rebalance
    /// refused it.
    async fn try_commit(&self) -> StorageResult<bool> {
        let _one = self.commit_lock.lock().await;
        let mut tpl = TopicPartitionList::new();
        let log = self.env.state.get();
        let mut states = Vec::new();
        {
            let s = self.state.lock();
            for (p, part) in &s.parts {
                let floor = part.floor();
                let metadata = part.metadata(self.env.metadata_max_bytes);
                if log.is_some() && state_changed(part.saved.as_ref(), floor, &metadata) {
                    states.push((*p, floor, metadata.clone()));
                }
                let at = rdkafka::Offset::Offset(i64::try_from(floor).unwrap_or(i64::MAX));
                if let Ok(mut e) = tpl
                    .add_partition_offset(&self.kafka_topic, *p, at)
                    .map(|()| tpl.find_partition(&self.kafka_topic, *p))
                    && let Some(e) = e.as_mut()
                {
                    e.set_metadata(metadata);
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(true);
        }
        // The state goes first: a crash between the two leaves a newer state than the commit,
        // which loading ignores unless it is at the committed floor (at least once either way).
        if let Some(log) = log
            && !states.is_empty()
        {
            log.write(&self.env, &self.group, self.partitions, &states)
                .await?;
            let mut s = self.state.lock();
            for (p, floor, metadata) in states {
                if let Some(part) = s.parts.get_mut(&p) {
                    part.saved = Some((floor, metadata));
                }
            }
        }
        let consumer = self.consumer.clone();
        let r = self
            .env
            .blocking("commit", move || consumer.commit(&tpl, CommitMode::Sync))
            .await?;
        match r {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::RebalanceInProgress
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::UnknownMemberId
                    )
                ) =>
            {
                debug!(message = "Kafka commit refused during a rebalance.", error = %e, topic = %self.topic);
                Ok(false)
            }
            Err(e) => Err(self.env.err("commit", e)),
        }
    }

    /// Leaves the group (blocking: the consumer's close). Call on the blocking pool.
    pub(crate) fn consumer(&self) -> Arc<StreamConsumer<CursorContext>> {
        self.consumer.clone()
    }
}
