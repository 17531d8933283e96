//! Sessions: one per connected client (a TCP connection, a gRPC stream, a webhook registration).
//!
//! The adapter opens a [`SessionHandle`] with [`Core::open_session`] and owns it for the client's
//! lifetime. A session ends in one of three ways, all with the same effect:
//! * the adapter closes it ([`SessionHandle::close`]);
//! * the adapter drops the handle (a connection task that ends, even by a panic);
//! * its idle timeout passes ([`SessionHandle::set_idle_timeout`], off by default): the core's
//!   session reaper closes sessions that made no call and no [`SessionHandle::touch`] for that
//!   long. Connection-oriented adapters keep their own keep-alive (the connection owns it) and
//!   need not use this; connection-less ones (webhook registrations) do.
//!
//! Ending a session removes its members from their dispatchers; their in-flight deliveries go
//! back to the store at once, so another member gets them with the attempt number increased.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use eventmesh_core::{ErrorCode, EventMeshError, GroupName, SessionId, SessionMeta, Topic};
use eventmesh_storage::ConsumerRef;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatcher::Dispatcher;
use super::inflight::MemberId;
use super::rate_limit::TokenBucket;
use super::{Core, metrics};

/// How often the reaper looks for idle sessions.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// One membership of a session: a member in one dispatcher.
pub(crate) struct Membership {
    pub(crate) consumer: ConsumerRef,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) member: MemberId,
    pub(crate) binding: (GroupName, Topic),
}

/// Liveness of a session, shared by its handle and the core's record.
pub(crate) struct Liveness {
    closed: AtomicBool,
    /// Milliseconds since the core's epoch at the last call or touch.
    last_seen_ms: AtomicU64,
    /// 0: no idle timeout.
    idle_timeout_ms: AtomicU64,
    epoch: Instant,
}

impl Liveness {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn expired(&self) -> bool {
        let timeout = self.idle_timeout_ms.load(Ordering::Relaxed);
        timeout > 0
            && self
                .now_ms()
                .saturating_sub(self.last_seen_ms.load(Ordering::Relaxed))
                >= timeout
    }
}

/// The core's record of an open session.
pub(crate) struct SessionEntry {
    pub(crate) meta: Arc<SessionMeta>,
    pub(crate) memberships: Vec<Membership>,
    liveness: Arc<Liveness>,
}

/// An open session. Dropping it closes the session.
pub struct SessionHandle {
    id: SessionId,
    meta: Arc<SessionMeta>,
    pub(crate) limiter: TokenBucket,
    core: Weak<Core>,
    liveness: Arc<Liveness>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id)
            .field("transport", &self.meta.transport)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl SessionHandle {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// What the adapter said about the session.
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// Whether the session was closed (by the adapter, or by its idle timeout).
    pub fn is_closed(&self) -> bool {
        self.liveness.closed.load(Ordering::Acquire)
    }

    /// Closes the session: its members leave and their in-flight deliveries are redelivered to
    /// other members. Closing twice is harmless.
    pub fn close(&self) {
        if self.liveness.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(core) = self.core.upgrade() {
            core.close_session(self.id);
        }
    }

    /// Closes the session when it makes no call (publish, subscribe, ack, …) and no
    /// [`SessionHandle::touch`] for `timeout`; `None` (the default) turns that off.
    pub fn set_idle_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.liveness.touch();
        self.liveness.idle_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks the session alive now (a heartbeat).
    pub fn touch(&self) {
        self.liveness.touch();
    }

    /// Fails when the session is closed; otherwise counts as activity.
    pub(crate) fn check_open(&self) -> Result<(), EventMeshError> {
        if self.is_closed() {
            Err(EventMeshError::new(
                ErrorCode::BadRequest,
                format!("session {} is closed", self.id),
            ))
        } else {
            self.liveness.touch();
            Ok(())
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.close();
    }
}

impl Core {
    /// A fresh session id, unique in this process's core.
    pub fn new_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Opens a session. `meta.id` must be unused (take one from [`Core::new_session_id`]);
    /// `meta.client_identity` names BROADCASTING positions (see [`super::member_identity`]).
    pub fn open_session(&self, meta: SessionMeta) -> Result<SessionHandle, EventMeshError> {
        self.check_running()?;
        let id = meta.id;
        let meta = Arc::new(meta);
        let liveness = Arc::new(Liveness {
            closed: AtomicBool::new(false),
            last_seen_ms: AtomicU64::new(0),
            idle_timeout_ms: AtomicU64::new(0),
            epoch: self.epoch,
        });
        liveness.touch();
        {
            let mut sessions = self.sessions.lock();
            if sessions.contains_key(&id) {
                return Err(EventMeshError::new(
                    ErrorCode::BadRequest,
                    format!("session id {id} is already open"),
                ));
            }
            sessions.insert(
                id,
                SessionEntry {
                    meta: meta.clone(),
                    memberships: Vec::new(),
                    liveness: liveness.clone(),
                },
            );
            metrics_sessions(sessions.len());
        }
        tracing::debug!(message = "Session opened.", session = %id, transport = meta.transport.as_str(), client_id = %meta.client_identity);
        Ok(SessionHandle {
            id,
            meta,
            limiter: TokenBucket::new(self.shared.options.session_publish_rate),
            core: self.me.clone(),
            liveness,
        })
    }

    /// Sessions open on this node.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    pub(crate) fn close_session(&self, id: SessionId) {
        let entry = {
            let mut sessions = self.sessions.lock();
            let entry = sessions.remove(&id);
            metrics_sessions(sessions.len());
            entry
        };
        let Some(entry) = entry else { return };
        entry.liveness.closed.store(true, Ordering::Release);
        let n = entry.memberships.len();
        for m in entry.memberships {
            self.leave(m);
        }
        tracing::debug!(message = "Session closed.", session = %id, client_id = %entry.meta.client_identity, memberships = n);
    }

    /// Closes sessions whose idle timeout passed.
    fn reap_idle_sessions(&self) {
        let expired: Vec<SessionId> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, e)| e.liveness.expired())
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            tracing::info!(message = "Session idle past its timeout; closing it.", session = %id);
            self.close_session(id);
        }
    }
}

/// The session reaper task.
pub(crate) async fn reap(core: Weak<Core>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(REAP_INTERVAL) => {}
        }
        let Some(core) = core.upgrade() else { return };
        core.reap_idle_sessions();
    }
}

fn metrics_sessions(n: usize) {
    ::metrics::gauge!(metrics::SESSIONS).set(n as f64);
}
