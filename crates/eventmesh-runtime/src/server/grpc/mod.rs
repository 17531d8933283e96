//! The EventMesh gRPC protocol server (tonic), wire-compatible with Apache EventMesh clients:
//! the v1.9+ CloudEvent services (`org.apache.eventmesh.cloudevents.v1`, Java and Rust SDKs)
//! and the legacy `eventmesh-client.proto` services (`eventmesh.common.protocol.grpc`, v1.4–v1.8
//! and the Go SDK), both on one port (their fully qualified service names differ).
//!
//! It is a thin adapter onto the delivery [`Core`]: unary publishes go to `Core::publish` /
//! `Core::request` under one core session per publishing client; each `subscribeStream` is one
//! core session and one member endpoint whose pushes go down the response stream; webhook
//! `subscribe` calls go to the HTTP server's webhook push engine. Windows, ack timeouts,
//! redelivery and dead-lettering live in the core.
//!
//! Files:
//! * `listener.rs`: the accept loop (connection cap shared with the other listeners), TLS, the
//!   tonic server and its graceful shutdown;
//! * `publisher.rs`: `PublisherService` (v1);
//! * `consumer.rs`: `ConsumerService` (v1): webhook `subscribe`, `subscribeStream`,
//!   `unsubscribe`;
//! * `heartbeat.rs`: `HeartbeatService` (v1) and the legacy heartbeat;
//! * `legacy.rs`: the legacy services;
//! * `stream.rs`: one subscriber stream (both packages): subscriptions, pushes, acks, replies;
//! * `clients.rs`: the registry of clients: publisher sessions, stream subscribers, expiry;
//! * `answer.rs`: answers and the mapping of domain errors to string status codes;
//! * `metrics.rs`: the server's metrics.
//!
//! Invariants worth naming:
//! * bad input is answered with the protocol's string status code (`6` identity attributes,
//!   `7` body, `10` batch, `17` subscribe, …) and a message naming the problem; a message over
//!   `max_message_bytes` gets gRPC status `RESOURCE_EXHAUSTED` from tonic; nothing panics;
//! * a publish is answered `statuscode` "0" only once the store holds the event (one-way RPCs
//!   answer at once and log failures);
//! * an event pushed on a stream is acked in the core only once the client has taken it: on the
//!   client's `ack` message (`ackmode = explicit`), or, for clients that never ack (Apache
//!   EventMesh SDKs), once the server handed it to the HTTP/2 stream; a stream that breaks
//!   returns its un-acked events to the group at once;
//! * every queue is bounded: the push channel by the window, the response stream by a small
//!   channel behind HTTP/2 flow control, publisher sessions and streams by the connection cap.

mod answer;
mod clients;
mod consumer;
mod heartbeat;
mod legacy;
mod listener;
pub mod metrics;
mod publisher;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_config::Config;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;
use crate::server::http::webhook::WebhookManager;

pub use clients::GrpcClients;

/// How long stream subscribers may still ack what they hold after shutdown began.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Options of the gRPC server.
#[derive(Clone, Debug)]
pub struct GrpcOptions {
    /// The largest gRPC message accepted.
    pub max_message_bytes: usize,
    /// Events of one batch publish at most.
    pub max_batch_events: usize,
    /// Clients silent for this long are forgotten; `None`: never.
    pub client_expiry: Option<Duration>,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// The largest window of an explicitly acknowledging stream subscriber.
    pub max_unack: usize,
    /// How long streams keep taking acks after shutdown began.
    pub shutdown_grace: Duration,
    /// PEM certificate chain and key, when the listener speaks TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Default for GrpcOptions {
    fn default() -> Self {
        GrpcOptions {
            max_message_bytes: 16 * 1024 * 1024,
            max_batch_events: 1000,
            client_expiry: Some(Duration::from_secs(60)),
            max_concurrent_streams: 1000,
            max_unack: 1000,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
        }
    }
}

impl GrpcOptions {
    /// The options `[server.grpc]` and `[limits]` give.
    pub fn from_config(config: &Config) -> Self {
        let g = &config.server.grpc;
        let max_event = usize::try_from(config.limits.max_event_bytes).unwrap_or(usize::MAX);
        let max_message = usize::try_from(g.max_message_bytes)
            .unwrap_or(usize::MAX)
            .max(max_event.saturating_add(64 * 1024));
        GrpcOptions {
            max_message_bytes: max_message,
            max_batch_events: (g.max_batch_events as usize).max(1),
            client_expiry: (!g.client_expiry.is_zero()).then_some(g.client_expiry),
            max_concurrent_streams: g.max_concurrent_streams.max(1),
            max_unack: (g.max_unack as usize).max(1),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE.min(config.shutdown.timeout / 4),
            tls: g.tls.enabled.then(|| {
                (
                    g.tls.cert_file.clone().into(),
                    g.tls.key_file.clone().into(),
                )
            }),
        }
    }
}

/// Why the gRPC server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcServerError {
    /// The TLS certificate or key cannot be used.
    #[error("cannot use the gRPC TLS certificate or key: {0}")]
    Tls(String),
    /// The server failed in a way serving again cannot fix.
    #[error("the gRPC server on {addr} failed: {message}")]
    Serve {
        /// The listen address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// What every call of one server shares.
pub struct GrpcContext {
    pub(crate) core: Arc<Core>,
    pub(crate) options: GrpcOptions,
    /// Connection slots (`limits.max_connections`, shared with the other listeners).
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) clients: GrpcClients,
    /// The HTTP server's webhook push engine (webhook-mode `subscribe`); `None` when HTTP is off.
    pub(crate) webhooks: Option<Arc<WebhookManager>>,
    /// Cancelled when the server shuts down (streams drain, unary calls waiting for replies
    /// stop waiting).
    pub(crate) shutdown: CancellationToken,
    /// The subscriber stream tasks (each ends when its stream does, or after the shutdown
    /// grace); the server waits for them before it returns.
    pub(crate) streams: TaskTracker,
}

impl GrpcContext {
    /// A context for `core` with `options`, capping connections with `connections`, handing
    /// webhook subscriptions to `webhooks`.
    pub fn new(
        core: Arc<Core>,
        options: GrpcOptions,
        connections: Arc<Semaphore>,
        webhooks: Option<Arc<WebhookManager>>,
    ) -> Arc<Self> {
        Arc::new(GrpcContext {
            clients: GrpcClients::new(core.clone(), options.client_expiry),
            core,
            options,
            connections,
            webhooks,
            shutdown: CancellationToken::new(),
            streams: TaskTracker::new(),
        })
    }

    /// The registry of gRPC clients.
    pub fn clients(&self) -> &GrpcClients {
        &self.clients
    }
}

/// Checks the TLS certificate and key of `options` (read and parsed), so that a bad one stops
/// the start rather than the first handshake.
pub fn check_tls(options: &GrpcOptions) -> Result<(), GrpcServerError> {
    listener::tls_config(options.tls.as_ref()).map(|_| ())
}

/// Binds the gRPC listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` until `shutdown` is cancelled: then stream subscribers stop receiving
/// pushes and may ack what they hold for `shutdown_grace`, calls in progress finish (requests
/// waiting for a reply are answered status 8), and it returns once every connection closed
/// (connections still open twice `shutdown_grace` after the start of the shutdown are dropped).
pub async fn run(
    listener: TcpListener,
    ctx: Arc<GrpcContext>,
    shutdown: CancellationToken,
) -> Result<(), GrpcServerError> {
    listener::run(listener, ctx, shutdown).await
}
