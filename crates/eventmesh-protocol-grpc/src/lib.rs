//! The EventMesh gRPC protocol.
//!
//! * [`v1`]: package `org.apache.eventmesh.cloudevents.v1` (Apache EventMesh v1.9+): the
//!   `CloudEvent` message and the `PublisherService`, `ConsumerService` and `HeartbeatService`.
//! * [`legacy`]: package `eventmesh.common.protocol.grpc` (`eventmesh-client.proto`, v1.4–v1.8,
//!   still spoken by the Go SDK): `SimpleMessage`, `Subscription`, `Heartbeat`, … Its fully
//!   qualified service names differ from the v1 ones, so one server serves both.
//! * [`keys`], [`status`]: the attribute keys and string status codes of the protocol.
//! * [`convert`]: EventMesh CloudEvents ↔ [`eventmesh_core::CloudEvent`], and the
//!   subscription / heartbeat payloads.
//!
//! The code is generated at build time from `proto/` by `protox` (a protobuf compiler in Rust,
//! so no system `protoc` is needed) and `tonic-prost-build`. Features: `server` (the service
//! traits) and `client` (the generated clients, with tonic's transport).
//!
//! Invariants worth naming:
//! * the `.proto` files were written from the protocol reference; names and tags are the wire
//!   contract shared with the Apache EventMesh SDKs and must never be renumbered;
//! * conversion never panics on input: every malformed message maps to a [`convert::ConvertError`]
//!   that names the problem.

pub mod convert;
pub mod keys;
pub mod status;

/// Package `org.apache.eventmesh.cloudevents.v1` (Apache EventMesh v1.9+).
#[allow(
    missing_docs,
    non_camel_case_types,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
pub mod v1 {
    include!(concat!(
        env!("OUT_DIR"),
        "/org.apache.eventmesh.cloudevents.v1.rs"
    ));
}

/// Package `eventmesh.common.protocol.grpc` (`eventmesh-client.proto`, Apache EventMesh
/// v1.4–v1.8 and the Go SDK).
#[allow(
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
pub mod legacy {
    include!(concat!(
        env!("OUT_DIR"),
        "/eventmesh.common.protocol.grpc.rs"
    ));
}

pub use prost;
pub use prost_types;
pub use tonic;
