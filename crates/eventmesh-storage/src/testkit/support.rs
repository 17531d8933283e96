//! Helpers shared by the scenarios: store sessions, event sets, concurrent publishing, draining a
//! cursor with exact expectations.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, ExtensionValue, GroupName, Topic};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{KitFailure, SCENARIO_TIMEOUT, StoreFactory};
use crate::{ConsumerRef, Delivery, EventStore, Offset, StartFrom, StorageError, StorageResult};

/// Tolerance for stores that keep lease and nack deadlines in whole milliseconds.
pub(crate) const CLOCK_SLACK: Duration = Duration::from_millis(5);

/// How long a consumer may see nothing while published events are still missing.
pub(crate) const IDLE: Duration = Duration::from_secs(5);

/// Locks a mutex, ignoring poisoning (a panicking kit task is reported through its join).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random suffix for names, so runs never collide on a shared broker.
pub(crate) fn suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh, valid topic name that no other run uses.
pub(crate) fn unique_topic(label: &str) -> Topic {
    let name = format!("kit-{label}-{}", suffix());
    Topic::new(&name).unwrap_or_else(|e| unreachable!("kit topic name {name} is invalid: {e}"))
}

/// A fresh, valid group name that no other run uses.
pub(crate) fn unique_group(label: &str) -> GroupName {
    let name = format!("kit-{label}-{}", suffix());
    GroupName::new(&name).unwrap_or_else(|e| unreachable!("kit group name {name} is invalid: {e}"))
}

/// A record the kit publishes: identified by its mesh id, carrying its publisher and index.
pub(crate) fn kit_record(topic: &Topic, publisher: usize, index: usize) -> EventRecord {
    let data: Vec<u8> = (0..64u32)
        .map(|b| (b as usize * 31 + index * 7 + publisher) as u8)
        .collect();
    let mut r = EventRecord::new(
        topic.clone(),
        CloudEvent::new(
            format!("kit-{publisher}-{index}"),
            "/eventmesh/conformance-kit",
            "kit.event",
        )
        .with_data("application/octet-stream", Bytes::from(data))
        .with_extension("kitpublisher", ExtensionValue::Integer(publisher as i64))
        .with_extension("kitindex", ExtensionValue::Integer(index as i64)),
    );
    r.partition_key = Some(format!("kit-publisher-{publisher}"));
    r
}

/// The events of one scenario, numbered `publisher * per_publisher + index`.
pub(crate) struct EventSet {
    pub(crate) topic: Topic,
    pub(crate) per_publisher: usize,
    pub(crate) records: Vec<EventRecord>,
    by_id: HashMap<EventId, usize>,
}

impl EventSet {
    pub(crate) fn new(topic: &Topic, publishers: usize, per_publisher: usize) -> Self {
        let mut records = Vec::with_capacity(publishers * per_publisher);
        for p in 0..publishers {
            for i in 0..per_publisher {
                records.push(kit_record(topic, p, i));
            }
        }
        let by_id = records.iter().enumerate().map(|(n, r)| (r.id, n)).collect();
        EventSet {
            topic: topic.clone(),
            per_publisher,
            records,
            by_id,
        }
    }

    /// A set to be filled phase by phase with [`EventSet::add`] (one publisher).
    pub(crate) fn empty(topic: &Topic) -> Self {
        EventSet {
            topic: topic.clone(),
            per_publisher: usize::MAX,
            records: Vec::new(),
            by_id: HashMap::new(),
        }
    }

    /// Creates `n` more records now (so their ingest time is now); returns their numbers.
    pub(crate) fn add(&mut self, n: usize) -> std::ops::Range<usize> {
        let start = self.records.len();
        for i in start..start + n {
            let r = kit_record(&self.topic, 0, i);
            self.by_id.insert(r.id, i);
            self.records.push(r);
        }
        start..start + n
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn publisher(&self, idx: usize) -> usize {
        idx / self.per_publisher
    }

    pub(crate) fn index(&self, idx: usize) -> usize {
        idx % self.per_publisher
    }

    /// The event number of a delivery, checking that it is one of ours and arrived unchanged.
    pub(crate) fn lookup(
        &self,
        sc: &'static str,
        who: &str,
        d: &Delivery,
    ) -> Result<usize, KitFailure> {
        let Some(&idx) = self.by_id.get(&d.record.id) else {
            bail!(
                sc,
                "{who} received an event that was never published to this topic (mesh id {}, offset {}, delivery_count {})",
                d.record.id,
                d.offset,
                d.delivery_count
            );
        };
        ensure!(
            d.record == self.records[idx],
            sc,
            "{who} received event #{idx} (offset {}) altered: stored {:?}, published {:?}",
            d.offset,
            d.record,
            self.records[idx]
        );
        Ok(idx)
    }

    /// The numbers of the events in `range`.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> &[EventRecord] {
        &self.records[range]
    }
}

/// One scenario's session with the store under test.
pub(crate) struct Ctx {
    pub(crate) sc: &'static str,
    store: RwLock<Arc<dyn EventStore>>,
    topics: Mutex<Vec<Topic>>,
    closed: Mutex<bool>,
}

impl Ctx {
    /// Opens the store and checks its health; both failing is a kit failure, never a skip.
    pub(crate) async fn open(
        factory: &dyn StoreFactory,
        sc: &'static str,
    ) -> Result<Ctx, KitFailure> {
        let store = open_healthy(factory, sc).await?;
        Ok(Ctx {
            sc,
            store: RwLock::new(store),
            topics: Mutex::new(Vec::new()),
            closed: Mutex::new(false),
        })
    }

    pub(crate) fn store(&self) -> Arc<dyn EventStore> {
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn fail(&self, msg: impl Into<String>) -> KitFailure {
        KitFailure::new(self.sc, msg)
    }

    /// Maps a store error to a failure naming the operation.
    pub(crate) fn op<T>(&self, what: &str, r: StorageResult<T>) -> Result<T, KitFailure> {
        r.map_err(|e| self.fail(format!("{what} failed: {e}")))
    }

    /// Creates a fresh topic (which must not exist yet) and remembers it for cleanup.
    pub(crate) async fn new_topic(&self, label: &str) -> Result<Topic, KitFailure> {
        let topic = unique_topic(label);
        let created = self.op(
            &format!("create_topic({topic})"),
            self.store().create_topic(&topic).await,
        )?;
        ensure!(
            created,
            self.sc,
            "create_topic({topic}) of a new topic returned false (\"already existed\")"
        );
        lock(&self.topics).push(topic.clone());
        Ok(topic)
    }

    /// Remembers a topic the scenario created itself, for cleanup.
    pub(crate) fn remember_topic(&self, topic: &Topic) {
        lock(&self.topics).push(topic.clone());
    }

    /// Forgets a topic the scenario deleted itself.
    pub(crate) fn forget_topic(&self, topic: &Topic) {
        lock(&self.topics).retain(|t| t != topic);
    }

    /// Runs the scenario body within [`SCENARIO_TIMEOUT`].
    pub(crate) async fn bounded(
        &self,
        body: impl Future<Output = Result<(), KitFailure>>,
    ) -> Result<(), KitFailure> {
        match tokio::time::timeout(SCENARIO_TIMEOUT, body).await {
            Ok(r) => r,
            Err(_) => Err(self.fail(format!("timed out after {} s", SCENARIO_TIMEOUT.as_secs()))),
        }
    }

    /// Closes the store and checks that it now refuses calls with `Closed`.
    pub(crate) async fn close_checked(&self) -> Result<(), KitFailure> {
        let store = self.store();
        self.op("close", store.close().await)?;
        *lock(&self.closed) = true;
        match store.health().await {
            Err(StorageError::Closed) => Ok(()),
            Ok(()) => Err(self.fail("health() after close() returned Ok; expected Err(Closed)")),
            Err(e) => Err(self.fail(format!(
                "health() after close() returned `{e}`; expected Err(Closed)"
            ))),
        }
    }

    /// Closes the current store and opens it again through the factory (a restart).
    pub(crate) async fn restart(&self, factory: &dyn StoreFactory) -> Result<(), KitFailure> {
        self.close_checked().await?;
        let reopened = open_healthy(factory, self.sc).await?;
        *self.store.write().unwrap_or_else(PoisonError::into_inner) = reopened;
        *lock(&self.closed) = false;
        Ok(())
    }

    /// Marks the store closed by the scenario itself (no cleanup is attempted then).
    pub(crate) fn mark_closed(&self) {
        *lock(&self.closed) = true;
    }

    /// Deletes the scenario's topics and closes the store; returns the scenario's result, or the
    /// cleanup failure if the scenario passed.
    pub(crate) async fn finish(self, result: Result<(), KitFailure>) -> Result<(), KitFailure> {
        if *lock(&self.closed) {
            return result;
        }
        let store = self.store();
        let topics = std::mem::take(&mut *lock(&self.topics));
        let mut cleanup = Ok(());
        for t in topics {
            if let Err(e) = store.delete_topic(&t).await {
                cleanup = cleanup.and(Err(
                    self.fail(format!("cleanup: delete_topic({t}) failed: {e}"))
                ));
            }
        }
        if let Err(e) = store.close().await {
            cleanup = cleanup.and(Err(self.fail(format!("cleanup: close failed: {e}"))));
        }
        result.and(cleanup)
    }
}

async fn open_healthy(
    factory: &dyn StoreFactory,
    sc: &'static str,
) -> Result<Arc<dyn EventStore>, KitFailure> {
    let store = factory
        .open()
        .await
        .map_err(|e| KitFailure::new(sc, format!("the factory could not open the store: {e}")))?;
    store.health().await.map_err(|e| {
        KitFailure::new(
            sc,
            format!(
                "health check of the freshly opened `{}` store failed: {e}",
                store.kind()
            ),
        )
    })?;
    Ok(store)
}

/// Fetches, checking the basic shape of the answer (at most `max`, the cursor's topic, count ≥ 1).
pub(crate) async fn fetch(
    sc: &'static str,
    store: &dyn EventStore,
    c: &ConsumerRef,
    max: usize,
    lease: Duration,
    wait: Duration,
) -> Result<Vec<Delivery>, KitFailure> {
    let got = store
        .fetch(c, max, lease, wait)
        .await
        .map_err(|e| KitFailure::new(sc, format!("fetch for {c} failed: {e}")))?;
    ensure!(
        got.len() <= max,
        sc,
        "fetch for {c} with max {max} returned {} deliveries",
        got.len()
    );
    for d in &got {
        ensure!(
            d.record.topic == c.topic,
            sc,
            "fetch for {c} returned an event of topic `{}` (offset {})",
            d.record.topic,
            d.offset
        );
        ensure!(
            d.delivery_count >= 1,
            sc,
            "fetch for {c} returned delivery_count 0 (offset {})",
            d.offset
        );
    }
    Ok(got)
}

/// Acks the deliveries.
pub(crate) async fn ack_all(
    sc: &'static str,
    store: &dyn EventStore,
    c: &ConsumerRef,
    ds: &[Delivery],
) -> Result<(), KitFailure> {
    if ds.is_empty() {
        return Ok(());
    }
    let tokens: Vec<_> = ds.iter().map(|d| d.token.clone()).collect();
    store.ack(c, &tokens).await.map_err(|e| {
        KitFailure::new(
            sc,
            format!("ack of {} tokens for {c} failed: {e}", tokens.len()),
        )
    })
}

/// Fetches with `wait` and requires that nothing is delivered.
pub(crate) async fn expect_quiet(
    sc: &'static str,
    store: &dyn EventStore,
    c: &ConsumerRef,
    wait: Duration,
    set: Option<&EventSet>,
    why: &str,
) -> Result<(), KitFailure> {
    let got = fetch(sc, store, c, 64, Duration::from_secs(30), wait).await?;
    if let Some(d) = got.first() {
        let which = set
            .and_then(|s| s.lookup(sc, "", d).ok())
            .map_or_else(|| "an event".to_owned(), |i| format!("event #{i}"));
        bail!(
            sc,
            "{c}: {why}, but {} deliveries came, first {which} at offset {} with delivery_count {}",
            got.len(),
            d.offset,
            d.delivery_count
        );
    }
    Ok(())
}

/// Checks that first deliveries come in strictly increasing sequence order per partition.
#[derive(Default)]
pub(crate) struct OrderCheck {
    last: HashMap<u32, u64>,
}

impl OrderCheck {
    pub(crate) fn check(
        &mut self,
        sc: &'static str,
        who: &str,
        idx: usize,
        off: Offset,
    ) -> Result<(), KitFailure> {
        if let Some(&prev) = self.last.get(&off.partition) {
            ensure!(
                off.seq > prev,
                sc,
                "{who}: event #{idx} first delivered at offset {off} after offset {}:{prev} (first deliveries of a partition must come in offset order)",
                off.partition
            );
        }
        self.last.insert(off.partition, off.seq);
        Ok(())
    }
}

/// Publishes `set` with [`super::PUBLISHERS`]-style concurrency: one task per publisher, random
/// batch sizes 1..=100. Checks one offset per record and strictly increasing offsets per
/// publisher within a partition; returns the offset of every event. `progress` counts events
/// whose publish returned.
pub(crate) async fn publish_concurrently(
    sc: &'static str,
    store: Arc<dyn EventStore>,
    set: Arc<EventSet>,
    progress: Option<Arc<AtomicUsize>>,
) -> Result<Vec<Offset>, KitFailure> {
    let publishers = set.len() / set.per_publisher;
    let mut tasks = JoinSet::new();
    for p in 0..publishers {
        let (store, set, progress) = (store.clone(), set.clone(), progress.clone());
        tasks.spawn(async move {
            let seed = rand::random::<u64>();
            let mut rng = StdRng::seed_from_u64(seed);
            let base = p * set.per_publisher;
            let mut offsets = Vec::with_capacity(set.per_publisher);
            let mut last: HashMap<u32, u64> = HashMap::new();
            let mut i = 0;
            while i < set.per_publisher {
                let n = rng.random_range(1..=100usize).min(set.per_publisher - i);
                let batch = set.slice(base + i..base + i + n);
                let got = store.publish(&set.topic, batch).await.map_err(|e| {
                    KitFailure::new(sc, format!("publisher {p}: publish of a batch of {n} failed: {e} (batch seed {seed})"))
                })?;
                ensure!(
                    got.len() == n,
                    sc,
                    "publisher {p}: publish of a batch of {n} returned {} offsets",
                    got.len()
                );
                for (k, off) in got.iter().enumerate() {
                    if let Some(&prev) = last.get(&off.partition) {
                        ensure!(
                            off.seq > prev,
                            sc,
                            "publisher {p}: event #{} got offset {off} after {}:{prev} (offsets must strictly increase per publisher within a partition)",
                            base + i + k,
                            off.partition
                        );
                    }
                    last.insert(off.partition, off.seq);
                }
                offsets.extend(got);
                i += n;
                if let Some(c) = &progress {
                    c.fetch_add(n, Ordering::SeqCst);
                }
            }
            Ok((p, offsets))
        });
    }
    let mut all = vec![
        Offset {
            partition: 0,
            seq: 0
        };
        set.len()
    ];
    for (p, offsets) in join_all(sc, &mut tasks).await? {
        let base = p * set.per_publisher;
        all[base..base + offsets.len()].copy_from_slice(&offsets);
    }
    let mut seen = HashSet::with_capacity(all.len());
    for (idx, off) in all.iter().enumerate() {
        ensure!(
            seen.insert(*off),
            sc,
            "publish returned offset {off} for event #{idx} and for another event"
        );
    }
    Ok(all)
}

/// Publishes a range of `set` sequentially in batches of `batch`; returns the offsets.
pub(crate) async fn publish_range(
    sc: &'static str,
    store: &dyn EventStore,
    set: &EventSet,
    range: std::ops::Range<usize>,
    batch: usize,
) -> Result<Vec<Offset>, KitFailure> {
    let mut out = Vec::with_capacity(range.len());
    let mut i = range.start;
    while i < range.end {
        let n = batch.min(range.end - i);
        let got = store
            .publish(&set.topic, set.slice(i..i + n))
            .await
            .map_err(|e| {
                KitFailure::new(
                    sc,
                    format!("publish of events #{i}..#{} failed: {e}", i + n),
                )
            })?;
        ensure!(
            got.len() == n,
            sc,
            "publish of a batch of {n} returned {} offsets",
            got.len()
        );
        out.extend(got);
        i += n;
    }
    Ok(out)
}

/// Waits for every task; on the first failure aborts the others and returns it.
pub(crate) async fn join_all<T: Send + 'static>(
    sc: &'static str,
    tasks: &mut JoinSet<Result<T, KitFailure>>,
) -> Result<Vec<T>, KitFailure> {
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(failure)) => {
                tasks.abort_all();
                return Err(failure);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(KitFailure::new(
                    sc,
                    format!("a kit task panicked or was cancelled: {e}"),
                ));
            }
        }
    }
    Ok(out)
}

/// Which deliveries of a drain must come in offset order per partition.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderRule {
    /// Every delivery (a fresh or freshly sought cursor: each event is new to this pass).
    All,
    /// Only deliveries with `delivery_count == 1` (redeliveries may come first).
    FirstDeliveries,
}

/// What delivery counts a drain expects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountRule {
    /// Any count ≥ 1.
    Any,
    /// Exactly 1 for every delivery.
    One,
    /// At least 2 for the events in `at_least_two`, exactly 1 for the others.
    Split,
}

/// How [`drain`] consumes a cursor.
pub(crate) struct Drain<'a> {
    pub(crate) who: &'a str,
    pub(crate) consumer: &'a ConsumerRef,
    pub(crate) set: &'a EventSet,
    /// Exactly the events that must be delivered.
    pub(crate) expected: &'a HashSet<usize>,
    pub(crate) order: OrderRule,
    pub(crate) counts: CountRule,
    pub(crate) at_least_two: Option<&'a HashSet<usize>>,
    /// Fails when nothing at all is delivered for this long while events are missing.
    pub(crate) idle: Duration,
    /// Afterwards, nothing more may be delivered within this wait.
    pub(crate) quiet: Option<Duration>,
}

/// Consumes (and acks) the cursor until exactly the expected events were delivered: fails on an
/// unexpected event, an event delivered twice, an order or count violation, or missing events.
/// Returns the deliveries in the order received.
pub(crate) async fn drain(
    sc: &'static str,
    store: &dyn EventStore,
    d: Drain<'_>,
) -> Result<Vec<(usize, Delivery)>, KitFailure> {
    let mut got: Vec<(usize, Delivery)> = Vec::with_capacity(d.expected.len());
    let mut received = HashSet::with_capacity(d.expected.len());
    let mut order = OrderCheck::default();
    let mut last_progress = Instant::now();
    while received.len() < d.expected.len() {
        if last_progress.elapsed() > d.idle {
            let mut missing: Vec<usize> = d.expected.difference(&received).copied().collect();
            missing.sort_unstable();
            bail!(
                sc,
                "{}: {} of {} expected events were never delivered (nothing came for {} ms); first missing: {:?}",
                d.who,
                missing.len(),
                d.expected.len(),
                d.idle.as_millis(),
                &missing[..missing.len().min(10)]
            );
        }
        let batch = fetch(
            sc,
            store,
            d.consumer,
            256,
            Duration::from_secs(30),
            Duration::from_millis(200),
        )
        .await?;
        if batch.is_empty() {
            continue;
        }
        last_progress = Instant::now();
        for del in &batch {
            let idx = d.set.lookup(sc, d.who, del)?;
            ensure!(
                d.expected.contains(&idx),
                sc,
                "{}: event #{idx} (offset {}, delivery_count {}) was delivered but must not be",
                d.who,
                del.offset,
                del.delivery_count
            );
            ensure!(
                received.insert(idx),
                sc,
                "{}: event #{idx} (offset {}) delivered a second time (delivery_count {}); it had already been delivered in this pass, and acked unless in the same batch",
                d.who,
                del.offset,
                del.delivery_count
            );
            let two = d.at_least_two.is_some_and(|s| s.contains(&idx));
            match d.counts {
                CountRule::Any => {}
                CountRule::One => ensure!(
                    del.delivery_count == 1,
                    sc,
                    "{}: event #{idx} (offset {}) delivered with delivery_count {}; expected 1",
                    d.who,
                    del.offset,
                    del.delivery_count
                ),
                CountRule::Split => ensure!(
                    if two {
                        del.delivery_count >= 2
                    } else {
                        del.delivery_count == 1
                    },
                    sc,
                    "{}: event #{idx} (offset {}) delivered with delivery_count {}; expected {}",
                    d.who,
                    del.offset,
                    del.delivery_count,
                    if two {
                        "at least 2 (it was handed out before)"
                    } else {
                        "1 (it was never handed out)"
                    }
                ),
            }
            if d.order == OrderRule::All || del.delivery_count == 1 {
                order.check(sc, d.who, idx, del.offset)?;
            }
            got.push((idx, del.clone()));
        }
        ack_all(sc, store, d.consumer, &batch).await?;
    }
    if let Some(wait) = d.quiet {
        expect_quiet(
            sc,
            store,
            d.consumer,
            wait,
            Some(d.set),
            "every expected event was delivered and acked",
        )
        .await?;
    }
    Ok(got)
}

/// Subscribes, mapping the error.
pub(crate) async fn subscribe(
    sc: &'static str,
    store: &dyn EventStore,
    c: &ConsumerRef,
    start: StartFrom,
) -> Result<(), KitFailure> {
    store
        .subscribe(c, start)
        .await
        .map_err(|e| KitFailure::new(sc, format!("subscribe({c}, {start:?}) failed: {e}")))
}

/// Checks that a cursor has nothing in flight and has committed past every delivered offset.
pub(crate) async fn expect_settled(
    sc: &'static str,
    store: &dyn EventStore,
    c: &ConsumerRef,
    offsets: &[Offset],
) -> Result<(), KitFailure> {
    let info = store
        .cursor_info(c)
        .await
        .map_err(|e| KitFailure::new(sc, format!("cursor_info({c}) failed: {e}")))?;
    ensure!(
        info.in_flight == 0,
        sc,
        "{c}: every delivered event was acked, but cursor_info reports {} in flight",
        info.in_flight
    );
    let mut max: HashMap<u32, u64> = HashMap::new();
    for off in offsets {
        let m = max.entry(off.partition).or_insert(off.seq);
        *m = (*m).max(off.seq);
    }
    for (partition, seq) in max {
        let committed = info
            .committed
            .iter()
            .find(|(p, _)| *p == partition)
            .map(|(_, s)| *s);
        ensure!(
            committed.is_some_and(|s| s > seq),
            sc,
            "{c}: every event up to offset {partition}:{seq} was acked, but cursor_info reports committed {committed:?} for partition {partition}"
        );
    }
    Ok(())
}

/// A counter shared between tasks.
pub(crate) fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A background task (publishing) whose failure is noticed while the foreground consumes.
pub(crate) struct Background<T> {
    sc: &'static str,
    tasks: JoinSet<Result<T, KitFailure>>,
    done: Option<T>,
}

impl<T: Send + 'static> Background<T> {
    pub(crate) fn spawn(
        sc: &'static str,
        fut: impl Future<Output = Result<T, KitFailure>> + Send + 'static,
    ) -> Self {
        let mut tasks = JoinSet::new();
        tasks.spawn(fut);
        Background {
            sc,
            tasks,
            done: None,
        }
    }

    /// Whether the task has finished; its failure is returned as soon as it is seen.
    pub(crate) fn poll(&mut self) -> Result<bool, KitFailure> {
        if self.done.is_some() {
            return Ok(true);
        }
        match self.tasks.try_join_next() {
            None => Ok(false),
            Some(Ok(Ok(v))) => {
                self.done = Some(v);
                Ok(true)
            }
            Some(Ok(Err(failure))) => Err(failure),
            Some(Err(e)) => Err(KitFailure::new(
                self.sc,
                format!("a kit task panicked or was cancelled: {e}"),
            )),
        }
    }

    /// Waits for the task's result.
    pub(crate) async fn finish(mut self) -> Result<T, KitFailure> {
        if let Some(v) = self.done.take() {
            return Ok(v);
        }
        let mut out = join_all(self.sc, &mut self.tasks).await?;
        out.pop()
            .ok_or_else(|| KitFailure::new(self.sc, "a kit task vanished"))
    }
}
