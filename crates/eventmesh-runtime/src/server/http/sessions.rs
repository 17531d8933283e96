//! Publisher sessions. HTTP has no connection to hang a session on, so each publishing client
//! (peer IP and producer group) gets a core session that the core closes after
//! [`IDLE_TIMEOUT`] without a request; per-session publish limits then apply per client. The
//! table is bounded: past [`MAX_SESSIONS`] clients, the rest share one overflow session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{EventMeshError, SessionMeta, Transport};
use parking_lot::Mutex;

use crate::core::{Core, SessionHandle};

/// A publisher session with no request for this long is closed by the core.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Publisher sessions kept at most.
pub(crate) const MAX_SESSIONS: usize = 10_000;

const OVERFLOW: &str = "http-overflow";

pub(crate) struct Publishers {
    core: Arc<Core>,
    map: Mutex<HashMap<String, Arc<SessionHandle>>>,
}

impl Publishers {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Publishers {
            core,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The session of the client at `peer` publishing as `group`.
    pub(crate) fn get(
        &self,
        peer: Option<SocketAddr>,
        group: Option<&str>,
    ) -> Result<Arc<SessionHandle>, EventMeshError> {
        let ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let mut key = format!("http/{ip}/{}", group.unwrap_or(""));
        let mut map = self.map.lock();
        if let Some(s) = map.get(&key)
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !s.is_closed());
            if map.len() >= MAX_SESSIONS {
                key = OVERFLOW.to_owned();
                if let Some(s) = map.get(&key)
                    && !s.is_closed()
                {
                    return Ok(s.clone());
                }
            }
        }
        let handle = self.core.open_session(SessionMeta {
            id: self.core.new_session_id(),
            transport: Transport::Http,
            peer,
            client_identity: key.clone(),
            principal: None,
            traceparent: None,
        })?;
        handle.set_idle_timeout(Some(IDLE_TIMEOUT));
        let handle = Arc::new(handle);
        map.insert(key, handle.clone());
        Ok(handle)
    }

    /// Closes every publisher session (at shutdown).
    pub(crate) fn close_all(&self) {
        for (_, s) in self.map.lock().drain() {
            s.close();
        }
    }
}
