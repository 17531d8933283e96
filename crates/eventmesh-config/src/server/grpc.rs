//! `[server.grpc]`: the EventMesh gRPC protocol.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[server.grpc]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcServerConfig {
    /// Whether the gRPC listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10205)),
        }
    }
}
