//! Client protocol servers: thin adapters that translate wire frames into calls on the delivery
//! [`core`](crate::core) and pushes back into frames. One folder per transport, each shaped the
//! same: `mod.rs` with `bind` and `run(listener, ctx, shutdown)`, `listener.rs` (the accept
//! loop), `connection.rs` (framed I/O), and the protocol's session state machine.
//!
//! * [`tcp`]: the EventMesh TCP protocol (Apache EventMesh Java v1.9+ and pre-1.9 clients).
//! * [`grpc`]: the EventMesh gRPC protocol (v1.9+ CloudEvent services and the legacy ones).
//! * [`http`]: the EventMesh HTTP protocol, the CloudEvents HTTP binding and webhook pushes.

pub mod grpc;
pub mod http;
pub mod tcp;
