//! `[server.grpc]`: the EventMesh gRPC protocol (the v1.9+ CloudEvent services and the legacy
//! `eventmesh-client.proto` ones, on one port), with its TLS subtable.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server.grpc]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcServerConfig {
    /// Whether the gRPC listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The largest gRPC message accepted, in bytes (default 16 MiB); a larger one is refused with
    /// gRPC status `RESOURCE_EXHAUSTED`. Values below `limits.max_event_bytes` are raised to it
    /// plus 64 KiB.
    pub max_message_bytes: u64,
    /// Events of one batch publish at most (default 1000); more are answered status 10.
    pub max_batch_events: u32,
    /// A client that sends no heartbeat (and, for stream subscribers, nothing at all) for this
    /// long is forgotten: its stream is ended and its publisher session closed (default 60 s, as
    /// Apache EventMesh; clients heartbeat every 20 to 30 s). "0s" = never.
    #[serde(with = "humantime_serde")]
    pub client_expiry: Duration,
    /// HTTP/2 streams one connection may have open at once (default 1000).
    pub max_concurrent_streams: u32,
    /// The largest window (un-acked pushes) of a stream subscriber that acknowledges explicitly
    /// (default 1000). Streams get `delivery.window` unless they ask for less.
    pub max_unack: u32,
    /// `[server.grpc.tls]`.
    pub tls: GrpcTlsConfig,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10205)),
            max_message_bytes: 16 * 1024 * 1024,
            max_batch_events: 1000,
            client_expiry: Duration::from_secs(60),
            max_concurrent_streams: 1000,
            max_unack: 1000,
            tls: GrpcTlsConfig::default(),
        }
    }
}

/// `[server.grpc.tls]`: gRPC over TLS with rustls (the listener itself speaks TLS).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// Whether the gRPC listener speaks TLS.
    pub enabled: bool,
    /// PEM file with the certificate chain (leaf first).
    pub cert_file: String,
    /// PEM file with the private key.
    pub key_file: String,
}
