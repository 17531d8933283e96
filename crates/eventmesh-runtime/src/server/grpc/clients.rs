//! The registry of gRPC clients.
//!
//! * **Publishers.** gRPC has no connection a publish can hang a session on (HTTP/2 hides it),
//!   so each publishing client (its `ip/pid/sys` and producer group) gets one core session,
//!   closed by the core after `client_expiry` without a call or heartbeat; per-session rate
//!   limits apply per client. The table is bounded: past [`MAX_PUBLISHERS`] clients the rest
//!   share one overflow session.
//! * **Stream subscribers.** Each open `subscribeStream` registers its group, client key, core
//!   session and topics, so that `unsubscribe` (a separate call) and heartbeats find it. A
//!   heartbeat listing a (group, topic) that no stream of that client (nor a webhook URL) holds
//!   on this node is answered `statuscode` "30": the node restarted or forgot the client, which
//!   then subscribes again.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventmesh_core::{EventMeshError, GroupName, SessionMeta, Topic, Transport};
use parking_lot::Mutex;

use crate::core::{Core, SessionHandle};

/// Publisher sessions kept at most.
pub(crate) const MAX_PUBLISHERS: usize = 10_000;
const OVERFLOW: &str = "grpc-overflow";

/// The topics a stream holds, shared by the stream's task and the registry.
pub(crate) type SharedTopics = Arc<Mutex<BTreeSet<Topic>>>;

/// A registered stream subscriber.
pub(crate) struct StreamEntry {
    pub(crate) group: GroupName,
    pub(crate) client_key: String,
    pub(crate) session: Arc<SessionHandle>,
    pub(crate) topics: SharedTopics,
}

/// What an admin view shows of a stream subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's id on this node.
    pub id: u64,
    /// The consumer group.
    pub group: String,
    /// `ip/pid/sys` of the client.
    pub client: String,
    /// The topics it subscribes.
    pub topics: Vec<String>,
}

/// The gRPC clients of this node. See the [module docs](self).
pub struct GrpcClients {
    core: Arc<Core>,
    expiry: Option<Duration>,
    publishers: Mutex<HashMap<String, Arc<SessionHandle>>>,
    streams: Mutex<HashMap<u64, StreamEntry>>,
    next_stream: AtomicU64,
}

impl GrpcClients {
    pub(crate) fn new(core: Arc<Core>, expiry: Option<Duration>) -> Self {
        GrpcClients {
            core,
            expiry,
            publishers: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
        }
    }

    /// The publisher session of client `client_key` publishing as `group`.
    pub(crate) fn publisher(
        &self,
        client_key: &str,
        group: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<SessionHandle>, EventMeshError> {
        let mut key = format!("grpc/{group}/{client_key}");
        let mut map = self.publishers.lock();
        if let Some(s) = map.get(&key)
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        if map.len() >= MAX_PUBLISHERS {
            map.retain(|_, s| !s.is_closed());
            if map.len() >= MAX_PUBLISHERS {
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
            transport: Transport::Grpc,
            peer,
            client_identity: key.clone(),
            principal: None,
            traceparent: None,
        })?;
        handle.set_idle_timeout(self.expiry);
        let handle = Arc::new(handle);
        map.insert(key, handle.clone());
        Ok(handle)
    }

    /// Marks a publisher alive (its heartbeat); `false` if this node has no session for it.
    pub(crate) fn touch_publisher(&self, client_key: &str, group: &str) -> bool {
        let key = format!("grpc/{group}/{client_key}");
        match self.publishers.lock().get(&key) {
            Some(s) if !s.is_closed() => {
                s.touch();
                true
            }
            _ => false,
        }
    }

    /// Registers a stream subscriber; returns its id.
    pub(crate) fn add_stream(&self, entry: StreamEntry) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.streams.lock().insert(id, entry);
        id
    }

    pub(crate) fn remove_stream(&self, id: u64) {
        self.streams.lock().remove(&id);
    }

    /// The sessions and topic sets of `client_key`'s streams in `group`.
    pub(crate) fn streams_of(
        &self,
        group: &GroupName,
        client_key: &str,
    ) -> Vec<(Arc<SessionHandle>, SharedTopics)> {
        self.streams
            .lock()
            .values()
            .filter(|e| e.group == *group && e.client_key == client_key && !e.session.is_closed())
            .map(|e| (e.session.clone(), e.topics.clone()))
            .collect()
    }

    /// Marks `client_key`'s streams in `group` alive; returns the topics they hold.
    pub(crate) fn heartbeat_streams(&self, group: &GroupName, client_key: &str) -> BTreeSet<Topic> {
        let mut topics = BTreeSet::new();
        for (session, t) in self.streams_of(group, client_key) {
            session.touch();
            topics.extend(t.lock().iter().cloned());
        }
        topics
    }

    /// Stream subscribers open on this node.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = self
            .streams
            .lock()
            .iter()
            .map(|(id, e)| StreamInfo {
                id: *id,
                group: e.group.to_string(),
                client: e.client_key.clone(),
                topics: e.topics.lock().iter().map(ToString::to_string).collect(),
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Publisher sessions open on this node.
    pub fn publisher_count(&self) -> usize {
        self.publishers
            .lock()
            .values()
            .filter(|s| !s.is_closed())
            .count()
    }

    /// Closes every publisher session (at shutdown).
    pub(crate) fn close_publishers(&self) {
        for (_, s) in self.publishers.lock().drain() {
            s.close();
        }
    }
}
