//! The EventMesh HTTP protocol server, wire-compatible with Apache EventMesh HTTP clients, and the
//! CloudEvents HTTP protocol binding 1.0, over HTTP/1.1 and HTTP/2 (h2c by prior knowledge, h2
//! over TLS by ALPN), with optional TLS (rustls) and basic or bearer auth.
//!
//! It is a thin adapter onto the delivery [`Core`], like the TCP server:
//! * publishes (request codes 101/102/104/107, `POST /eventmesh/publish/...`) open a core
//!   session per client (peer address and producer group, idle sessions closed by the core) and
//!   call `publish`, `request` or `reply`;
//! * webhook subscriptions (code 206, `POST /eventmesh/subscribe/local`) become core members
//!   whose pushes are POSTed to the subscriber's URLs ([`webhook`]); every retry, attempt count,
//!   backoff and dead-letter decision is the core's.
//!
//! Files:
//! * `listener.rs`: the accept loop (plain or TLS), the connection cap, HTTP/1.1 + HTTP/2 and
//!   graceful shutdown;
//! * `tls.rs`: the rustls server configuration from PEM files;
//! * `auth.rs`: basic and bearer auth;
//! * `routes.rs`: the request router (REST paths by prefix, everything else to the request-code
//!   dispatcher), body limits and the answer shapes;
//! * `request_code.rs`: the request-code protocol of section 3.1 (form fields matched
//!   case-insensitively);
//! * `rest.rs`: the REST paths of section 3.3;
//! * `cloudevents_binding.rs`: binary, structured and batched CloudEvents on the publish paths;
//! * `form.rs`: forms and JSON objects with case-insensitive keys;
//! * `sessions.rs`: publisher sessions;
//! * `metrics.rs`: the HTTP metrics;
//! * `webhook/`: subscriptions (persisted in the meta store), pushers, push formats, the answer
//!   table and the HTTP client with its deny-list connector.
//!
//! Invariants worth naming:
//! * every request gets an answer with a JSON body: a malformed form, JSON document, header or
//!   an oversized body is a 4xx naming the problem, never a panic or a dropped connection;
//! * an event is acknowledged (retCode 0, or 2xx on the CloudEvents paths) only once the store
//!   holds it; a batch is all or nothing per topic;
//! * a webhook push is committed (core ack) only on a "done" answer or after the event reached
//!   the dead-letter topic; never twice.

mod auth;
mod bridge;
mod cloudevents_binding;
mod form;
mod listener;
pub mod metrics;
mod request_code;
mod rest;
mod routes;
mod sessions;
mod tls;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_config::Config;
use eventmesh_config::server::http::{HttpAuthConfig, HttpAuthMode};
use eventmesh_storage::EventStore;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::meta::MetaStore;

pub use tls::TlsError;
pub use webhook::{PushFormat, WebhookOptions};

/// How long connections may finish their requests after shutdown began.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Options of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Events of one batch publish at most.
    pub max_batch_events: usize,
    /// `eventmeshcluster` header value.
    pub cluster: String,
    /// `eventmeshenv` header value.
    pub env: String,
    /// `eventmeshidc` header value.
    pub idc: String,
    /// `eventmeship` header value (this node's address).
    pub ip: String,
    /// Authentication.
    pub auth: HttpAuthConfig,
    /// Webhook pushes.
    pub webhook: WebhookOptions,
    /// How long connections may finish their requests after shutdown began.
    pub shutdown_grace: Duration,
    /// The URL remote meshes push bridged events to (`/eventmesh/bridge/publish` of this node);
    /// `""` until the listener is bound ([`HttpOptions::with_bound_port`]).
    pub bridge_callback_url: String,
    /// The consumer group this mesh subscribes with on remote meshes.
    pub bridge_group: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::from_config(&Config::default(), "127.0.0.1")
    }
}

impl HttpOptions {
    /// The options `[server.http]` gives; `ip` names this node in the `eventmeship` header.
    pub fn from_config(config: &Config, ip: &str) -> Self {
        let h = &config.server.http;
        let event = usize::try_from(config.limits.max_event_bytes).unwrap_or(usize::MAX);
        let body = usize::try_from(h.max_body_bytes).unwrap_or(usize::MAX);
        HttpOptions {
            max_body_bytes: body.max(event.saturating_add(64 * 1024)),
            max_batch_events: (h.max_batch_events as usize).max(1),
            cluster: h.cluster.clone(),
            env: h.env.clone(),
            idc: h.idc.clone(),
            ip: ip.to_owned(),
            auth: h.auth.clone(),
            webhook: WebhookOptions::from_config(config),
            shutdown_grace: SHUTDOWN_GRACE.min(config.shutdown.timeout / 4),
            bridge_callback_url: h.bridge.callback_url.clone(),
            bridge_group: if h.bridge.group.is_empty() {
                format!("{}-bridge", h.cluster)
            } else {
                h.bridge.group.clone()
            },
        }
    }

    /// Derives the bridge callback URL, unless configured, from this node's address and the
    /// bound HTTP port (`https` when that listener speaks TLS).
    #[must_use]
    pub fn with_bound_port(mut self, port: u16, tls: bool) -> Self {
        if self.bridge_callback_url.is_empty() {
            let scheme = if tls { "https" } else { "http" };
            let host = if self.ip.contains(':') && !self.ip.starts_with('[') {
                format!("[{}]", self.ip)
            } else {
                self.ip.clone()
            };
            self.bridge_callback_url = format!("{scheme}://{host}:{port}/eventmesh/bridge/publish");
        }
        self
    }

    pub(crate) fn auth_enabled(&self) -> bool {
        self.auth.mode != HttpAuthMode::None
    }
}

/// Why the HTTP server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpServerError {
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not be bound.
    #[error("cannot bind the HTTP{} listener on {addr}", if *.tls { "S" } else { "" })]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Whether it is the TLS listener.
        tls: bool,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The webhook HTTP client could not be built.
    #[error("cannot build the webhook client: {0}")]
    Client(String),
}

/// The bound listeners of the HTTP server: the main one (plain, or TLS when `tls.listen` is
/// empty) and the separate TLS one.
pub struct HttpListeners {
    main: (TcpListener, SocketAddr, Option<tokio_rustls::TlsAcceptor>),
    tls: Option<(TcpListener, SocketAddr, tokio_rustls::TlsAcceptor)>,
}

impl HttpListeners {
    /// The main listener's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.main.1
    }

    /// The separate TLS listener's bound address, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.1)
    }
}

/// Binds the listeners `[server.http]` asks for (and loads the TLS certificate).
pub async fn bind(config: &Config) -> Result<HttpListeners, HttpServerError> {
    let h = &config.server.http;
    let acceptor = if h.tls.enabled {
        Some(tls::acceptor(&h.tls.cert_file, &h.tls.key_file)?)
    } else {
        None
    };
    let bind = |addr: SocketAddr, tls: bool| async move {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpServerError::Bind { addr, tls, source })?;
        let bound = l
            .local_addr()
            .map_err(|source| HttpServerError::Bind { addr, tls, source })?;
        Ok::<_, HttpServerError>((l, bound))
    };
    let separate = acceptor.is_some() && !h.tls.listen.is_empty();
    let (main, main_addr) = bind(h.listen, acceptor.is_some() && !separate).await?;
    let mut listeners = HttpListeners {
        main: (main, main_addr, None),
        tls: None,
    };
    if let Some(acceptor) = acceptor {
        if separate {
            let addr: SocketAddr = h.tls.listen.parse().map_err(|_| HttpServerError::Bind {
                addr: h.listen,
                tls: true,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("`{}` is not IP:PORT", h.tls.listen),
                ),
            })?;
            let (l, bound) = bind(addr, true).await?;
            listeners.tls = Some((l, bound, acceptor));
        } else {
            listeners.main.2 = Some(acceptor);
        }
    }
    Ok(listeners)
}

/// What every request of one server shares.
pub struct HttpContext {
    pub(crate) core: Arc<Core>,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) options: HttpOptions,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) publishers: sessions::Publishers,
    pub(crate) webhooks: Arc<webhook::WebhookManager>,
}

impl HttpContext {
    /// A context for `core` (and its `store` and `meta` store) with `options`, capping
    /// connections with `connections`.
    pub fn new(
        core: Arc<Core>,
        store: Arc<dyn EventStore>,
        meta: Arc<dyn MetaStore>,
        options: HttpOptions,
        connections: Arc<Semaphore>,
    ) -> Result<Arc<Self>, HttpServerError> {
        let webhooks = webhook::WebhookManager::new(core.clone(), meta, options.clone())
            .map_err(HttpServerError::Client)?;
        Ok(Arc::new(HttpContext {
            publishers: sessions::Publishers::new(core.clone()),
            core,
            store,
            options,
            connections,
            webhooks,
        }))
    }

    /// The webhook subscriptions of this node.
    pub fn webhooks(&self) -> &Arc<webhook::WebhookManager> {
        &self.webhooks
    }
}

/// Restores the persisted webhook subscriptions, serves `listeners` until `shutdown` is
/// cancelled, lets requests in progress finish (`shutdown_grace`), then stops the webhook
/// pushers (pushes in progress finish; what they hold goes back to the core).
pub async fn run(
    listeners: HttpListeners,
    ctx: Arc<HttpContext>,
    shutdown: CancellationToken,
) -> Result<(), HttpServerError> {
    ctx.webhooks.start(shutdown.child_token()).await;
    let router = routes::router(ctx.clone());
    let HttpListeners { main, tls } = listeners;
    let main_task = listener::run(
        main.0,
        main.2,
        router.clone(),
        ctx.clone(),
        shutdown.clone(),
    );
    match tls {
        Some((l, _, acceptor)) => {
            let tls_task = listener::run(l, Some(acceptor), router, ctx.clone(), shutdown.clone());
            tokio::join!(main_task, tls_task);
        }
        None => main_task.await,
    }
    ctx.webhooks.stop().await;
    ctx.publishers.close_all();
    Ok(())
}
