//! The gRPC client of the EventMesh gRPC protocol (the v1.9+ CloudEvent services, package
//! `org.apache.eventmesh.cloudevents.v1`), for EventMesh-rs and Apache EventMesh runtimes.
//!
//! * [`GrpcPublisher`]: `publish`, `publish_batch`, the one-way forms, `request` (request-reply)
//!   and `heartbeat`.
//! * [`GrpcSubscriber`]: one `subscribeStream` per subscriber with a handler (and, with
//!   [`GrpcSubscriber::start_filtered`], a CloudEvents SQL filter); heartbeats every
//!   `heartbeat_interval`; a heartbeat answered `statuscode` "30" (the server forgot this
//!   client, e.g. after a restart) makes it subscribe again; a broken stream is reopened with
//!   backoff.
//!
//! ```no_run
//! use eventmesh_sdk::grpc::{GrpcConfig, GrpcPublisher, GrpcSubscriber};
//! use eventmesh_sdk::{SubscriptionMode, SubscriptionType, text_event};
//!
//! # async fn demo() -> Result<(), eventmesh_sdk::grpc::GrpcError> {
//! let config = GrpcConfig::new("http://127.0.0.1:10205", "demo-group");
//! let subscriber = GrpcSubscriber::start(
//!     config.clone(),
//!     vec![("demo-topic".into(), SubscriptionMode::Clustering, SubscriptionType::Async)],
//!     |delivery| async move {
//!         println!("{:?}", delivery.event.data);
//!         Ok(None)
//!     },
//! )
//! .await?;
//! let publisher = GrpcPublisher::connect(config).await?;
//! publisher.publish("demo-topic", text_event("hello")).await?;
//! subscriber.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Acknowledgements
//!
//! The subscriber asks for explicit acknowledgements (`ackmode = explicit`): each event is
//! acked after its handler returned `Ok` (a SYNC request's reply is sent first), and refused
//! (`nack`, redelivered after the server's backoff) when the handler fails. An event whose ack
//! never arrives (the subscriber died) is redelivered by the server. Against a runtime that
//! does not know acknowledgements the acks are ignored, and an event counts as taken once it
//! was written to the stream.

mod publisher;
mod subscriber;

use std::collections::BTreeMap;
use std::time::Duration;

use eventmesh_protocol_grpc::convert;
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use publisher::GrpcPublisher;
pub use subscriber::{GrpcDelivery, GrpcSubscriber};

/// The default request timeout of unary calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default heartbeat interval (Apache EventMesh SDKs use 20 to 30 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// The `url` a stream subscriber lists in its heartbeats.
pub const STREAM_URL: &str = "grpc_stream";

/// Settings of a gRPC publisher or subscriber.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    /// `http://HOST:PORT` (or `https://` with [`GrpcConfig::tls_ca_pem`]).
    pub endpoint: String,
    /// The producer group of publishes.
    pub producer_group: String,
    /// The consumer group of subscriptions.
    pub consumer_group: String,
    /// `env` attribute.
    pub env: String,
    /// `idc` attribute.
    pub idc: String,
    /// `sys` attribute.
    pub sys: String,
    /// `ip` attribute (this client's address as the server should know it).
    pub ip: String,
    /// `pid` attribute.
    pub pid: u32,
    /// `username` attribute.
    pub username: String,
    /// `passwd` attribute.
    pub password: String,
    /// `language` attribute.
    pub language: String,
    /// Unary call timeout (requests wait for their ttl plus this).
    pub timeout: Duration,
    /// Heartbeat interval of subscribers.
    pub heartbeat_interval: Duration,
    /// Un-acked events a subscriber holds at most (`unack`).
    pub window: usize,
    /// The time-to-live of published events, in milliseconds (`ttl`; default 4000).
    pub ttl_ms: u64,
    /// PEM CA certificate to trust for `https://` endpoints.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The server name to check in its certificate (default: the endpoint's host).
    pub tls_domain: Option<String>,
}

impl GrpcConfig {
    /// Settings for `endpoint` with `group` as both the producer and the consumer group.
    pub fn new(endpoint: impl Into<String>, group: impl Into<String>) -> Self {
        let group = group.into();
        GrpcConfig {
            endpoint: endpoint.into(),
            producer_group: group.clone(),
            consumer_group: group,
            env: "env".to_owned(),
            idc: "idc".to_owned(),
            sys: "eventmesh-sdk-rust".to_owned(),
            ip: "127.0.0.1".to_owned(),
            pid: std::process::id(),
            username: "eventmesh".to_owned(),
            password: "eventmesh".to_owned(),
            language: "RUST".to_owned(),
            timeout: DEFAULT_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            window: 100,
            ttl_ms: 4000,
            tls_ca_pem: None,
            tls_domain: None,
        }
    }

    /// The identity attributes every message carries.
    pub(crate) fn identity(&self) -> BTreeMap<String, v1::CloudEventAttributeValue> {
        use convert::string_value as s;
        [
            (keys::ENV, s(self.env.clone())),
            (keys::IDC, s(self.idc.clone())),
            (keys::SYS, s(self.sys.clone())),
            (keys::IP, s(self.ip.clone())),
            (keys::PID, s(self.pid.to_string())),
            (keys::USERNAME, s(self.username.clone())),
            (keys::PASSWD, s(self.password.clone())),
            (keys::LANGUAGE, s(self.language.clone())),
            (keys::PROTOCOL_TYPE, s("cloudevents")),
            (keys::PROTOCOL_VERSION, s("1.0")),
            (keys::PROTOCOL_DESC, s(keys::PROTOCOL_DESC_GRPC_CLOUD_EVENT)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Opens a channel to the endpoint.
    pub(crate) async fn connect(&self) -> Result<Channel, GrpcError> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| GrpcError::Config(format!("endpoint `{}`: {e}", self.endpoint)))?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true);
        if let Some(ca) = &self.tls_ca_pem {
            // tonic's rustls takes the process-wide crypto provider, which rustls cannot pick by
            // itself when the program links two (ring and aws-lc-rs): choose ring unless the
            // program installed one already.
            let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some(d) = &self.tls_domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| GrpcError::Config(format!("tls: {e}")))?;
        }
        endpoint
            .connect()
            .await
            .map_err(|e| GrpcError::Connect(format!("{}: {e}", self.endpoint)))
    }
}

/// What went wrong with a gRPC client operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcError {
    /// The settings are invalid.
    #[error("invalid gRPC client settings: {0}")]
    Config(String),
    /// The channel could not be opened.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The call failed at the gRPC level (transport, `RESOURCE_EXHAUSTED`, …).
    #[error("gRPC call failed: {0}")]
    Rpc(#[from] tonic::Status),
    /// The server answered with a non-zero `statuscode`.
    #[error("server refused with statuscode {code}: {message}")]
    Server {
        /// The string status code (see [`StatusCode`]).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server's answer could not be read.
    #[error("unreadable answer: {0}")]
    Answer(String),
    /// The subscriber is closed.
    #[error("the subscriber is closed")]
    Closed,
}

impl GrpcError {
    /// The status code, when the server refused.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GrpcError::Server { code, .. } => StatusCode::parse(code),
            _ => None,
        }
    }
}

/// `Ok` for an answer with `statuscode` "0"; the server's refusal otherwise.
pub(crate) fn check(answer: &v1::CloudEvent) -> Result<(), GrpcError> {
    match convert::response_status(answer) {
        Some((code, _)) if code == StatusCode::Success.code() => Ok(()),
        Some((code, message)) => Err(GrpcError::Server { code, message }),
        None => Err(GrpcError::Answer(
            "the answer carries no statuscode".to_owned(),
        )),
    }
}
