//! Sessions: one per connected client (a TCP connection, a gRPC stream, a webhook registration).
//!
//! The adapter opens a [`SessionHandle`] with [`Core::open_session`] and owns it for the client's
//! lifetime. Closing it ([`SessionHandle::close`]) or dropping it removes the session's members
//! from their dispatchers; their in-flight deliveries go back to the store at once, so another
//! member gets them with the attempt number increased. Idle and heartbeat timeouts belong to the
//! adapter's connection, which closes the handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use eventmesh_core::{ErrorCode, EventMeshError, GroupName, SessionId, SessionMeta, Topic};
use eventmesh_storage::ConsumerRef;

use super::dispatcher::Dispatcher;
use super::inflight::MemberId;
use super::rate_limit::TokenBucket;
use super::{Core, metrics};

/// One membership of a session: a member in one dispatcher.
pub(crate) struct Membership {
    pub(crate) consumer: ConsumerRef,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) member: MemberId,
    pub(crate) binding: (GroupName, Topic),
}

/// The core's record of an open session.
pub(crate) struct SessionEntry {
    pub(crate) meta: Arc<SessionMeta>,
    pub(crate) memberships: Vec<Membership>,
}

/// An open session. Dropping it closes the session.
pub struct SessionHandle {
    id: SessionId,
    meta: Arc<SessionMeta>,
    pub(crate) limiter: TokenBucket,
    core: Weak<Core>,
    closed: AtomicBool,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id)
            .field("transport", &self.meta.transport)
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

    /// Whether the session was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the session: its members leave and their in-flight deliveries are redelivered to
    /// other members. Closing twice is harmless.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(core) = self.core.upgrade() {
            core.close_session(self.id);
        }
    }

    pub(crate) fn check_open(&self) -> Result<(), EventMeshError> {
        if self.is_closed() {
            Err(EventMeshError::new(
                ErrorCode::BadRequest,
                format!("session {} is closed", self.id),
            ))
        } else {
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
            closed: AtomicBool::new(false),
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
        let n = entry.memberships.len();
        for m in entry.memberships {
            self.leave(m);
        }
        tracing::debug!(message = "Session closed.", session = %id, client_id = %entry.meta.client_identity, memberships = n);
    }
}

fn metrics_sessions(n: usize) {
    ::metrics::gauge!(metrics::SESSIONS).set(n as f64);
}
