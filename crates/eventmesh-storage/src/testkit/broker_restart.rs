//! The broker dies (SIGKILL) while events are published and consumed through the store, and comes
//! back on the same address and data: publishes during the outage fail with
//! [`StorageError::Unavailable`] naming the backend within a bound, the store reconnects by itself
//! (it is not reopened), and every publish it acknowledged is delivered at least once afterwards.
//!
//! One scenario for every broker-backed store; each backend's `tests/broker_restart.rs` supplies
//! the broker process ([`BrokerProcess`]) and the store, and prints the [`RestartReport`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};

use super::KitFailure;
use super::support::lock;
use crate::{ConsumerRef, EventStore, StartFrom, StorageError};

const SCENARIO: &str = "broker_kill_restart";

/// The broker process a [`broker_kill_restart`] run kills and starts again.
#[async_trait]
pub trait BrokerProcess: Send {
    /// Kills the broker at once (SIGKILL); its data stays as the kill left it.
    async fn kill(&mut self);
    /// Starts it again on the same address and data; returns once it accepts connections.
    async fn restart(&mut self);
    /// The end of the broker's log, for failure messages.
    fn log_tail(&self) -> String {
        String::new()
    }
}

/// How a [`broker_kill_restart`] run is shaped and what it tolerates.
#[derive(Clone, Debug)]
pub struct RestartOptions {
    /// Acknowledged events wanted before the kill.
    pub before: usize,
    /// Acknowledged events wanted after the restart.
    pub after: usize,
    /// Failed publishes wanted while the broker is down.
    pub outage_failures: usize,
    /// Every failing publish must fail within this.
    pub fail_within: Duration,
    /// The longest any wait of the scenario takes.
    pub deadline: Duration,
    /// Every error of a publish during the outage must contain it, ignoring case (`"NATS"`,
    /// `"Kafka"`): an operator reading the error learns what is unavailable.
    pub backend_name: &'static str,
    /// Events per publish call.
    pub batch: usize,
    /// The lease the consumer fetches with.
    pub lease: Duration,
}

impl RestartOptions {
    /// The defaults: 1,000 events acknowledged before and after, 5 outage failures, each within
    /// 4 s, 60 s waits, batches of 10, a 3 s lease.
    pub fn new(backend_name: &'static str) -> Self {
        RestartOptions {
            before: 1_000,
            after: 1_000,
            outage_failures: 5,
            fail_within: Duration::from_secs(4),
            deadline: Duration::from_secs(60),
            backend_name,
            batch: 10,
            lease: Duration::from_secs(3),
        }
    }
}

/// What a [`broker_kill_restart`] run measured.
#[derive(Clone, Debug)]
pub struct RestartReport {
    /// Events acknowledged in all.
    pub acknowledged: usize,
    /// Events acknowledged before the kill.
    pub acknowledged_before_kill: usize,
    /// Publishes that failed after the kill.
    pub outage_failures: usize,
    /// The slowest failing publish.
    pub slowest_failure: Duration,
    /// The first outage error, as the store worded it.
    pub first_outage_error: String,
    /// How long the broker was down (kill to restart returning).
    pub outage: Duration,
    /// From the restart returning to the first publish acknowledged afterwards.
    pub publishing_resumed_after: Duration,
    /// Fetch and ack calls that failed (during the outage, as expected).
    pub consumer_errors: usize,
}

impl fmt::Display for RestartReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broker kill: {} events acknowledged ({} before the kill); broker down {} ms with {} failed publishes \
             (slowest failure {} ms, first: `{}`); first acknowledged publish {} ms after the restart; \
             {} fetch/ack errors; every acknowledged event delivered",
            self.acknowledged,
            self.acknowledged_before_kill,
            self.outage.as_millis(),
            self.outage_failures,
            self.slowest_failure.as_millis(),
            self.first_outage_error,
            self.publishing_resumed_after.as_millis(),
            self.consumer_errors,
        )
    }
}

#[derive(Default)]
struct Log {
    /// Acknowledged publishes: event id → when the publish returned.
    acked: HashMap<EventId, Instant>,
    /// Failed publishes: when the call began, how long it took, the error.
    failures: Vec<(Instant, Duration, StorageError)>,
    /// Delivered events.
    delivered: HashMap<EventId, Instant>,
    consumer_errors: usize,
}

fn record(topic: &Topic, n: usize) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("restart-{n}"), "/broker-restart", "test.restart")
            .with_data("text/plain", Bytes::from(format!("event {n}"))),
    )
}

fn fail(message: impl Into<String>, broker: &dyn BrokerProcess) -> KitFailure {
    let tail = broker.log_tail();
    let mut message = message.into();
    if !tail.is_empty() {
        message.push_str("\nbroker log:\n");
        message.push_str(&tail);
    }
    KitFailure::new(SCENARIO, message)
}

/// Waits until `cond` holds, or fails after `limit`.
async fn wait_for(
    what: &str,
    limit: Duration,
    broker: &dyn BrokerProcess,
    mut cond: impl FnMut() -> bool,
) -> Result<(), KitFailure> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(fail(
                format!("timed out after {} s waiting for {what}", limit.as_secs()),
                broker,
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Runs the scenario on `topic` (created if missing) with a CLUSTERING group of one consumer.
/// The store must already be connected to `broker`; it is not closed.
pub async fn broker_kill_restart(
    store: Arc<dyn EventStore>,
    broker: &mut dyn BrokerProcess,
    topic: &Topic,
    opts: RestartOptions,
) -> Result<RestartReport, KitFailure> {
    let group =
        GroupName::new("restart-group").map_err(|e| KitFailure::new(SCENARIO, e.to_string()))?;
    let c = ConsumerRef::clustering(topic.clone(), group);
    // The broker may have just started (a test restarting it cleanly first): retry the set-up
    // while the store says it is unavailable.
    let setup_deadline = Instant::now() + opts.deadline;
    loop {
        let r = match store.create_topic(topic).await {
            Ok(_) => store.subscribe(&c, StartFrom::Earliest).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => break,
            Err(StorageError::Unavailable(_)) if Instant::now() < setup_deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(fail(
                    format!("setting up the topic and group: {e}"),
                    &*broker,
                ));
            }
        }
    }

    let log = Arc::new(Mutex::new(Log::default()));
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn(publish_until(
        store.clone(),
        topic.clone(),
        opts.batch.max(1),
        log.clone(),
        stop_publishing.clone(),
    ));
    let consumer = tokio::spawn(consume_until(
        store.clone(),
        c,
        opts.lease,
        log.clone(),
        stop_consuming.clone(),
    ));
    // Whatever happens, the tasks stop when this returns.
    let _stop = StopOnDrop(vec![stop_publishing.clone(), stop_consuming.clone()]);

    wait_for(
        "acknowledged publishes before the kill",
        opts.deadline,
        &*broker,
        || lock(&log).acked.len() >= opts.before,
    )
    .await?;
    let acknowledged_before_kill = lock(&log).acked.len();
    let killed_at = Instant::now();
    broker.kill().await;
    wait_for(
        "publishes failing while the broker is down",
        opts.deadline,
        &*broker,
        || {
            lock(&log)
                .failures
                .iter()
                .filter(|f| f.0 >= killed_at)
                .count()
                >= opts.outage_failures
        },
    )
    .await?;
    broker.restart().await;
    let restarted_at = Instant::now();
    let outage = restarted_at.duration_since(killed_at);
    let acked_at_restart = lock(&log).acked.len();
    wait_for(
        "acknowledged publishes after the restart",
        opts.deadline,
        &*broker,
        || lock(&log).acked.len() >= acked_at_restart + opts.after,
    )
    .await?;
    stop_publishing.store(true, Ordering::SeqCst);
    publisher
        .await
        .map_err(|e| fail(format!("the publisher task failed: {e}"), &*broker))?;

    // The consumer keeps fetching until every acknowledged event came at least once.
    let acked: Vec<EventId> = lock(&log).acked.keys().copied().collect();
    let all_delivered = wait_for(
        "every acknowledged event to be delivered",
        opts.deadline,
        &*broker,
        || {
            let l = lock(&log);
            acked.iter().all(|id| l.delivered.contains_key(id))
        },
    )
    .await;
    if let Err(e) = all_delivered {
        let l = lock(&log);
        let missing = acked
            .iter()
            .filter(|id| !l.delivered.contains_key(id))
            .count();
        return Err(fail(
            format!(
                "{missing} of {} acknowledged events were never delivered: {e}",
                acked.len()
            ),
            &*broker,
        ));
    }
    stop_consuming.store(true, Ordering::SeqCst);
    consumer
        .await
        .map_err(|e| fail(format!("the consumer task failed: {e}"), &*broker))?;

    let l = lock(&log);
    check_failures(&l, killed_at, &opts, &*broker)?;
    let outage_errors: Vec<&(Instant, Duration, StorageError)> =
        l.failures.iter().filter(|f| f.0 >= killed_at).collect();
    Ok(RestartReport {
        acknowledged: l.acked.len(),
        acknowledged_before_kill,
        outage_failures: outage_errors.len(),
        slowest_failure: l.failures.iter().map(|f| f.1).max().unwrap_or_default(),
        first_outage_error: outage_errors
            .first()
            .map(|f| f.2.to_string())
            .unwrap_or_default(),
        outage,
        publishing_resumed_after: l
            .acked
            .values()
            .filter(|t| **t >= restarted_at)
            .min()
            .map(|t| t.duration_since(restarted_at))
            .unwrap_or_default(),
        consumer_errors: l.consumer_errors,
    })
}

/// Every failed publish was `Unavailable`, failed in time, and named the backend.
fn check_failures(
    l: &Log,
    killed_at: Instant,
    opts: &RestartOptions,
    broker: &dyn BrokerProcess,
) -> Result<(), KitFailure> {
    for (at, took, e) in &l.failures {
        if !matches!(e, StorageError::Unavailable(_)) {
            return Err(fail(
                format!("a publish failed with `{e}` ({e:?}); expected Unavailable"),
                broker,
            ));
        }
        if *took > opts.fail_within {
            return Err(fail(
                format!(
                    "a publish took {} ms to fail (bound {} ms): `{e}`",
                    took.as_millis(),
                    opts.fail_within.as_millis()
                ),
                broker,
            ));
        }
        if *at >= killed_at
            && !e
                .to_string()
                .to_lowercase()
                .contains(&opts.backend_name.to_lowercase())
        {
            return Err(fail(
                format!("an outage error does not name {}: `{e}`", opts.backend_name),
                broker,
            ));
        }
    }
    Ok(())
}

/// Publishes batches one after the other, recording what was acknowledged and what failed.
async fn publish_until(
    store: Arc<dyn EventStore>,
    topic: Topic,
    batch: usize,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let records: Vec<EventRecord> = (n..n + batch).map(|i| record(&topic, i)).collect();
        n += batch;
        let began = Instant::now();
        match store.publish(&topic, &records).await {
            Ok(_) => {
                let now = Instant::now();
                let mut l = lock(&log);
                for r in &records {
                    l.acked.insert(r.id, now);
                }
            }
            Err(e) => {
                lock(&log).failures.push((began, began.elapsed(), e));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Fetches and acks all along, through the outage, recording what was delivered.
async fn consume_until(
    store: Arc<dyn EventStore>,
    c: ConsumerRef,
    lease: Duration,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match store
            .fetch(&c, 256, lease, Duration::from_millis(200))
            .await
        {
            Ok(batch) => {
                let now = Instant::now();
                {
                    let mut l = lock(&log);
                    for d in &batch {
                        l.delivered.entry(d.record.id).or_insert(now);
                    }
                }
                let tokens: Vec<_> = batch.into_iter().map(|d| d.token).collect();
                // A lost ack only means a redelivery after the lease.
                if !tokens.is_empty() && store.ack(&c, &tokens).await.is_err() {
                    lock(&log).consumer_errors += 1;
                }
            }
            Err(_) => {
                lock(&log).consumer_errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct StopOnDrop(Vec<Arc<AtomicBool>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for flag in &self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }
}
