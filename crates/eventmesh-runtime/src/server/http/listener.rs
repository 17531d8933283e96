//! The accept loop of one HTTP listener (plain or TLS): one task per connection in a `JoinSet`,
//! capped by the shared connection semaphore, each served by hyper's auto builder (HTTP/1.1 with
//! keep-alive, or HTTP/2 by prior knowledge or ALPN). On shutdown the listener stops accepting,
//! every connection is asked to finish gracefully (HTTP/1.1: after the request in progress;
//! HTTP/2: GOAWAY) and is aborted after `shutdown_grace`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{Instrument, debug, info, info_span, warn};

use super::HttpContext;
use super::metrics;

/// The longest pause after a failing `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(1000);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer address of the connection a request came on (a request extension).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) SocketAddr);

pub(super) async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    ctx: Arc<HttpContext>,
    shutdown: CancellationToken,
) {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(message = "HTTP server listening.", addr = %local, scheme, transport = "http");
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .timer(hyper_util::rt::TokioTimer::new());
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    warn!(message = "An HTTP connection task panicked.", error = %e, transport = "http");
                }
                continue;
            }
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(error) => {
                warn!(message = "Failed to accept an HTTP connection.", %error, transport = "http");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            metrics::connection("over_limit");
            warn!(message = "Refused an HTTP connection: too many connections.", peer = %peer, transport = "http");
            drop(stream);
            continue;
        };
        metrics::connection("accepted");
        if let Err(error) = stream.set_nodelay(true) {
            debug!(message = "Failed to set TCP_NODELAY.", %error, peer = %peer);
        }
        let span = info_span!("http_connection", peer = %peer, transport = "http", scheme);
        let router = router.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(
            async move {
                let gauge = metrics::connections_gauge();
                gauge.increment(1.0);
                serve(stream, peer, tls, router, &builder, &shutdown).await;
                gauge.decrement(1.0);
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    let open = tasks.len();
    if open > 0 {
        info!(
            message = "HTTP server stopped accepting; letting connections finish.",
            connections = open,
            transport = "http"
        );
    }
    // Every connection saw the token and is finishing gracefully; dropping the set aborts
    // whatever the grace leaves running.
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(ctx.options.shutdown_grace, drained)
        .await
        .is_err()
    {
        info!(
            message = "HTTP connections still open after the shutdown grace; closing them.",
            transport = "http"
        );
    }
    info!(message = "HTTP server stopped.", addr = %local, transport = "http");
}

/// Serves one connection (after its TLS handshake) until it closes or shutdown ends it.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    builder: &Builder<TokioExecutor>,
    shutdown: &CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let mut router = router.clone();
        async move {
            let resp = router.call(req.map(axum::body::Body::new)).await;
            Ok::<_, Infallible>(match resp {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    match tls {
        None => {
            drive(builder, TokioIo::new(stream), service, shutdown).await;
        }
        Some(acceptor) => {
            let handshake = tokio::select! {
                () = shutdown.cancelled() => return,
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
            };
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(error)) => {
                    metrics::tls_handshake_failed();
                    debug!(message = "TLS handshake failed.", %error);
                    return;
                }
                Err(_) => {
                    metrics::tls_handshake_failed();
                    debug!(message = "TLS handshake timed out.");
                    return;
                }
            };
            drive(builder, TokioIo::new(stream), service, shutdown).await;
        }
    }
}

/// Runs one connection; on shutdown asks it to finish gracefully and waits for that.
async fn drive<I, S>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: S,
    shutdown: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        debug!(message = "HTTP connection ended with an error.", error = %error);
    }
}
