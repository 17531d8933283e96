//! One dispatcher per store cursor with members on this node: per (group, topic) for CLUSTERING,
//! per (group, topic, member identity) for BROADCASTING. Both are the same machine; a
//! broadcasting dispatcher simply has its own cursor and (usually) one member.
//!
//! A dispatcher is one task running two futures side by side:
//! * the *dispatch loop* ticks the [`DispatchState`] (timeouts, lease extensions, pushes) and
//!   long-polls the store for as many events as its members have room for (never more than
//!   `prefetch` held, nothing when every window is full or no member is left). The fetch task
//!   survives wake-ups, so an ack never cancels a fetch in progress;
//! * the *settler* carries out the [`StoreOp`]s the state produces: acks (batched), nacks with
//!   their backoff, lease extensions and dead-lettering.
//!
//! It stops when its last member leaves (the core removes it from its maps first) or at shutdown:
//! then everything it holds is nacked with no delay, so another member or node gets it at once,
//! and the settler drains before the task ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{EventMeshError, EventRecord, ExtensionValue, SessionId, Topic, TopicError};
use eventmesh_storage::{AckToken, ConsumerRef, Delivery, StorageError, StorageResult};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::endpoint::DeliveryId;
use super::inflight::{DispatchState, Retry, StoreOp};
use super::metrics::DispatchMetrics;
use super::{ConsumerKey, Shared};

/// Capacity of the channel from the dispatch loop to its settler.
const SETTLE_CAPACITY: usize = 1024;
/// Store operations the settler takes in one go (acks among them become one store call).
const SETTLE_BATCH: usize = 512;
/// How much longer than its long-poll wait a fetch may take before it counts as failed.
const FETCH_GRACE: Duration = Duration::from_secs(30);
/// Longest a settler store call (ack, nack, lease extension, dead-letter publish) may take.
const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait before fetching again after the store failed a fetch.
const FETCH_ERROR_DELAY: Duration = Duration::from_secs(1);

/// Extension naming the topic a dead-lettered event was published to.
pub const EXT_DLQ_TOPIC: &str = "eventmeshdlqtopic";
/// Extension naming the group that gave up on a dead-lettered event.
pub const EXT_DLQ_GROUP: &str = "eventmeshdlqgroup";
/// Extension with the number of deliveries a dead-lettered event had (integer).
pub const EXT_DLQ_ATTEMPTS: &str = "eventmeshdlqattempts";
/// Extension with the mesh id the event had on its original topic.
pub const EXT_DLQ_EVENT_ID: &str = "eventmeshdlqeventid";

/// A fetch in progress runs as its own task, so it makes progress while the dispatch loop waits
/// on something else (room in the settler's channel). Held as an unpolled future instead, it
/// could keep a lock inside the store that the settler's next call waits for: a deadlock.
/// Dropping the handle aborts the fetch.
type FetchTask = AbortOnDropHandle<StorageResult<Vec<Delivery>>>;

/// The shared half of a dispatcher: its state and wake-up, reachable from adapters' acks.
pub(crate) struct Dispatcher {
    pub(crate) id: u32,
    pub(crate) consumer: ConsumerRef,
    pub(crate) key: ConsumerKey,
    pub(crate) state: Mutex<DispatchState>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) metrics: Arc<DispatchMetrics>,
}

impl Dispatcher {
    pub(crate) fn new(
        id: u32,
        consumer: ConsumerRef,
        key: ConsumerKey,
        shared: &Shared,
        filter: Option<Arc<eventmesh_cesql::Expression>>,
    ) -> Self {
        let metrics = Arc::new(DispatchMetrics::new(&key));
        let mut state = DispatchState::new(
            key.clone(),
            id,
            shared.options.clone(),
            metrics.clone(),
            Instant::now(),
        );
        state.filter = filter;
        Dispatcher {
            id,
            consumer,
            key,
            state: Mutex::new(state),
            notify: Arc::new(Notify::new()),
            metrics,
        }
    }

    pub(crate) fn ack(
        &self,
        delivery: DeliveryId,
        session: SessionId,
    ) -> Result<(), EventMeshError> {
        let r = self.state.lock().ack(delivery, session);
        self.notify.notify_one();
        r
    }

    pub(crate) fn nack(
        &self,
        delivery: DeliveryId,
        session: SessionId,
        retry: Retry,
    ) -> Result<(), EventMeshError> {
        let r = self
            .state
            .lock()
            .nack(delivery, session, Instant::now(), retry);
        self.notify.notify_one();
        r
    }

    /// Asks the task to return what it holds and end.
    pub(crate) fn stop(&self) {
        self.state.lock().stopped = true;
        self.notify.notify_one();
    }
}

/// The dispatcher task: dispatch loop and settler until stop or cancellation.
pub(crate) async fn run(d: Arc<Dispatcher>, shared: Arc<Shared>, cancel: CancellationToken) {
    let (tx, rx) = mpsc::channel(SETTLE_CAPACITY);
    let settle = settle(
        shared.clone(),
        d.consumer.clone(),
        d.key.clone(),
        d.metrics.clone(),
        rx,
    );
    let dispatch = dispatch_loop(d.clone(), shared, cancel, tx);
    tokio::join!(dispatch, settle);
    tracing::debug!(message = "Dispatcher stopped.", consumer = %d.consumer, dispatcher = d.id);
}

async fn dispatch_loop(
    d: Arc<Dispatcher>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    ops: mpsc::Sender<StoreOp>,
) {
    let mut fetch: Option<FetchTask> = None;
    let mut fetch_retry_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let (tick, pending, stopped) = {
            let mut st = d.state.lock();
            let tick = st.tick(now);
            (tick, st.take_ops(), st.stopped)
        };
        for op in pending {
            // The settler only ends after this loop drops the sender.
            let _ = ops.send(op).await;
        }
        if stopped || cancel.is_cancelled() {
            break;
        }
        if fetch_retry_at.is_some_and(|t| t <= now) {
            fetch_retry_at = None;
        }
        if tick.want > 0 && fetch.is_none() && fetch_retry_at.is_none() {
            let store = shared.store.clone();
            let consumer = d.consumer.clone();
            let (want, lease, wait) = (
                tick.want,
                shared.options.crash_lease,
                shared.options.fetch_wait,
            );
            tracing::trace!(message = "Fetching.", consumer = %d.consumer, want = tick.want);
            fetch = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                // A store call that never returns must not wedge the dispatcher.
                match tokio::time::timeout(
                    wait + FETCH_GRACE,
                    store.fetch(&consumer, want, lease, wait),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(StorageError::Unavailable(format!(
                        "fetch did not return within {} ms",
                        (wait + FETCH_GRACE).as_millis()
                    ))),
                }
            })));
        }
        let wake_at = match (tick.wake_at, fetch_retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            res = async { fetch.as_mut().expect("guarded by the branch condition").await }, if fetch.is_some() => {
                fetch = None;
                let res = res.unwrap_or_else(|e| {
                    Err(StorageError::Backend(format!("fetch task failed: {e}")))
                });
                match res {
                    Ok(deliveries) => {
                        tracing::trace!(message = "Fetched.", consumer = %d.consumer, count = deliveries.len());
                        if !deliveries.is_empty() {
                            d.state.lock().accept(deliveries, Instant::now());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(message = "Failed to fetch events.", %error, consumer = %d.consumer);
                        fetch_retry_at = Some(Instant::now() + FETCH_ERROR_DELAY);
                    }
                }
            }
            // After the fetch, so a stream of acks cannot starve it.
            _ = d.notify.notified() => {}
            _ = sleep_until_opt(wake_at) => {}
        }
    }
    // Whatever a fetch in progress would have leased comes back by the crash lease.
    drop(fetch);
    let pending = {
        let mut st = d.state.lock();
        st.stopped = true;
        st.return_all();
        st.take_ops()
    };
    for op in pending {
        let _ = ops.send(op).await;
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out store operations until the dispatch loop ends, batching acks.
async fn settle(
    shared: Arc<Shared>,
    consumer: ConsumerRef,
    key: ConsumerKey,
    metrics: Arc<DispatchMetrics>,
    mut rx: mpsc::Receiver<StoreOp>,
) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    let mut acks: Vec<AckToken> = Vec::new();
    while rx.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
        for op in batch.drain(..) {
            match op {
                StoreOp::Ack(token) => acks.push(token),
                StoreOp::Nack { token, delay } => {
                    if let Err(error) =
                        bounded("nack", shared.store.nack(&consumer, &token, delay)).await
                    {
                        tracing::warn!(message = "Failed to nack; the crash lease will return the event.", %error, consumer = %consumer);
                    }
                }
                StoreOp::Extend(tokens) => {
                    let extend =
                        shared
                            .store
                            .extend_lease(&consumer, &tokens, shared.options.crash_lease);
                    if let Err(error) = bounded("extend_lease", extend).await {
                        tracing::warn!(message = "Failed to extend leases.", %error, consumer = %consumer, count = tokens.len());
                    }
                }
                StoreOp::DeadLetter {
                    token,
                    record,
                    attempts,
                } => match dead_letter(&shared, &key, &record, attempts).await {
                    Ok(dlq) => {
                        metrics.dead_lettered.increment(1);
                        tracing::warn!(
                            message = "Event dead-lettered.",
                            group = %key.group,
                            topic = %key.topic,
                            dead_letter_topic = %dlq,
                            event_id = %record.id,
                            attempts,
                        );
                        acks.push(token);
                    }
                    Err(error) => {
                        tracing::error!(message = "Failed to dead-letter an event; retrying later.", %error, group = %key.group, topic = %key.topic, event_id = %record.id);
                        let nack = shared
                            .store
                            .nack(&consumer, &token, shared.options.backoff_max);
                        if let Err(error) = bounded("nack", nack).await {
                            tracing::warn!(message = "Failed to nack.", %error, consumer = %consumer);
                        }
                    }
                },
            }
        }
        if !acks.is_empty() {
            tracing::trace!(message = "Acking.", consumer = %consumer, count = acks.len());
            if let Err(error) = bounded("ack", shared.store.ack(&consumer, &acks)).await {
                tracing::warn!(message = "Failed to ack; the crash lease will redeliver.", %error, consumer = %consumer, count = acks.len());
            }
            acks.clear();
        }
    }
}

/// Runs one store call of the settler, failing it after [`STORE_CALL_TIMEOUT`]: a store call
/// that never returns must not wedge the dispatcher (its loop waits on the settler's channel).
async fn bounded<T>(
    what: &'static str,
    call: impl Future<Output = StorageResult<T>>,
) -> StorageResult<T> {
    match tokio::time::timeout(STORE_CALL_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err(StorageError::Unavailable(format!(
            "store {what} did not return within {} s",
            STORE_CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// The dead-letter topic of `group` for events of `topic`: `<group><suffix>` in the topic's tenant.
/// Characters a topic may not hold become `_`.
pub fn dead_letter_topic(group: &str, topic: &Topic, suffix: &str) -> Result<Topic, TopicError> {
    let mut name: String = format!("{group}{suffix}")
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || matches!(c, '~' | '+' | '#') {
                '_'
            } else {
                c
            }
        })
        .collect();
    while name.len() > eventmesh_core::topic::MAX_TOPIC_BYTES {
        name.pop();
    }
    match topic.tenant() {
        Some(t) => Topic::with_tenant(t, &name),
        None => Topic::new(&name),
    }
}

/// Publishes `record` to its group's dead-letter topic with extensions naming where it came from.
async fn dead_letter(
    shared: &Shared,
    key: &ConsumerKey,
    record: &EventRecord,
    attempts: u32,
) -> Result<Topic, EventMeshError> {
    let dlq = dead_letter_topic(
        key.group.as_str(),
        &record.topic,
        &shared.options.dead_letter_suffix,
    )?;
    let mut event = record.event.clone();
    event.extensions.insert(
        EXT_DLQ_TOPIC.into(),
        ExtensionValue::String(record.topic.to_string()),
    );
    event.extensions.insert(
        EXT_DLQ_GROUP.into(),
        ExtensionValue::String(key.group.to_string()),
    );
    event.extensions.insert(
        EXT_DLQ_ATTEMPTS.into(),
        ExtensionValue::Integer(i64::from(attempts)),
    );
    event.extensions.insert(
        EXT_DLQ_EVENT_ID.into(),
        ExtensionValue::String(record.id.to_string()),
    );
    let mut out = EventRecord::new(dlq.clone(), event);
    out.partition_key = record.partition_key.clone();
    match tokio::time::timeout(STORE_CALL_TIMEOUT, shared.store_publish(&dlq, vec![out])).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(EventMeshError::new(
                eventmesh_core::ErrorCode::StorageUnavailable,
                format!(
                    "dead-letter publish did not return within {} s",
                    STORE_CALL_TIMEOUT.as_secs()
                ),
            ));
        }
    }
    Ok(dlq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_keep_the_tenant_and_stay_valid() {
        let t = Topic::with_tenant("acme", "orders").unwrap();
        assert_eq!(
            dead_letter_topic("g1", &t, ".DLQ").unwrap().to_string(),
            "acme~g1.DLQ"
        );
        let plain = Topic::new("orders").unwrap();
        assert_eq!(
            dead_letter_topic("a+b#c", &plain, ".DLQ").unwrap().name(),
            "a_b_c.DLQ"
        );
        assert_eq!(
            dead_letter_topic(&"g".repeat(255), &plain, ".DLQ")
                .unwrap()
                .name()
                .len(),
            255
        );
    }
}
