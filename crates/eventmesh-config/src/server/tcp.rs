//! `[server.tcp]`: the EventMesh TCP protocol.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server.tcp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpServerConfig {
    /// Whether the TCP listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The largest frame accepted or sent, in bytes on the wire (default 4 MiB, as the Java
    /// runtime); at least 1024.
    pub max_frame_bytes: u32,
    /// A connection that sends no frame (not even a heartbeat) for this long is told goodbye and
    /// closed (default 60 s; clients heartbeat every 30 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The largest un-acked window a client may ask for with its HELLO `unack`; larger values are
    /// lowered to this (default 1000). Clients that send no `unack` get `delivery.window`.
    pub max_unack: u32,
    /// Publishes and requests of one connection being processed at once (default 100); the
    /// connection is not read while that many are pending.
    pub max_pending: u32,
}

impl Default for TcpServerConfig {
    fn default() -> Self {
        TcpServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10000)),
            max_frame_bytes: 4 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            max_unack: 1000,
            max_pending: 100,
        }
    }
}
