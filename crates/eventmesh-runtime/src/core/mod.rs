//! The transport-neutral delivery core: the rules of `shared/design/delivery.md`, once, for
//! every protocol and every store.
//!
//! Protocol servers are thin adapters: they open a [`SessionHandle`] per client, call
//! [`Core::publish`], [`Core::subscribe`] with a [`MemberEndpoint`] (a bounded channel of
//! [`Push`]es and a window), [`Core::ack`] / [`Core::nack`] per [`DeliveryId`],
//! [`Core::request`] / [`Core::reply`], and drop the handle when the client goes.
//!
//! Who owns what inside the core:
//! * [`options`]: the tunables ([`CoreOptions`]) and this node's identity ([`NodeIdentity`]).
//! * `session`: sessions and their memberships; closing or dropping a handle removes its members.
//! * `subscribe`: subscribe / unsubscribe, the (group, topic) binding (mode and filter, refused
//!   on conflict, shared with other nodes through the meta store) and dispatcher creation.
//! * `broadcast`: the member identity that names a BROADCASTING member's own store cursor.
//! * `dispatcher` + `inflight`: one dispatcher per store cursor with members here (CLUSTERING:
//!   per group and topic; BROADCASTING: per member): windows, round-robin, ack timeouts,
//!   backoff, dead-lettering, lease extension, and the settler that acks the store.
//! * `publish` + `rate_limit`: validation, `max_event_bytes`, token buckets, topic auto-creation.
//! * `request_reply`: `replyto` / `correlationid` / `expiresat`, the per-node inbox topic and its
//!   consumer, waiting requesters.
//! * `node`: start-up (inbox, node registration on a meta lease) and its keep-alive.
//! * `tasks`: every spawned task, for a bounded shutdown.
//!
//! What the core does *not* own: session keep-alive and idle timeouts (the adapter's connection
//! closes the session by dropping or closing its handle), wire formats, and the store's
//! durability. The core never closes the store: the lifecycle does that after
//! [`Core::shutdown`].
//!
//! Invariants worth naming:
//! * an event is *done* only when a member acked it or it was written to the dead-letter topic;
//!   only then is the store acked;
//! * a member never holds more than its window of un-acked pushes, and the core never blocks on
//!   a member's channel;
//! * every event held by this node is either ready (≤ `prefetch` per dispatcher), in flight to a
//!   member, or handed back to the store; shutdown hands everything back with no delay.

mod broadcast;
mod dispatcher;
mod endpoint;
mod filter;
mod inflight;
pub mod metrics;
mod node;
pub mod options;
mod publish;
mod rate_limit;
mod request_reply;
mod session;
mod subscribe;
mod tasks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use eventmesh_core::{ErrorCode, EventMeshError, GroupName, SubscriptionMode, Topic};
use eventmesh_storage::{ConsumerRef, EventStore};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::meta::{LeaseId, MetaStore};

pub use broadcast::member_identity;
pub use dispatcher::{
    EXT_DLQ_ATTEMPTS, EXT_DLQ_EVENT_ID, EXT_DLQ_GROUP, EXT_DLQ_TOPIC, dead_letter_topic,
};
pub use endpoint::{DeliveryId, MemberEndpoint, Push, PushKind};
pub use node::node_key;
pub use options::{CoreOptions, NodeIdentity};
pub use request_reply::{
    EXT_CORRELATION_ID, EXT_EXPIRES_AT, EXT_REPLY_TO, INBOX_TOPIC_PREFIX, inbox_topic,
};
pub use session::SessionHandle;

use dispatcher::Dispatcher;
use rate_limit::TokenBucket;
use session::SessionEntry;
use subscribe::Binding;
use tasks::Tasks;

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The options are inconsistent.
    #[error("invalid core options: {0}")]
    InvalidOptions(String),
    /// The node id cannot name an inbox topic.
    #[error("invalid node id `{0}`: use 1 to 200 ASCII letters, digits, `-`, `_` or `.`")]
    InvalidNodeId(String),
    /// `Core::start` was called outside a Tokio runtime.
    #[error("the delivery core must be started inside a Tokio runtime")]
    NoRuntime,
}

/// What a dispatcher serves, for labels and pushes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConsumerKey {
    pub(crate) group: GroupName,
    pub(crate) topic: Topic,
    pub(crate) mode: SubscriptionMode,
}

/// What the core's tasks share: the store, the options, known topics.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) options: Arc<CoreOptions>,
    pub(crate) node: NodeIdentity,
    pub(crate) topics: RwLock<std::collections::HashSet<Topic>>,
}

/// The delivery core of one runtime node. See the module docs.
pub struct Core {
    me: Weak<Core>,
    shared: Arc<Shared>,
    global_limit: TokenBucket,
    sessions: Mutex<HashMap<eventmesh_core::SessionId, SessionEntry>>,
    /// Lock order: `sessions`, then `consumers`, then a dispatcher's state.
    consumers: Mutex<HashMap<ConsumerRef, Arc<Dispatcher>>>,
    by_id: RwLock<HashMap<u32, Arc<Dispatcher>>>,
    bindings: Mutex<HashMap<(GroupName, Topic), Binding>>,
    requests: Mutex<HashMap<String, oneshot::Sender<eventmesh_core::CloudEvent>>>,
    node_lease: Mutex<Option<LeaseId>>,
    next_session: AtomicU64,
    next_member: AtomicU64,
    next_dispatcher: AtomicU32,
    ready: watch::Sender<bool>,
    stopping: AtomicBool,
    root: CancellationToken,
    tasks: Tasks,
    /// Time base of session liveness.
    epoch: Instant,
}

impl Core {
    /// Starts the core: validates the options, then (in the background) creates this node's
    /// reply inbox, registers the node in the metadata store (`nodes/<node_id>` → advertise, on a
    /// lease kept alive) and becomes ready. Publish and subscribe work at once; [`Core::is_ready`]
    /// (and [`Core::wait_ready`]) say when request-reply does too. Must be called inside a Tokio
    /// runtime.
    pub fn start(
        store: Arc<dyn EventStore>,
        meta: Arc<dyn MetaStore>,
        options: CoreOptions,
        node: NodeIdentity,
    ) -> Result<Arc<Core>, CoreError> {
        options.validate()?;
        node.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| CoreError::NoRuntime)?;
        let global_limit = TokenBucket::new(options.publish_rate);
        let shared = Arc::new(Shared {
            store,
            meta,
            options: Arc::new(options),
            node,
            topics: RwLock::new(Default::default()),
        });
        let core = Arc::new_cyclic(|me| Core {
            me: me.clone(),
            shared,
            global_limit,
            sessions: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            bindings: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
            node_lease: Mutex::new(None),
            next_session: AtomicU64::new(1),
            next_member: AtomicU64::new(1),
            next_dispatcher: AtomicU32::new(1),
            ready: watch::Sender::new(false),
            stopping: AtomicBool::new(false),
            root: CancellationToken::new(),
            tasks: Tasks::default(),
            epoch: Instant::now(),
        });
        let cancel = core.root.child_token();
        core.tasks
            .spawn("core-node", node::run(core.me.clone(), cancel));
        core.tasks.spawn(
            "core-session-reaper",
            session::reap(core.me.clone(), core.root.child_token()),
        );
        tracing::info!(
            message = "Delivery core started.",
            node_id = %core.shared.node.node_id,
            advertise = %core.shared.node.advertise,
            store = core.shared.store.kind(),
        );
        Ok(core)
    }

    /// Whether the core serves every request (its inbox and node registration are in place) and
    /// is not shutting down.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() && !self.is_stopping()
    }

    /// Waits until [`Core::is_ready`]; returns `false` if the core shuts down first.
    pub async fn wait_ready(&self) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::select! {
            r = rx.wait_for(|r| *r) => r.is_ok() && !self.is_stopping(),
            _ = self.root.cancelled() => false,
        }
    }

    /// Stops the core within `options.shutdown_timeout`: refuses new work, stops every
    /// dispatcher (each returns its un-acked and fetched events to the store with no delay, so
    /// another node gets them, and flushes pending acks), fails waiting requests with
    /// `ShuttingDown`, revokes the node's lease, and waits for every task, aborting stragglers.
    /// Does not close the store. Calling it again is harmless.
    pub async fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            // A second caller still waits for the tasks.
            self.tasks
                .join_all(Instant::now() + self.shared.options.shutdown_timeout)
                .await;
            return;
        }
        tracing::info!(message = "Delivery core shutting down.", node_id = %self.shared.node.node_id);
        self.ready.send_replace(false);
        self.root.cancel();
        // Waiting requesters get `ShuttingDown` (their senders drop).
        self.requests.lock().clear();
        let deadline = Instant::now() + self.shared.options.shutdown_timeout;
        self.tasks.join_all(deadline).await;
        // Dispatchers aborted as stragglers never let their members go: do it here, so every
        // adapter sees its push channel close.
        for d in self.by_id.read().values() {
            d.state.lock().drop_members();
        }
        tracing::info!(message = "Delivery core stopped.", node_id = %self.shared.node.node_id);
    }

    /// The options the core runs with.
    pub fn options(&self) -> &CoreOptions {
        &self.shared.options
    }

    /// This node's identity.
    pub fn node(&self) -> &NodeIdentity {
        &self.shared.node
    }

    /// A member endpoint for `tx` with the adapter's window, or the core's default `window`.
    pub fn endpoint(
        &self,
        tx: tokio::sync::mpsc::Sender<Push>,
        window: Option<usize>,
    ) -> MemberEndpoint {
        MemberEndpoint::new(tx, window.unwrap_or(self.shared.options.window))
    }

    /// Acknowledges a delivery: the event is done for its group.
    pub fn ack(&self, session: &SessionHandle, delivery: DeliveryId) -> Result<(), EventMeshError> {
        session.check_open()?;
        self.dispatcher_of(delivery)?.ack(delivery, session.id())
    }

    /// Refuses a delivery: it is redelivered (to another member when there is one) after the
    /// backoff, or dead-lettered when it has used its attempts.
    pub fn nack(
        &self,
        session: &SessionHandle,
        delivery: DeliveryId,
    ) -> Result<(), EventMeshError> {
        session.check_open()?;
        self.dispatcher_of(delivery)?
            .nack(delivery, session.id(), inflight::Retry::Backoff)
    }

    /// Refuses a delivery and asks for it again after `delay` (capped at `backoff_max`) instead
    /// of the core's backoff: for a subscriber's `Retry-After`, or an adapter's own jitter. It
    /// still counts as an attempt, and is dead-lettered when it has used its attempts.
    pub fn nack_after(
        &self,
        session: &SessionHandle,
        delivery: DeliveryId,
        delay: std::time::Duration,
    ) -> Result<(), EventMeshError> {
        session.check_open()?;
        self.dispatcher_of(delivery)?
            .nack(delivery, session.id(), inflight::Retry::After(delay))
    }

    /// Refuses a delivery for good: the event goes to the group's dead-letter topic now (then it
    /// is done), whatever attempts it has left. For answers that retrying cannot change (a
    /// webhook's 410 or 415).
    pub fn dead_letter(
        &self,
        session: &SessionHandle,
        delivery: DeliveryId,
    ) -> Result<(), EventMeshError> {
        session.check_open()?;
        self.dispatcher_of(delivery)?
            .nack(delivery, session.id(), inflight::Retry::DeadLetter)
    }

    /// Dispatchers running on this node (for admin views and tests).
    pub fn dispatcher_count(&self) -> usize {
        self.by_id.read().len()
    }

    /// Pushes un-acked by members on this node, over all dispatchers.
    pub fn in_flight(&self) -> usize {
        self.by_id
            .read()
            .values()
            .map(|d| d.state.lock().in_flight_len())
            .sum()
    }

    /// Tasks of the core still running (for admin views and tests).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    fn dispatcher_of(&self, delivery: DeliveryId) -> Result<Arc<Dispatcher>, EventMeshError> {
        self.by_id
            .read()
            .get(&delivery.dispatcher)
            .cloned()
            .ok_or_else(|| {
                EventMeshError::new(
                    ErrorCode::NotSubscribed,
                    format!("delivery {delivery} is unknown or already settled"),
                )
            })
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn check_running(&self) -> Result<(), EventMeshError> {
        if self.is_stopping() {
            Err(EventMeshError::new(
                ErrorCode::ShuttingDown,
                "the runtime is shutting down",
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Without a shutdown, tasks still end: they watch this token.
        self.root.cancel();
    }
}
