//! `[server.*]`: the client protocol listeners.
//!
//! Each listener is its own table (`[server.tcp]`, `[server.http]`, `[server.grpc]`,
//! `[server.mqtt]`) with `enabled` and `listen`, so listener-specific keys (TLS, keep-alive, …)
//! can be added to one without touching the others.

pub mod grpc;
pub mod http;
pub mod mqtt;
pub mod tcp;

use serde::{Deserialize, Serialize};

pub use grpc::GrpcServerConfig;
pub use http::HttpServerConfig;
pub use mqtt::MqttServerConfig;
pub use tcp::TcpServerConfig;

/// `[server]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `[server.tcp]`: the EventMesh TCP protocol.
    pub tcp: TcpServerConfig,
    /// `[server.http]`: the EventMesh HTTP protocol and CloudEvents HTTP.
    pub http: HttpServerConfig,
    /// `[server.grpc]`: the EventMesh gRPC protocol.
    pub grpc: GrpcServerConfig,
    /// `[server.mqtt]`: MQTT 3.1.1 / 5.
    pub mqtt: MqttServerConfig,
}
