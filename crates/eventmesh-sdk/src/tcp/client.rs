//! The client handle.

use std::sync::Arc;
use std::time::Duration;

use eventmesh_protocol::tcp::Package;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::session::{Command, ConnectionState, Outgoing, Reply, Task, check};
use crate::config::ClientConfig;
use crate::error::Error;

/// Commands buffered between the handles and the connection task.
const COMMAND_CAPACITY: usize = 256;
/// Acks and replies buffered between the subscription workers and the connection task.
const OUTGOING_CAPACITY: usize = 1024;

/// A client of one EventMesh runtime over TCP.
///
/// A cheap, cloneable handle: every clone talks to the same connection task, which owns the
/// socket, sends heartbeats and reconnects. The connection is closed by [`Client::close`], or
/// when the last handle is dropped (the task then says goodbye and ends; subscription handlers
/// stop with it).
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Arc<ClientConfig>,
    commands: mpsc::Sender<Command>,
    pub(crate) outgoing: mpsc::Sender<Outgoing>,
    pub(crate) cancel: CancellationToken,
    /// Cancelled when the connection task ends; stops every subscription worker.
    pub(crate) kill: CancellationToken,
    state: watch::Receiver<ConnectionState>,
    permits: Semaphore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Request { .. } => "Request",
            Command::Subscribe { .. } => "Subscribe",
            Command::Listen { .. } => "Listen",
            Command::Unsubscribe { .. } => "Unsubscribe",
        })
    }
}

impl Client {
    /// Connects and says HELLO. The first connection is not retried: an unreachable server or
    /// a refused HELLO is an error here; later losses are reconnected automatically.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Timeout`], or [`Error::Server`] if the HELLO is refused.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let config = Arc::new(config);
        let (command_tx, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_CAPACITY);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Reconnecting);
        let cancel = CancellationToken::new();
        let kill = CancellationToken::new();
        let mut task = Task::new(
            config.clone(),
            cancel.clone(),
            kill.clone(),
            command_rx,
            outgoing_rx,
            state_tx,
        );
        let address = config.address.clone();
        let session = task.open_session(&address).await?;
        tokio::spawn(task.run(session));
        Ok(Client {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.max_in_flight),
                config,
                commands: command_tx,
                outgoing: outgoing_tx,
                cancel,
                kill,
                state: state_rx,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The connection's current state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// A receiver of state changes (connected, reconnecting, closed).
    #[must_use]
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.clone()
    }

    /// Waits until the client is closed (by [`Client::close`], or because it gave up
    /// reconnecting).
    pub async fn closed(&self) {
        let mut state = self.inner.state.clone();
        // An error means the task is gone, which is closed too.
        let _ = state.wait_for(|s| *s == ConnectionState::Closed).await;
    }

    /// Closes the client gracefully: sends CLIENT_GOODBYE, waits briefly for the answer, and
    /// ends the connection task and every subscription handler. Calls waiting for an answer get
    /// [`Error::Closed`]. Other handles see the client closed.
    pub async fn close(&self) {
        self.inner.cancel.cancel();
        self.closed().await;
    }

    /// Sends a command and waits for its answer, within `timeout`.
    pub(crate) async fn call<T>(
        &self,
        timeout: Duration,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::Closed);
        }
        let work = async {
            let _permit = self
                .inner
                .permits
                .acquire()
                .await
                .map_err(|_| Error::Closed)?;
            let (tx, rx) = oneshot::channel();
            self.inner
                .commands
                .send(command(tx))
                .await
                .map_err(|_| Error::Closed)?;
            rx.await.map_err(|_| Error::Closed)?
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Sends a request and returns the server's answer if its code is 0.
    pub(crate) async fn request_package(
        &self,
        package: Package,
        timeout: Duration,
    ) -> Result<Package, Error> {
        let answer = self
            .call(timeout, |reply| Command::Request { package, reply })
            .await?;
        check(answer)
    }
}
