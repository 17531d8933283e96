#![recursion_limit = "512"]
//! A RocketMQ event store for EventMesh-rs, over the `rocketmq-client-rust` 1.0 client.
//!
//! [`RocketStore`] implements the pull-based [`EventStore`](eventmesh_storage::EventStore) on a
//! RocketMQ cluster (tested against the Rust broker `rocketmq-rust` 1.0.0; see `docs/stores.md`
//! for where it differs from Apache RocketMQ).
//!
//! # Mapping
//!
//! | mesh | RocketMQ |
//! | --- | --- |
//! | topic `T` | topic `P_<enc T>` with one queue (partition 0), made on the first master broker of `cluster` |
//! | event | one message: body = the versioned [`EventRecord`](eventmesh_core::EventRecord) encoding, key = the mesh id |
//! | offset | partition 0, the queue offset |
//! | CLUSTERING cursor | consumer group `P_<enc G>`: its consumer offset on the topic is the committed position |
//! | BROADCASTING cursor | consumer group `P_<enc G>_<enc M>` per member (offsets managed per member) |
//! | cursor state | snapshots on the state topic `P-STATE_<enc T>`; the group's consumer offset there points at the latest |
//!
//! Names are encoded reversibly (module [`names`]).
//!
//! # Guarantees and how they are met
//!
//! * **Publish** goes through a pool of producers, each on its own client instance and
//!   connection (one producer sends one request at a time), and returns once the broker
//!   answered `SEND_OK` for every event (stored under the
//!   broker's flush policy: `ASYNC_FLUSH` by default, so an acknowledged event survives a
//!   broker process crash but not a power cut unless the broker uses `SYNC_FLUSH`). A batch that
//!   fits in one broker message (`max_message_bytes`) is sent as one RocketMQ batch message,
//!   stored at consecutive offsets; a larger batch is sent in several, so a failure part-way may
//!   have stored its first events.
//! * **Reading.** The store reads the topic's queue itself from the cursor's position with
//!   RocketMQ pull requests (polling every 50 ms while a fetch waits: rocketmq-rust holds
//!   suspended pulls past their suspend time), and hands
//!   events out in offset order, due redeliveries first.
//! * **Leases, nacks, delivery counts** are kept by the store that serves the cursor, exactly as
//!   the trait asks: an event not acked within its lease, or nacked, comes back after the lease
//!   or delay with its count + 1; `extend_lease` moves the lease. RocketMQ's own retry topics and
//!   consume status are not used.
//! * **Crash lease.** Every change of a cursor (events handed out with their counts, acks,
//!   seeks) is written as a snapshot before the call returns (concurrent callers share one
//!   write). When the store serving a cursor dies, the next store to load it gets every event
//!   that was handed out and not acked at once, with a higher count, and never an acked one.
//! * **Acks** commit the group's consumer offset up to the lowest event not yet done (so
//!   RocketMQ's tools show the group's progress); events acked above it are remembered in the
//!   snapshot.
//! * **Replay**: [`seek`](eventmesh_storage::EventStore::seek) resets the cursor to the queue's
//!   lowest offset (`Earliest`), its end (`Latest`), an offset, or the first event stored at or
//!   after a time (the broker's time index, then each record's ingest time to the millisecond).
//! * **One server per cursor.** Of all the mesh nodes on a cursor, the one whose store holds
//!   the broker's lock of the cursor's queue for its group (`LOCK_BATCH_MQ`, RocketMQ's
//!   orderly-consumer lock, renewed every [`RocketOptions::lock_renew`]) serves it; the others'
//!   fetches return nothing and their acks fail with `Unavailable`. The lock goes to another
//!   node at once when the serving store closes or unsubscribes, and after the broker's
//!   `lockMaxLiveTime` (60 s by default) when it dies. A store that finds its lock taken (it was
//!   paused for longer than that) drops its copy of the cursor.
//!
//! # Broker outages
//!
//! Every call is bounded by `request_timeout`; while the name servers or the broker cannot be
//! reached, calls fail with [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable)
//! naming RocketMQ. The client reconnects by itself.
//!
//! # DeFiBus
//!
//! With [`DefibusOptions::enabled`] the store writes the request-reply properties a DeFiBus
//! broker reads and creates `<cluster>-rr-reply-topic` (module docs of `message`).
//! **Untested: no DeFiBus broker was available.**

mod client;
mod error;
mod message;
pub mod names;
mod options;
mod serve;
mod store;
#[cfg(feature = "test-broker")]
pub mod test_broker;

pub use error::RocketError;
pub use options::{DefibusOptions, RocketOptions};
pub use store::RocketStore;
