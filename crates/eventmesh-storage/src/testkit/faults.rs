//! Deliberately faulty wrappers of a store: the kit's own tests.
//!
//! [`FaultyFactory`] wraps a backend's factory and injects one [`Fault`] into every store it
//! opens. [`check_detection`] asserts that each scenario listed by [`Fault::caught_by`] fails
//! against it, and that the faithful wrapper ([`Fault::None`]) passes the whole kit. The faults are
//! mostly intermittent (one ack in 50 dropped, one fetch in 7 reordered, …), as real bugs are.
//! [`fault_detection_tests!`](crate::fault_detection_tests) turns that into one test per fault.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::{EventRecord, Topic};

use super::support::lock;
use super::{KitReport, Scenario, StoreFactory, run_all};
use crate::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};

/// A fault a [`FaultyFactory`] injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No fault: a faithful pass-through (the control).
    #[default]
    None,
    /// One ack token in 50 is silently ignored (`ack` still returns `Ok`).
    DropAcks,
    /// One fetch in 7 with at least two deliveries returns the first two swapped.
    ReorderFetch,
    /// On close, the last 5 events published to each topic are lost: stores opened afterwards
    /// never deliver them.
    LoseOnRestart,
    /// One delivery in 100 is handed out twice: again in the same fetch, or in the next one.
    DuplicateDelivery,
    /// One acked delivery in 40 is handed out again by a later fetch.
    RedeliverAfterAck,
    /// Nack delays are ignored: a nacked event is due at once.
    IgnoreNackDelay,
    /// `extend_lease` does nothing (and returns `Ok`).
    IgnoreExtendLease,
    /// Every delivery reports `delivery_count == 1`.
    FreezeDeliveryCount,
    /// All members of a BROADCASTING group share one cursor.
    SharedBroadcastCursor,
    /// Subscribing an existing cursor moves it to the requested start.
    ResubscribeResets,
    /// `seek` does nothing (and returns `Ok`).
    SeekIgnored,
    /// `close` does nothing: the store keeps serving.
    CloseIgnored,
}

impl Fault {
    /// Every fault, the control first.
    pub const ALL: [Fault; 13] = [
        Fault::None,
        Fault::DropAcks,
        Fault::ReorderFetch,
        Fault::LoseOnRestart,
        Fault::DuplicateDelivery,
        Fault::RedeliverAfterAck,
        Fault::IgnoreNackDelay,
        Fault::IgnoreExtendLease,
        Fault::FreezeDeliveryCount,
        Fault::SharedBroadcastCursor,
        Fault::ResubscribeResets,
        Fault::SeekIgnored,
        Fault::CloseIgnored,
    ];

    /// The scenarios that must fail against a store with this fault.
    pub fn caught_by(self) -> &'static [Scenario] {
        use Scenario::*;
        match self {
            Fault::None => &[],
            Fault::DropAcks => &[PublishFetchOrder, ClusteringSharedCursor, RestartDurability],
            Fault::ReorderFetch => &[
                PublishFetchOrder,
                ClusteringSharedCursor,
                BroadcastingFanOut,
                ReplayAndSeek,
            ],
            Fault::LoseOnRestart => &[RestartDurability],
            Fault::DuplicateDelivery => &[
                PublishFetchOrder,
                ClusteringSharedCursor,
                BroadcastingFanOut,
                ReplayAndSeek,
            ],
            Fault::RedeliverAfterAck => &[
                PublishFetchOrder,
                ClusteringSharedCursor,
                BroadcastingFanOut,
                ReplayAndSeek,
            ],
            Fault::IgnoreNackDelay => &[NackAndLeaseRedelivery],
            Fault::IgnoreExtendLease => &[NackAndLeaseRedelivery],
            Fault::FreezeDeliveryCount => &[ClusteringSharedCursor, NackAndLeaseRedelivery],
            Fault::SharedBroadcastCursor => &[BroadcastingFanOut, ReplayAndSeek],
            Fault::ResubscribeResets => &[BroadcastingFanOut, ReplayAndSeek, RestartDurability],
            Fault::SeekIgnored => &[ReplayAndSeek],
            Fault::CloseIgnored => &[RestartDurability, TopicAdmin],
        }
    }
}

/// Wraps a backend's factory, injecting a [`Fault`] into every store it opens.
///
/// If the backend is durable, every `open` opens the backend anew and `close` closes it: restarts
/// are real. If it is volatile, the backend is opened once and every `open` returns a new view of
/// that one store; closing a view does not close the store (a simulated restart), and the wrapper
/// reports `durable() == true` so that the restart scenario runs. That is how a fault such as
/// [`Fault::LoseOnRestart`] is exercised on the memory store.
pub struct FaultyFactory {
    inner: Box<dyn StoreFactory>,
    shared: Arc<Shared>,
    /// For a volatile backend: the one store every view shares.
    single: Option<tokio::sync::Mutex<Option<Arc<dyn EventStore>>>>,
}

impl FaultyFactory {
    /// Wraps `inner` with `fault`.
    pub fn new(inner: impl StoreFactory + 'static, fault: Fault) -> Self {
        let single = (!inner.durable()).then(|| tokio::sync::Mutex::new(None));
        FaultyFactory {
            inner: Box::new(inner),
            shared: Arc::new(Shared {
                fault,
                ..Shared::default()
            }),
            single,
        }
    }
}

#[async_trait]
impl StoreFactory for FaultyFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        let (inner, owns_inner) = match &self.single {
            Some(single) => {
                let mut slot = single.lock().await;
                let store = match &*slot {
                    Some(s) => s.clone(),
                    None => {
                        let s = self.inner.open().await?;
                        *slot = Some(s.clone());
                        s
                    }
                };
                (store, false)
            }
            None => (self.inner.open().await?, true),
        };
        Ok(Arc::new(FaultyStore {
            inner,
            shared: self.shared.clone(),
            closed: AtomicBool::new(false),
            owns_inner,
        }))
    }

    fn durable(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Shared {
    fault: Fault,
    fetches: AtomicU64,
    deliveries: AtomicU64,
    acks: AtomicU64,
    /// Per topic, the last offsets published (for [`Fault::LoseOnRestart`]).
    published: Mutex<HashMap<Topic, VecDeque<Offset>>>,
    /// Events lost by a "restart".
    lost: Mutex<HashSet<(Topic, Offset)>>,
    /// Deliveries handed out and not yet acked (for [`Fault::RedeliverAfterAck`]).
    outstanding: Mutex<HashMap<AckToken, Delivery>>,
    /// Deliveries waiting to be handed out again.
    ghosts: Mutex<Vec<(ConsumerRef, Delivery)>>,
}

const LOST_PER_TOPIC: usize = 5;

struct FaultyStore {
    inner: Arc<dyn EventStore>,
    shared: Arc<Shared>,
    closed: AtomicBool,
    owns_inner: bool,
}

impl FaultyStore {
    fn fault(&self) -> Fault {
        self.shared.fault
    }

    fn check(&self) -> StorageResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    fn map(&self, c: &ConsumerRef) -> ConsumerRef {
        if self.fault() == Fault::SharedBroadcastCursor && c.member.is_some() {
            ConsumerRef {
                member: Some("kit-fault-shared-member".into()),
                ..c.clone()
            }
        } else {
            c.clone()
        }
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        self.check()?;
        self.inner.create_topic(topic).await
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        self.check()?;
        self.inner.delete_topic(topic).await
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        self.check()?;
        self.inner.list_topics().await
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        self.check()?;
        let offsets = self.inner.publish(topic, records).await?;
        if self.fault() == Fault::LoseOnRestart {
            let mut published = lock(&self.shared.published);
            let last = published.entry(topic.clone()).or_default();
            last.extend(offsets.iter().copied());
            while last.len() > LOST_PER_TOPIC {
                last.pop_front();
            }
        }
        Ok(offsets)
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        self.check()?;
        let c = self.map(consumer);
        if self.fault() == Fault::ResubscribeResets && self.inner.cursor_info(&c).await.is_ok() {
            return self.inner.seek(&c, start).await;
        }
        self.inner.subscribe(&c, start).await
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        self.check()?;
        self.inner.unsubscribe(&self.map(consumer)).await
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        self.check()?;
        let c = self.map(consumer);
        let mut out = self.inner.fetch(&c, max, lease, wait).await?;
        match self.fault() {
            Fault::LoseOnRestart => {
                let (lost, kept): (Vec<Delivery>, Vec<Delivery>) = {
                    let lost = lock(&self.shared.lost);
                    out.into_iter()
                        .partition(|d| lost.contains(&(d.record.topic.clone(), d.offset)))
                };
                if !lost.is_empty() {
                    let tokens: Vec<AckToken> = lost.into_iter().map(|d| d.token).collect();
                    self.inner.ack(&c, &tokens).await?;
                }
                out = kept;
            }
            Fault::ReorderFetch
                if out.len() >= 2
                    && self.shared.fetches.fetch_add(1, Ordering::SeqCst) % 7 == 6 =>
            {
                out.swap(0, 1);
            }
            Fault::DuplicateDelivery => {
                // Duplicates go into the same batch when there is room, else into the next fetch.
                let mut ghosts = lock(&self.shared.ghosts);
                let mut dup = Vec::with_capacity(max);
                let room = max.saturating_sub(out.len());
                let mut i = 0;
                while i < ghosts.len() && dup.len() < room {
                    if ghosts[i].0 == *consumer {
                        dup.push(ghosts.swap_remove(i).1);
                    } else {
                        i += 1;
                    }
                }
                let mut extra = Vec::new();
                for d in out {
                    if self.shared.deliveries.fetch_add(1, Ordering::SeqCst) % 100 == 99 {
                        extra.push(d.clone());
                    }
                    dup.push(d);
                }
                for d in extra {
                    if dup.len() < max {
                        dup.push(d);
                    } else {
                        ghosts.push((consumer.clone(), d));
                    }
                }
                out = dup;
            }
            Fault::FreezeDeliveryCount => {
                for d in &mut out {
                    d.delivery_count = 1;
                }
            }
            Fault::RedeliverAfterAck => {
                let mut outstanding = lock(&self.shared.outstanding);
                for d in &out {
                    outstanding.insert(d.token.clone(), d.clone());
                }
                drop(outstanding);
                let mut ghosts = lock(&self.shared.ghosts);
                let mut i = 0;
                while i < ghosts.len() && out.len() < max {
                    if ghosts[i].0 == *consumer {
                        out.push(ghosts.swap_remove(i).1);
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        self.check()?;
        let c = self.map(consumer);
        match self.fault() {
            Fault::DropAcks => {
                let kept: Vec<AckToken> = tokens
                    .iter()
                    .filter(|_| self.shared.acks.fetch_add(1, Ordering::SeqCst) % 50 != 49)
                    .cloned()
                    .collect();
                self.inner.ack(&c, &kept).await
            }
            Fault::RedeliverAfterAck => {
                self.inner.ack(&c, tokens).await?;
                let mut outstanding = lock(&self.shared.outstanding);
                let mut ghosts = lock(&self.shared.ghosts);
                for t in tokens {
                    if let Some(d) = outstanding.remove(t)
                        && self.shared.acks.fetch_add(1, Ordering::SeqCst) % 40 == 39
                    {
                        ghosts.push((consumer.clone(), d));
                    }
                }
                Ok(())
            }
            _ => self.inner.ack(&c, tokens).await,
        }
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        self.check()?;
        let delay = if self.fault() == Fault::IgnoreNackDelay {
            Duration::ZERO
        } else {
            delay
        };
        self.inner.nack(&self.map(consumer), token, delay).await
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        self.check()?;
        if self.fault() == Fault::IgnoreExtendLease {
            return Ok(());
        }
        self.inner
            .extend_lease(&self.map(consumer), tokens, lease)
            .await
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        self.check()?;
        if self.fault() == Fault::SeekIgnored {
            return Ok(());
        }
        self.inner.seek(&self.map(consumer), target).await
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        self.check()?;
        self.inner.cursor_info(&self.map(consumer)).await
    }

    async fn health(&self) -> StorageResult<()> {
        self.check()?;
        self.inner.health().await
    }

    async fn close(&self) -> StorageResult<()> {
        if self.fault() == Fault::CloseIgnored {
            return Ok(());
        }
        self.closed.store(true, Ordering::SeqCst);
        if self.fault() == Fault::LoseOnRestart {
            let published = std::mem::take(&mut *lock(&self.shared.published));
            let mut lost = lock(&self.shared.lost);
            for (topic, offsets) in published {
                lost.extend(offsets.into_iter().map(|o| (topic.clone(), o)));
            }
        }
        if self.owns_inner {
            self.inner.close().await
        } else {
            Ok(())
        }
    }
}

/// Runs the kit against `inner` wrapped with `fault`: for [`Fault::None`], the whole kit must
/// pass with the restart scenario run (not skipped); for any other fault, every scenario in
/// [`Fault::caught_by`] must fail. Returns a summary of what each scenario reported, or what went
/// wrong.
pub async fn check_detection(
    inner: impl StoreFactory + 'static,
    fault: Fault,
) -> Result<String, String> {
    let factory = FaultyFactory::new(inner, fault);
    if fault == Fault::None {
        let report: KitReport = run_all(&factory)
            .await
            .map_err(|f| format!("the faithful wrapper (no fault) failed the kit: {f}"))?;
        if !report.skipped().is_empty() {
            return Err(format!(
                "the faithful wrapper skipped {:?}; it must run every scenario",
                report.skipped()
            ));
        }
        print!("{report}");
        return Ok(report.to_string());
    }
    let mut summary = String::new();
    for &scenario in fault.caught_by() {
        match scenario.run(&factory).await {
            Ok(()) => {
                return Err(format!(
                    "the kit did NOT detect fault {fault:?}: scenario `{scenario}` passed against it"
                ));
            }
            Err(failure) => summary.push_str(&format!(
                "{fault:?} caught by {scenario}: {}\n",
                failure.message
            )),
        }
    }
    print!("{summary}");
    Ok(summary)
}
