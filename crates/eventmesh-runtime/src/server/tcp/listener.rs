//! The accept loop: one task per connection in a `JoinSet`, capped by the shared connection
//! semaphore, stopped by the shutdown token (mini-redis `server::run`, with a task set instead of
//! a broadcast channel so every connection is awaited).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use eventmesh_protocol::tcp::{Command, Dialect, Header, OpStatus, Package, encode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::session::Handler;
use super::{TcpContext, TcpServerError};
use crate::telemetry::tcp::{ConnectionAccepted, FrameCounters, connections};

/// The longest pause after a failing `accept` (file descriptors exhausted, …).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

pub(super) async fn run(
    listener: TcpListener,
    ctx: Arc<TcpContext>,
    shutdown: CancellationToken,
) -> Result<(), TcpServerError> {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(message = "TCP server listening.", addr = %local, transport = "tcp");
    let counters = Arc::new(FrameCounters::default());
    let gauge = connections();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    warn!(message = "A TCP connection task panicked.", error = %e, transport = "tcp");
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
                // Per-connection errors (reset before accept) and resource exhaustion are
                // transient: log, pause, go on.
                warn!(message = "Failed to accept a TCP connection.", %error, transport = "tcp");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            ConnectionAccepted {
                outcome: "over_limit",
            }
            .emit();
            warn!(message = "Refused a TCP connection: too many connections.", peer = %peer, transport = "tcp");
            refuse(&stream);
            continue;
        };
        ConnectionAccepted {
            outcome: "accepted",
        }
        .emit();
        if let Err(error) = stream.set_nodelay(true) {
            debug!(message = "Failed to set TCP_NODELAY.", %error, peer = %peer);
        }
        let id = ctx.next_connection_id();
        let span = info_span!("tcp_connection", connection_id = id, peer = %peer, transport = "tcp", client_id = tracing::field::Empty);
        let handler = Handler::new(
            ctx.clone(),
            counters.clone(),
            id,
            peer,
            stream,
            shutdown.child_token(),
        );
        let gauge = gauge.clone();
        tasks.spawn(
            async move {
                gauge.increment(1.0);
                handler.run().await;
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
            message = "TCP server stopped accepting; waiting for connections to close.",
            connections = open,
            transport = "tcp"
        );
    }
    // Every connection saw the token (a child of `shutdown`) and is saying goodbye. Dropping the
    // set aborts whatever the registry's deadline leaves running.
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            warn!(message = "A TCP connection task panicked.", error = %e, transport = "tcp");
        }
    }
    info!(message = "TCP server stopped.", addr = %local, transport = "tcp");
    Ok(())
}

/// Tells a connection over the cap why it is closed (one non-blocking write, v1.9 framing: the
/// client's has not been seen yet), then drops it.
fn refuse(stream: &TcpStream) {
    let header = Header::new(Command::ServerGoodbyeRequest, None).with_status(
        OpStatus::Fail,
        "too many connections to this EventMesh node; try again later or another node",
    );
    let mut buf = BytesMut::new();
    if encode(&Package::header_only(header), Dialect::V19, &mut buf).is_ok() {
        let _ = stream.try_write(&buf);
    }
}
