//! A Kafka event store for EventMesh-rs (docs below are completed with the implementation).

mod cursor;
mod error;
mod groups;
pub mod names;
mod options;
mod part;
mod store;

pub use error::KafkaStoreError;
pub use options::KafkaOptions;
pub use store::KafkaStore;
