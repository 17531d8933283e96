//! `[server.tcp]`: the EventMesh TCP protocol.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[server.tcp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpServerConfig {
    /// Whether the TCP listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for TcpServerConfig {
    fn default() -> Self {
        TcpServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10000)),
        }
    }
}
