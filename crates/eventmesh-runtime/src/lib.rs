//! The EventMesh-rs runtime.
//!
//! * [`core`]: the transport-neutral delivery core: sessions, group membership, dispatch to
//!   members, in-flight tracking, ack timeouts, redelivery, dead-lettering, request-reply, rate
//!   limits and backpressure. Protocol servers are thin adapters onto it.
//! * [`meta`]: the metadata trait (key-value with watch and leases) for shared state, with an
//!   embedded implementation.
//! * [`server`]: the client protocol servers ([`server::tcp`]: the EventMesh TCP protocol).
//! * [`admin`]: the admin HTTP listener (`/health`, `/metrics`).
//! * [`lifecycle`]: the task registry and shutdown coordination.
//! * [`telemetry`]: metric names and the Prometheus recorder.
//! * [`runtime`]: builds and runs a whole node from an `eventmesh_config::Config`.

pub mod admin;
pub mod core;
pub mod lifecycle;
pub mod meta;
pub mod runtime;
pub mod server;
pub mod telemetry;

pub use runtime::{Runtime, RuntimeBuilder, RuntimeHandle, ServerError, ShutdownReport};
