//! The registry of connected TCP clients: what admin views list, and how a client is redirected
//! to another node (`REDIRECT_TO_CLIENT`) or rejected (`SERVER_GOODBYE_REQUEST`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use eventmesh_core::SessionId;
use eventmesh_protocol::tcp::RedirectInfo;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Control messages queued per connection; a connection handles one at a time.
const CONTROL_QUEUE: usize = 4;

/// What the server knows about one connected client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection's id (unique in this server).
    pub connection_id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The core session, once the client said hello.
    pub session: Option<SessionId>,
    /// The group from its HELLO.
    pub group: Option<String>,
    /// `pub` or `sub`, from its HELLO.
    pub purpose: Option<String>,
    /// The framing it speaks (`v1.9`, `v1.2`, `v1.0`), once its first frame arrived.
    pub dialect: Option<&'static str>,
    /// Topics it subscribed.
    pub topics: Vec<String>,
}

/// What the server asks a connection to do.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    /// Send `REDIRECT_TO_CLIENT`, then close after the grace period.
    Redirect(RedirectInfo),
    /// Send `SERVER_GOODBYE_REQUEST` (code 0, this desc), then close after the grace period.
    Reject(String),
}

struct Entry {
    info: ClientInfo,
    control: mpsc::Sender<Control>,
}

/// The connected clients of one TCP server. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<HashMap<u64, Entry>>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("connected", &self.len())
            .finish()
    }
}

impl Clients {
    /// Every connected client, by connection id.
    pub fn list(&self) -> Vec<ClientInfo> {
        let mut v: Vec<ClientInfo> = self.inner.lock().values().map(|e| e.info.clone()).collect();
        v.sort_by_key(|c| c.connection_id);
        v
    }

    /// Clients connected.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends the client `REDIRECT_TO_CLIENT {ip, port}`; the connection closes after a grace
    /// period in which the client may still ack. `false` if no such connection (or it is busy
    /// with earlier requests).
    pub fn redirect(&self, connection_id: u64, ip: &str, port: u16) -> bool {
        self.send(
            connection_id,
            Control::Redirect(RedirectInfo::new(ip, port)),
        )
    }

    /// Says goodbye to the client (`SERVER_GOODBYE_REQUEST`, code 0, `desc`) and closes the
    /// connection after a grace period. `false` if no such connection.
    pub fn reject(&self, connection_id: u64, desc: &str) -> bool {
        self.send(connection_id, Control::Reject(desc.to_owned()))
    }

    fn send(&self, connection_id: u64, control: Control) -> bool {
        let tx = self
            .inner
            .lock()
            .get(&connection_id)
            .map(|e| e.control.clone());
        tx.is_some_and(|tx| tx.try_send(control).is_ok())
    }

    /// Registers a connection; it is removed when the guard drops.
    pub(crate) fn register(
        &self,
        connection_id: u64,
        peer: SocketAddr,
    ) -> (Registration, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        self.inner.lock().insert(
            connection_id,
            Entry {
                info: ClientInfo {
                    connection_id,
                    peer,
                    session: None,
                    group: None,
                    purpose: None,
                    dialect: None,
                    topics: Vec::new(),
                },
                control: tx,
            },
        );
        (
            Registration {
                clients: self.clone(),
                connection_id,
            },
            rx,
        )
    }
}

/// A connection's entry in [`Clients`]; removes it on drop.
pub(crate) struct Registration {
    clients: Clients,
    connection_id: u64,
}

impl Registration {
    /// Updates what is known about the client.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ClientInfo)) {
        if let Some(e) = self.clients.inner.lock().get_mut(&self.connection_id) {
            f(&mut e.info);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.inner.lock().remove(&self.connection_id);
    }
}
