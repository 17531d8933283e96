//! A RabbitMQ event store for EventMesh-rs (AMQP 0.9.1 through lapin).
//!
//! # Layout on the broker
//!
//! Every topic is a RabbitMQ **stream** (`x-queue-type=stream`) behind a durable fanout
//! **exchange** of the same name; each event is one persistent message whose body is the
//! versioned `EventRecord` encoding (AMQP `type` `eventmesh.record`, `message_id` the mesh id,
//! `timestamp` the ingest second). Offsets are the stream's own offsets (partition 0). Each
//! cursor (a CLUSTERING group's shared cursor, or one BROADCASTING member's) is a durable
//! **state queue** holding the cursor's latest snapshot (`x-max-length=1`, drop-head), which
//! expires when unused (`x-expires`: `member_expiry` for members, `group_expiry` for groups), plus
//! an exclusive **lock queue** while a store serves it. A catalog stream lists topics and
//! cursors, since AMQP cannot list queues. Names are in [`names`](crate::names) (module docs).
//!
//! # Why streams, and not a queue per group
//!
//! A classic or quorum queue per group gives broker-side competing consumers, but cannot replay,
//! has no offsets to report or seek to, and cannot say where a group is (`cursor_info`). Streams
//! (RabbitMQ 3.9+) can, so the store reads the topic stream from each cursor's position itself
//! and keeps the cursor's state in the broker. The conformance kit passes in full, replay by
//! offset and by time included (`x-stream-offset` with an offset or a timestamp, the time then
//! filtered to the millisecond on each record's ingest time).
//!
//! # Guarantees
//!
//! * **Publish** returns once the broker has *confirmed* every message (publisher confirms;
//!   for a stream that means written by a majority of its replicas; streams do not fsync, so a
//!   single-node broker keeps confirmed events across a broker crash but not across a power cut)
//!   and the store has read back the offset each one got. A batch is refused as a whole when
//!   invalid, but AMQP cannot store several messages atomically: a publish that fails part-way
//!   may have stored some of its events (a retry can then store them twice).
//! * **Crash lease and redelivery.** Leases and nack delays are kept by the store that serves
//!   the cursor (an event not acked within its lease, or nacked, comes back with its delivery
//!   count increased; `extend_lease` moves the lease). Nothing depends on AMQP channel leases:
//!   stream deliveries are acked to the broker as soon as they are read. When the serving store
//!   dies, its lock queue goes with its connection, and the next store to serve the cursor gets
//!   every event that was handed out and not acked at once, with a higher count.
//! * **Acks** are durable when `ack` returns: the cursor's snapshot is written (with a confirm) to
//!   its state queue first; concurrent acks share one write.
//! * **One server per cursor.** A cursor is served by the store holding its lock; another mesh
//!   node's store on the same cursor is a standby whose fetches return nothing until the holder
//!   goes away. CLUSTERING members on several nodes therefore all get events only from the node
//!   that holds the lock; use NATS JetStream for load sharing across nodes.
//! * **Reconnection.** A supervisor reconnects after a broker restart (see [`conn`]); while the
//!   connection is down every call fails at once with `StorageError::Unavailable`, and no call
//!   waits longer than `confirm_timeout` for the broker.
//!
//! Markers (empty messages of AMQP `type` `eventmesh.marker`) are appended to a topic stream to
//! find its end (`StartFrom::Latest`, seeks past the end); applications that bind their own
//! queues to a topic exchange see them and should skip them.

mod catalog;
mod conn;
mod error;
pub mod names;
mod options;
mod serve;
mod store;
mod stream;

pub use error::RabbitError;
pub use options::RabbitOptions;
pub use store::RabbitStore;
