//! The EventMesh TCP protocol server, wire-compatible with Apache EventMesh clients: the Java SDK
//! (v1.9+ framing), the Go SDK (pre-1.9 framing) and v1.0 `WEMQ` clients, each connection answered
//! in the framing its first frame used (the [`FrameCodec`] detects it).
//!
//! It is a thin adapter onto the delivery [`Core`]: one core session per connection (opened by
//! `HELLO_REQUEST`), one member endpoint per session shared by all its subscriptions (so the
//! client's `unack` is one window per session, as in the protocol), and a translation of frames
//! into `publish` / `subscribe` / `ack` / `nack` / `request` / `reply`. Windows, ack timeouts,
//! redelivery, attempts and dead-lettering live in the core.
//!
//! Files:
//! * `listener.rs`: the accept loop, the connection cap, the task set of connections;
//! * `connection.rs`: framed reads and writes over the protocol crate's codec;
//! * `session.rs`: the per-connection task and its state machine (protocol section 2.6);
//! * `commands.rs`: what each client command does, and core pushes to frames;
//! * `publish.rs`: publish, broadcast, request-reply and replies (the operations run
//!   concurrently, at most `max_pending` per connection);
//! * `push.rs`: core pushes to frames in the subscriber's own protocol type;
//! * `clients.rs`: the registry of connected clients (admin views, redirect, reject).
//!
//! Invariants worth naming:
//! * bad input (bad magic, a frame over the limit, broken JSON, an unknown command, a command
//!   before `HELLO_REQUEST`, a server-to-client command) is answered with
//!   `SERVER_GOODBYE_REQUEST`, code 1 and a `desc` naming the problem, then the connection closes;
//!   other connections carry on and nothing stored is lost (the session's un-acked pushes go to
//!   other members);
//! * every queue is bounded: the read buffer by `max_frame_bytes`, pushes by the session's
//!   window, pending operations by `max_pending`, the write buffer by a high-water mark (a
//!   client that does not read stops being read and pushed to; only it slows down);
//! * a publish is answered (code 0 only once the store holds it); over a rate limit the answer
//!   is code 3 `tpsOverload` with a `desc`, never silence.
//!
//! [`FrameCodec`]: eventmesh_protocol::tcp::FrameCodec

mod clients;
mod commands;
mod connection;
mod listener;
mod publish;
mod push;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventmesh_config::Config;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::core::Core;

pub use clients::{ClientInfo, Clients};

/// How long a connection keeps reading acks after the server said goodbye on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Options of the TCP server.
#[derive(Clone, Debug)]
pub struct TcpOptions {
    /// The largest frame accepted or sent (bytes on the wire).
    pub max_frame_bytes: usize,
    /// A connection sending nothing for this long is told goodbye and closed.
    pub idle_timeout: Duration,
    /// The largest window a client may ask for with its HELLO `unack`.
    pub max_unack: usize,
    /// Operations (publish, request, reply) of one connection processed at once.
    pub max_pending: usize,
    /// How long connections keep reading acks after the shutdown goodbye.
    pub shutdown_grace: Duration,
    /// The address answered to `RECOMMEND_REQUEST` (this node's advertise address).
    pub advertise: String,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            max_frame_bytes: eventmesh_protocol::tcp::DEFAULT_MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(60),
            max_unack: 1000,
            max_pending: 100,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            advertise: String::new(),
        }
    }
}

impl TcpOptions {
    /// The options `[server.tcp]` gives, answering `RECOMMEND_REQUEST` with `advertise`.
    pub fn from_config(config: &Config, advertise: &str) -> Self {
        let t = &config.server.tcp;
        TcpOptions {
            max_frame_bytes: t.max_frame_bytes as usize,
            idle_timeout: t.idle_timeout,
            max_unack: (t.max_unack as usize).max(1),
            max_pending: (t.max_pending as usize).max(1),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE.min(config.shutdown.timeout / 4),
            advertise: advertise.to_owned(),
        }
    }
}

/// Why the TCP server stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpServerError {
    /// The listener failed in a way accepting again cannot fix.
    #[error("the TCP listener on {addr} failed")]
    Listener {
        /// The listen address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What every connection of one server shares.
pub struct TcpContext {
    pub(crate) core: Arc<Core>,
    pub(crate) options: TcpOptions,
    /// Connection slots (`limits.max_connections`, shared with the other listeners).
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) clients: Clients,
    /// The server-global push sequence (`ServerGlobal.msgCounter` in Java).
    push_seq: AtomicU64,
    next_connection: AtomicU64,
}

impl TcpContext {
    /// A context for `core` with `options`, capping connections with `connections`.
    pub fn new(core: Arc<Core>, options: TcpOptions, connections: Arc<Semaphore>) -> Arc<Self> {
        Arc::new(TcpContext {
            core,
            options,
            connections,
            clients: Clients::default(),
            push_seq: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
        })
    }

    /// The registry of connected clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub(crate) fn next_push_seq(&self) -> String {
        self.push_seq.fetch_add(1, Ordering::Relaxed).to_string()
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// Binds the TCP listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` until `shutdown` is cancelled, then says goodbye to every client, lets them
/// ack what they hold for a moment (`shutdown_grace`), and returns once every connection closed.
pub async fn run(
    listener: TcpListener,
    ctx: Arc<TcpContext>,
    shutdown: CancellationToken,
) -> Result<(), TcpServerError> {
    listener::run(listener, ctx, shutdown).await
}
