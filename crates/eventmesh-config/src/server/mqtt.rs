//! `[server.mqtt]`: MQTT (disabled by default).

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[server.mqtt]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttServerConfig {
    /// Whether the MQTT listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for MqttServerConfig {
    fn default() -> Self {
        MqttServerConfig {
            enabled: false,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 11883)),
        }
    }
}
