//! A NATS JetStream event store for EventMesh-rs (the default for multi-node meshes).
//!
//! Placeholder crate docs; see the README.

mod api;
mod consumer;
mod error;
mod lease;
pub mod names;
mod options;
mod store;

pub use error::NatsError;
pub use options::NatsOptions;
pub use store::NatsStore;
