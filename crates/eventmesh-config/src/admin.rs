//! `[admin]`: the admin HTTP listener (`GET /health`, `GET /metrics`).

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The socket address (`IP:PORT`) of the admin listener; port 0 picks a free port (the bound
    /// address is logged).
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10106)),
        }
    }
}
