//! `[server.http]`: the EventMesh HTTP protocol and CloudEvents over HTTP.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[server.http]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Whether the HTTP listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10105)),
        }
    }
}
