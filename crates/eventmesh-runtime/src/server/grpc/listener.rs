//! The accept loop and the tonic server: every accepted connection takes a slot of the shared
//! connection cap (refused connections are closed at once and counted), TLS when configured,
//! both packages' services on one port, and the graceful shutdown (stop accepting, streams
//! drain, calls in progress finish, then every connection closes; one still open twice the
//! shutdown grace after the shutdown began, whose peer reads nothing, is dropped).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::v1;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tracing::{debug, info, warn};

use super::consumer::Consumer;
use super::heartbeat::Heartbeat;
use super::legacy::{LegacyConsumer, LegacyHeartbeat, LegacyPublisher};
use super::metrics;
use super::publisher::Publisher;
use super::{GrpcContext, GrpcServerError};

/// The longest pause after a failing `accept` (file descriptors exhausted, …).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// HTTP/2 pings on idle connections, to find dead peers.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// An accepted connection holding its slot of the connection cap. Once `kill` fires (a
/// shutdown whose graceful part is over) a read or write that would wait fails instead, so
/// hyper ends the connection even when the peer reads nothing. `kill` is this connection's own
/// child token and is only polled when the socket is not ready, so the hot path stays free of
/// shared locks.
struct Conn {
    stream: TcpStream,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
    killed: bool,
    _permit: OwnedSemaphorePermit,
    _gauge: metrics_gauge::Open,
}

impl Conn {
    /// `poll` (an I/O poll of the socket), unless it would wait and the connection is to be
    /// dropped: then an error.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if !self.killed {
            let r = poll(Pin::new(&mut self.stream), cx);
            if r.is_ready() {
                return r;
            }
            // Registers the waker with the kill switch too.
            if self.kill.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.killed = true;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "eventmesh is shutting down and the grace is over",
        )))
    }
}

mod metrics_gauge {
    /// Counts an open connection until dropped.
    pub(super) struct Open(pub(super) metrics::Gauge);

    impl Drop for Open {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.guard(cx, |s, cx| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The stream of accepted connections tonic serves.
struct Incoming {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    /// Cancelled when the connections still open are to be dropped.
    kill: CancellationToken,
    backoff: Duration,
    pause: Option<Pin<Box<Sleep>>>,
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(p) = self.pause.as_mut() {
                match p.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => self.pause = None,
                }
            }
            let (stream, peer) = match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(x)) => {
                    self.backoff = Duration::from_millis(10);
                    x
                }
                Poll::Ready(Err(error)) => {
                    // Per-connection errors and resource exhaustion are transient: log, pause,
                    // go on.
                    warn!(message = "Failed to accept a gRPC connection.", %error, transport = "grpc");
                    let b = self.backoff;
                    self.pause = Some(Box::pin(tokio::time::sleep(b)));
                    self.backoff = (b * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                metrics::connection("over_limit");
                warn!(message = "Refused a gRPC connection: too many connections.", peer = %peer, transport = "grpc");
                drop(stream);
                continue;
            };
            metrics::connection("accepted");
            if let Err(error) = stream.set_nodelay(true) {
                debug!(message = "Failed to set TCP_NODELAY.", %error, peer = %peer);
            }
            let gauge = metrics::connections();
            gauge.increment(1.0);
            return Poll::Ready(Some(Ok(Conn {
                stream,
                kill: Box::pin(self.kill.child_token().cancelled_owned()),
                killed: false,
                _permit: permit,
                _gauge: metrics_gauge::Open(gauge),
            })));
        }
    }
}

use std::future::Future as _;

/// The TLS configuration of `options`, checked (the files are read and parsed here, so a bad
/// certificate stops the start, not the first handshake).
pub(super) fn tls_config(
    tls: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Option<ServerTlsConfig>, GrpcServerError> {
    let Some((cert, key)) = tls else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| GrpcServerError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    // tonic's rustls takes the process-wide crypto provider. When a dependency turns on a second
    // provider (the RocketMQ client brings aws-lc-rs beside our ring) rustls cannot pick one by
    // itself and panics at the first handshake set-up, so pick ring, as the HTTP server does.
    // A provider installed before (by us or the embedding program) stays.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    // Building the acceptor parses the certificate and key.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|e| GrpcServerError::Tls(e.to_string()))?;
    Ok(Some(config))
}

pub(super) async fn run(
    listener: TcpListener,
    ctx: Arc<GrpcContext>,
    shutdown: CancellationToken,
) -> Result<(), GrpcServerError> {
    metrics::describe();
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut builder = Server::builder()
        .max_concurrent_streams(Some(ctx.options.max_concurrent_streams))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    let tls = tls_config(ctx.options.tls.as_ref())?;
    let secure = tls.is_some();
    if let Some(config) = tls {
        builder = builder
            .tls_config(config)
            .map_err(|e| GrpcServerError::Tls(e.to_string()))?;
    }
    let max = ctx.options.max_message_bytes;
    let router = builder
        .add_service(
            v1::publisher_service_server::PublisherServiceServer::new(Publisher {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            v1::consumer_service_server::ConsumerServiceServer::new(Consumer { ctx: ctx.clone() })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            v1::heartbeat_service_server::HeartbeatServiceServer::new(Heartbeat {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            legacy::publisher_service_server::PublisherServiceServer::new(LegacyPublisher {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            legacy::consumer_service_server::ConsumerServiceServer::new(LegacyConsumer {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .add_service(
            legacy::heartbeat_service_server::HeartbeatServiceServer::new(LegacyHeartbeat {
                ctx: ctx.clone(),
            })
            .max_decoding_message_size(max),
        );
    let kill = CancellationToken::new();
    let incoming = Incoming {
        listener,
        slots: ctx.connections.clone(),
        kill: kill.clone(),
        backoff: Duration::from_millis(10),
        pause: None,
    };
    info!(message = "gRPC server listening.", addr = %local, tls = secure, transport = "grpc");
    let signal = {
        let ctx = ctx.clone();
        async move {
            shutdown.cancelled().await;
            info!(
                message = "gRPC server stopping: streams drain, calls in progress finish.",
                transport = "grpc"
            );
            // Streams stop taking pushes and drain; waiting requesters are answered.
            ctx.shutdown.cancel();
        }
    };
    let serve = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serve);
    // Streams end within the grace and unary calls in progress get as long again; a
    // connection still open then (a peer that reads nothing holds its last frames) is dropped.
    let linger = ctx.options.shutdown_grace * 2;
    let served = tokio::select! {
        r = &mut serve => r,
        () = async {
            ctx.shutdown.cancelled().await;
            tokio::time::sleep(linger).await;
        } => {
            warn!(message = "gRPC connections still open after the shutdown grace; dropping them.", transport = "grpc", linger_ms = linger.as_millis() as u64);
            kill.cancel();
            serve.await
        }
    };
    // Streams whose connection went away mid-drain still end on their own; wait for them.
    ctx.shutdown.cancel();
    ctx.streams.close();
    ctx.streams.wait().await;
    ctx.clients.close_publishers();
    match served {
        Ok(()) => {
            info!(message = "gRPC server stopped.", addr = %local, transport = "grpc");
            Ok(())
        }
        Err(e) => Err(GrpcServerError::Serve {
            addr: local,
            message: e.to_string(),
        }),
    }
}
