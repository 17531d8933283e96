//! The storage conformance kit: one set of scenarios every [`EventStore`] backend must pass.
//!
//! # Running it for a backend
//!
//! A backend implements [`StoreFactory`] (open, or reopen on the same data, the store under
//! test) and adds one line to an integration test, with `eventmesh-storage` as a dev-dependency
//! with the `testkit` feature:
//!
//! ```toml
//! [dev-dependencies]
//! eventmesh-storage = { workspace = true, features = ["testkit"] }
//! ```
//!
//! ```ignore
//! // tests/conformance.rs
//! eventmesh_storage::conformance_tests!(MyFactory::new());
//! ```
//!
//! The macro expands to one `#[tokio::test]` (multi-thread, 4 workers) per scenario, named
//! `conformance_<scenario>`, each evaluating the factory expression anew. A volatile store can use
//! [`VolatileFactory`]: `conformance_tests!(VolatileFactory::new(MemoryStore::new))`; a store in a
//! directory can use [`DirFactory`], which gives it a fresh temporary directory and reopens it
//! there: `conformance_tests!(DirFactory::new(|dir| EmbeddedStore::open(EmbeddedOptions::new(dir))))`.
//! [`run_all`] runs every scenario in turn on one factory and returns a [`KitReport`].
//!
//! A second macro, [`fault_detection_tests!`](crate::fault_detection_tests), runs the kit against
//! deliberately faulty wrappers of the backend ([`faults`]) and asserts that the kit catches each
//! fault: the proof that the scenarios have teeth on that backend.
//!
//! The macros name this crate `eventmesh_storage` (and its re-exported tokio), so a backend must
//! depend on it under that name. The generated tests need nothing else from the backend crate.
//!
//! A broker-backed store's tests start their private broker with [`process`]: a free port, a log
//! file, a readiness wait that notices an early exit, kill, stop and start again.
//!
//! # Faults the kit is proven to catch
//!
//! Each row is asserted by `fault_detection_tests!` (on the memory and the embedded store): every
//! scenario listed must fail against a store with that fault, and the faithful wrapper must pass.
//!
//! | fault ([`faults::Fault`]) | scenarios that fail |
//! | --- | --- |
//! | `DropAcks`: one ack in 50 ignored | order (events left in flight), clustering (redelivered after ack), restart (acked event back) |
//! | `ReorderFetch`: two deliveries swapped in one fetch in 7 | order, clustering, broadcasting, replay |
//! | `LoseOnRestart`: the last 5 events per topic lost on close | restart (events missing) |
//! | `DuplicateDelivery`: one delivery in 100 handed out twice | order, clustering, broadcasting, replay |
//! | `RedeliverAfterAck`: one acked delivery in 40 handed out again | order, clustering, broadcasting, replay |
//! | `IgnoreNackDelay` | nack/lease (came back before its delay) |
//! | `IgnoreExtendLease` | nack/lease (came back before its extended lease) |
//! | `FreezeDeliveryCount`: counts always 1 | clustering, nack/lease |
//! | `SharedBroadcastCursor`: members share one cursor | broadcasting, replay |
//! | `ResubscribeResets`: subscribe moves an existing cursor | broadcasting, replay, restart |
//! | `SeekIgnored` | replay |
//! | `CloseIgnored` | restart, admin |
//!
//! # Rules
//!
//! * A scenario returns `Err(KitFailure)` naming exactly what was violated (event, offset, member,
//!   delivery count, timing). Failing to open the store, a failing health check or any unexpected
//!   error of the store is a failure, never a skip: a backend whose broker is unreachable fails.
//! * The only skip: [`restart_durability`] when [`StoreFactory::durable`] is `false` (a volatile
//!   store such as the memory store). The skip is written straight to the process's stderr, past
//!   the test harness's capture, and listed in the [`KitReport`]. A durable backend never skips.
//! * Every topic and group name carries a random suffix, and each scenario deletes its topics at
//!   the end, so the kit can run against a shared broker and in parallel with itself.
//! * Each scenario opens its own store through the factory and closes it at the end (a store that
//!   locks its data directory can therefore be reopened by the next scenario). A scenario is
//!   bounded by [`SCENARIO_TIMEOUT`].
//! * Timing assertions are lower bounds only (an event must not come back *before* its nack delay
//!   or lease ends), measured from an instant taken before the call that started the delay, so a
//!   slow or loaded machine cannot make a correct store fail. Upper bounds are generous deadlines.
//!
//! # Sizes
//!
//! [`EVENTS`] = 10,000 events per large scenario, published by [`PUBLISHERS`] = 4 concurrent
//! publishers in random-size batches (1 to 100, each publisher's events carry one partition key),
//! [`MEMBERS`] = 3 group members, one event in [`NACK_EVERY`] = 10 nacked on its first delivery,
//! and one member dropped mid-stream.
//!
//! # Scenarios and what they assert
//!
//! 1. [`publish_fetch_order`]: 4 publishers publish 10,000 events concurrently while one consumer
//!    long-polls. Publish returns one offset per record; each publisher's offsets strictly
//!    increase within a partition and no two events share an offset. The consumer receives every
//!    event exactly once, each with `delivery_count == 1`, the record unchanged; first deliveries
//!    come in strictly increasing sequence order per partition, so each publisher's events arrive
//!    in its publish order; the offset a delivery reports equals the one publish returned. A batch
//!    holding a record for another topic is refused with `Invalid` and none of its records is ever
//!    delivered (all or nothing). Afterwards nothing more is delivered, and `cursor_info` shows no
//!    event in flight and a committed position past every event.
//! 2. [`clustering_shared_cursor`]: 3 members share one CLUSTERING cursor while 4 publishers
//!    publish 10,000 events. Members ack, except that 10% of events are nacked (30 ms delay) on
//!    their first delivery; after a fifth of the events are acked, one member fetches a batch with
//!    a 400 ms lease and drops out without acking. Asserted: every event is delivered and acked;
//!    no delivery of an event starts after an ack of its latest delivery returned (no redelivery
//!    after ack, to any member); no event is handed to a member while another member's lease on it
//!    is still running (measured conservatively); delivery counts start at 1 and strictly increase
//!    per event; every nacked event comes back with a higher count; every event the dropped
//!    member held comes back to a live member, not before its lease ended; first deliveries are in
//!    sequence order per partition (across fetches that did not overlap in time); offsets match
//!    publish. At the end nothing is delivered for a full lease and nothing is in flight.
//! 3. [`broadcasting_fan_out`]: 100 events are published, then 3 members of a BROADCASTING group
//!    subscribe from `Latest`, then 4 publishers publish 10,000 events. Each member receives each of
//!    the 10,000 exactly once, in order, and never one of the 100. One member stalls (holding an
//!    un-acked batch) until the other two have received everything: a slow member must not hold
//!    back the others. One member disconnects after a third of the events and re-subscribes with
//!    the same identity from `Latest` once publishing is done: its position is kept (same
//!    `committed`), it continues from it and misses nothing.
//! 4. [`nack_and_lease_redelivery`]: a nacked event does not come back before its delay (400 ms)
//!    and then comes back with `delivery_count` 2; a zero-delay nack comes back at once with 3;
//!    after an ack it never comes back. 100 events fetched with a 300 ms lease and not acked come
//!    back after the lease, twice, each time with a higher count (2, then 3, unless the broker
//!    counted a delivery that never reached the store). An event whose lease is extended every
//!    200 ms (600 ms lease) for longer than the lease does not come back until the extensions stop
//!    and a lease has passed. A due redelivery is fetched before new events, which follow in
//!    offset order.
//! 5. [`replay_and_seek`]: 10,000 events published in three phases separated in time, consumed
//!    and acked. Seeking to an offset re-delivers exactly the events at or after it (acked ones
//!    included), in order; seeking to a time re-delivers exactly the events published from that
//!    time on; seeking `Latest` delivers nothing until new events arrive, then exactly those;
//!    seeking `Earliest` re-delivers everything; seeking past the end delivers nothing; a
//!    BROADCASTING member seeks independently; subscribing an existing cursor keeps its position.
//! 6. [`restart_durability`] (skipped only if the factory is not durable): 10,000 events
//!    published; a CLUSTERING cursor fetches 8,000 of them and acks 6,000 plus every third of the
//!    other fetched ones; a BROADCASTING member acks 1,000. The store is closed (and refuses calls
//!    with `Closed`) and reopened through the factory. A new group reads all 10,000 events, in
//!    order, unchanged, at the offsets publish returned; the old group gets exactly the events it
//!    had not acked (the fetched ones with `delivery_count >= 2`, the others with 1) and never an
//!    acked one; the member resumes after its 1,000.
//! 7. [`topic_admin`]: create is idempotent (`true`, then `false`, events kept); list shows the
//!    topic; unknown topics give `UnknownTopic` (publish, subscribe, delete), unknown cursors give
//!    `UnknownConsumer` (fetch, cursor_info); malformed ack tokens give `InvalidToken` (ack, nack,
//!    extend_lease); a record for another topic is refused with `Invalid` and not stored;
//!    unsubscribe forgets the position; delete removes the topic, its events and its cursors
//!    (re-creating the name gives an empty topic); health is ok; after close every call fails with
//!    `Closed`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{EventStore, StorageError, StorageResult};

/// Fails the current scenario with a formatted message when the condition is false.
macro_rules! ensure {
    ($cond:expr, $scenario:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::testkit::KitFailure::new($scenario, format!($($arg)+)));
        }
    };
}

/// Fails the current scenario with a formatted message.
macro_rules! bail {
    ($scenario:expr, $($arg:tt)+) => {
        return Err($crate::testkit::KitFailure::new($scenario, format!($($arg)+)))
    };
}

mod admin;
mod broadcasting;
mod broker_restart;
mod clustering;
mod durability;
pub mod faults;
mod ordering;
pub mod process;
mod redelivery;
pub mod redis_server;
mod replay;
mod support;

pub use admin::topic_admin;
pub use broadcasting::broadcasting_fan_out;
pub use broker_restart::{BrokerProcess, RestartOptions, RestartReport, broker_kill_restart};
pub use clustering::clustering_shared_cursor;
pub use durability::restart_durability;
pub use ordering::publish_fetch_order;
pub use redelivery::nack_and_lease_redelivery;
pub use replay::replay_and_seek;

/// Events published in each large scenario.
pub const EVENTS: usize = 10_000;
/// Concurrent publishers in the publishing scenarios.
pub const PUBLISHERS: usize = 4;
/// Members of the consumer group in the CLUSTERING and BROADCASTING scenarios.
pub const MEMBERS: usize = 3;
/// One event in this many is nacked on its first delivery in the CLUSTERING scenario (10%).
pub const NACK_EVERY: usize = 10;
/// The longest a scenario may take before it fails as timed out.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

/// Opens (or reopens, on the same data) the store under test.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// Opens the store. A durable backend returns a store over the same data every time, once
    /// the previous one was closed. An error fails the kit (an unreachable broker is a failure).
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>>;

    /// Whether the data survives a close and reopen. `false` only for a volatile store (such as
    /// the memory store), which then skips [`restart_durability`] — and only that — loudly.
    fn durable(&self) -> bool;
}

#[async_trait]
impl<F: StoreFactory + ?Sized> StoreFactory for Box<F> {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        (**self).open().await
    }

    fn durable(&self) -> bool {
        (**self).durable()
    }
}

#[async_trait]
impl<F: StoreFactory + ?Sized> StoreFactory for Arc<F> {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        (**self).open().await
    }

    fn durable(&self) -> bool {
        (**self).durable()
    }
}

/// A factory for a volatile store: every `open` builds a new, empty store, and `durable()` is
/// `false`.
pub struct VolatileFactory<F>(F);

impl<F, S> VolatileFactory<F>
where
    F: Fn() -> S + Send + Sync,
    S: EventStore,
{
    /// A factory calling `make` for every open.
    pub fn new(make: F) -> Self {
        VolatileFactory(make)
    }
}

#[async_trait]
impl<F, S> StoreFactory for VolatileFactory<F>
where
    F: Fn() -> S + Send + Sync,
    S: EventStore,
{
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        Ok(Arc::new((self.0)()))
    }

    fn durable(&self) -> bool {
        false
    }
}

/// A durable factory for a store that lives in a directory (the embedded store): it owns a fresh
/// temporary directory, removed when the factory is dropped, and every `open` calls `open_at`
/// with it on a blocking thread, so a reopen finds the data the previous store left there.
///
/// ```ignore
/// eventmesh_storage::conformance_tests!(DirFactory::new(|dir| EmbeddedStore::open(EmbeddedOptions::new(dir))));
/// ```
pub struct DirFactory<F> {
    dir: PathBuf,
    open_at: Arc<F>,
}

impl<F, S> DirFactory<F>
where
    F: Fn(&Path) -> StorageResult<S> + Send + Sync + 'static,
    S: EventStore,
{
    /// A factory over a new temporary directory (created on the first open).
    pub fn new(open_at: F) -> Self {
        let dir = std::env::temp_dir().join(format!("eventmesh-kit-{}", support::suffix()));
        DirFactory {
            dir,
            open_at: Arc::new(open_at),
        }
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl<F, S> StoreFactory for DirFactory<F>
where
    F: Fn(&Path) -> StorageResult<S> + Send + Sync + 'static,
    S: EventStore,
{
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StorageError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let (dir, open_at) = (self.dir.clone(), self.open_at.clone());
        let store = tokio::task::spawn_blocking(move || open_at(&dir))
            .await
            .map_err(|e| StorageError::Backend(format!("opening the store panicked: {e}")))??;
        Ok(Arc::new(store))
    }

    fn durable(&self) -> bool {
        true
    }
}

impl<F> Drop for DirFactory<F> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A violated expectation: which scenario, and exactly what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitFailure {
    /// The scenario's name (see [`Scenario::name`]).
    pub scenario: &'static str,
    /// What was violated, naming events, offsets, members, counts and timings.
    pub message: String,
}

impl KitFailure {
    /// A failure of `scenario`.
    pub fn new(scenario: &'static str, message: impl Into<String>) -> Self {
        KitFailure {
            scenario,
            message: message.into(),
        }
    }
}

impl fmt::Display for KitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "storage conformance scenario `{}` failed: {}",
            self.scenario, self.message
        )
    }
}

impl std::error::Error for KitFailure {}

/// The scenarios of the kit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// [`publish_fetch_order`].
    PublishFetchOrder,
    /// [`clustering_shared_cursor`].
    ClusteringSharedCursor,
    /// [`broadcasting_fan_out`].
    BroadcastingFanOut,
    /// [`nack_and_lease_redelivery`].
    NackAndLeaseRedelivery,
    /// [`replay_and_seek`].
    ReplayAndSeek,
    /// [`restart_durability`].
    RestartDurability,
    /// [`topic_admin`].
    TopicAdmin,
}

impl Scenario {
    /// Every scenario, in the order [`run_all`] runs them.
    pub const ALL: [Scenario; 7] = [
        Scenario::PublishFetchOrder,
        Scenario::ClusteringSharedCursor,
        Scenario::BroadcastingFanOut,
        Scenario::NackAndLeaseRedelivery,
        Scenario::ReplayAndSeek,
        Scenario::RestartDurability,
        Scenario::TopicAdmin,
    ];

    /// The scenario's name, as in [`KitFailure::scenario`].
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PublishFetchOrder => ordering::NAME,
            Scenario::ClusteringSharedCursor => clustering::NAME,
            Scenario::BroadcastingFanOut => broadcasting::NAME,
            Scenario::NackAndLeaseRedelivery => redelivery::NAME,
            Scenario::ReplayAndSeek => replay::NAME,
            Scenario::RestartDurability => durability::NAME,
            Scenario::TopicAdmin => admin::NAME,
        }
    }

    /// Runs the scenario against the factory.
    pub async fn run(self, factory: &dyn StoreFactory) -> Result<(), KitFailure> {
        match self {
            Scenario::PublishFetchOrder => publish_fetch_order(factory).await,
            Scenario::ClusteringSharedCursor => clustering_shared_cursor(factory).await,
            Scenario::BroadcastingFanOut => broadcasting_fan_out(factory).await,
            Scenario::NackAndLeaseRedelivery => nack_and_lease_redelivery(factory).await,
            Scenario::ReplayAndSeek => replay_and_seek(factory).await,
            Scenario::RestartDurability => restart_durability(factory).await,
            Scenario::TopicAdmin => topic_admin(factory).await,
        }
    }

    /// Whether the scenario is skipped for this factory (only [`restart_durability`], only for a
    /// volatile store).
    pub fn skipped_for(self, factory: &dyn StoreFactory) -> bool {
        self == Scenario::RestartDurability && !factory.durable()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one scenario ended in [`run_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// Not run, with the reason (only the restart scenario, only for a volatile store).
    Skipped(String),
}

/// The result of [`run_all`]: every scenario passed or was (explicitly) skipped.
#[derive(Clone, Debug, Default)]
pub struct KitReport {
    /// Each scenario with its outcome and how long it took.
    pub results: Vec<(Scenario, Outcome, Duration)>,
}

impl KitReport {
    /// The scenarios that were skipped.
    pub fn skipped(&self) -> Vec<Scenario> {
        self.results
            .iter()
            .filter(|(_, o, _)| matches!(o, Outcome::Skipped(_)))
            .map(|(s, _, _)| *s)
            .collect()
    }
}

impl fmt::Display for KitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (s, outcome, took) in &self.results {
            match outcome {
                Outcome::Passed => writeln!(f, "passed  {s} ({:.2} s)", took.as_secs_f64())?,
                Outcome::Skipped(why) => writeln!(f, "SKIPPED {s}: {why}")?,
            }
        }
        Ok(())
    }
}

/// Runs every scenario in turn against `factory`; stops at the first failure.
pub async fn run_all(factory: &dyn StoreFactory) -> Result<KitReport, KitFailure> {
    let mut report = KitReport::default();
    for scenario in Scenario::ALL {
        let started = std::time::Instant::now();
        scenario.run(factory).await?;
        let outcome = if scenario.skipped_for(factory) {
            Outcome::Skipped(durability::SKIP_REASON.to_owned())
        } else {
            Outcome::Passed
        };
        report.results.push((scenario, outcome, started.elapsed()));
    }
    Ok(report)
}

#[doc(hidden)]
pub mod __private {
    pub use tokio;
}

/// Expands to one `#[tokio::test]` per conformance scenario, each running it against the
/// [`StoreFactory`] the expression evaluates to (evaluated once per test). See [`testkit`](self).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__kit_test!(
            conformance_publish_fetch_order,
            publish_fetch_order,
            $factory
        );
        $crate::__kit_test!(
            conformance_clustering_shared_cursor,
            clustering_shared_cursor,
            $factory
        );
        $crate::__kit_test!(
            conformance_broadcasting_fan_out,
            broadcasting_fan_out,
            $factory
        );
        $crate::__kit_test!(
            conformance_nack_and_lease_redelivery,
            nack_and_lease_redelivery,
            $factory
        );
        $crate::__kit_test!(conformance_replay_and_seek, replay_and_seek, $factory);
        $crate::__kit_test!(conformance_restart_durability, restart_durability, $factory);
        $crate::__kit_test!(conformance_topic_admin, topic_admin, $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __kit_test {
    ($test:ident, $scenario:ident, $factory:expr) => {
        #[$crate::testkit::__private::tokio::test(
            flavor = "multi_thread",
            worker_threads = 4,
            crate = "::eventmesh_storage::testkit::__private::tokio"
        )]
        async fn $test() {
            let factory = $factory;
            if let ::std::result::Result::Err(failure) = $crate::testkit::$scenario(&factory).await
            {
                ::std::panic!("{failure}");
            }
        }
    };
}

/// Expands to one `#[tokio::test]` per [`faults::Fault`], each asserting that every scenario
/// listed by [`faults::Fault::caught_by`] fails against the backend wrapped with that fault, plus
/// a control test asserting that the faithful wrapper ([`faults::Fault::None`]) passes the whole
/// kit, restart scenario included. The expression is the backend's factory (evaluated once per
/// test); see [`faults::FaultyFactory::new`] for how a volatile backend's restarts are simulated.
#[macro_export]
macro_rules! fault_detection_tests {
    ($factory:expr $(,)?) => {
        $crate::__fault_test!(
            kit_control_faithful_wrapper_passes_everything,
            None,
            $factory
        );
        $crate::__fault_test!(kit_detects_dropped_acks, DropAcks, $factory);
        $crate::__fault_test!(kit_detects_reordered_fetch, ReorderFetch, $factory);
        $crate::__fault_test!(kit_detects_loss_on_restart, LoseOnRestart, $factory);
        $crate::__fault_test!(kit_detects_duplicate_delivery, DuplicateDelivery, $factory);
        $crate::__fault_test!(
            kit_detects_redelivery_after_ack,
            RedeliverAfterAck,
            $factory
        );
        $crate::__fault_test!(kit_detects_ignored_nack_delay, IgnoreNackDelay, $factory);
        $crate::__fault_test!(
            kit_detects_ignored_lease_extension,
            IgnoreExtendLease,
            $factory
        );
        $crate::__fault_test!(
            kit_detects_frozen_delivery_count,
            FreezeDeliveryCount,
            $factory
        );
        $crate::__fault_test!(
            kit_detects_shared_broadcast_cursor,
            SharedBroadcastCursor,
            $factory
        );
        $crate::__fault_test!(
            kit_detects_resubscribe_resetting_position,
            ResubscribeResets,
            $factory
        );
        $crate::__fault_test!(kit_detects_ignored_seek, SeekIgnored, $factory);
        $crate::__fault_test!(kit_detects_ignored_close, CloseIgnored, $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __fault_test {
    ($test:ident, $fault:ident, $factory:expr) => {
        #[$crate::testkit::__private::tokio::test(
            flavor = "multi_thread",
            worker_threads = 4,
            crate = "::eventmesh_storage::testkit::__private::tokio"
        )]
        async fn $test() {
            let fault = $crate::testkit::faults::Fault::$fault;
            if let ::std::result::Result::Err(problem) =
                $crate::testkit::faults::check_detection($factory, fault).await
            {
                ::std::panic!("{problem}");
            }
        }
    };
}
