//! A Kafka event store for EventMesh-rs: topics are Kafka topics, cursors are consumer groups.
//!
//! [`KafkaStore`] implements the pull-based [`EventStore`](eventmesh_storage::EventStore) with
//! the `rdkafka` client (librdkafka 2.12, bundled and built with the crate). Every node of a mesh
//! points at the same Kafka cluster (`kafka://b1:9092,b2:9092`); the events and the committed
//! positions live in Kafka.
//!
//! # Mapping
//!
//! | mesh | Kafka |
//! | --- | --- |
//! | topic | a topic `<topic_prefix><enc topic>` with `partitions` partitions and `replication_factor` copies ([`names`]) |
//! | event | one record: the versioned binary [`EventRecord`](eventmesh_core::EventRecord) encoding as the value, the event's partition key as the key (murmur2, as the Java client), its ingest time as the record timestamp |
//! | offset | (partition, Kafka offset) |
//! | CLUSTERING cursor | its own consumer group `<group_prefix><enc group>@<kafka topic>`, shared by every node: Kafka balances the partitions between the nodes |
//! | BROADCASTING cursor | its own consumer group `<group_prefix><enc group>+<enc member>@<kafka topic>` |
//! | position | the group's committed offset per partition: the lowest event not yet done |
//! | acks out of order, delivery counts | the committed offset's metadata string (see [`part`](crate) module docs); with brokers that do not give it back, also a state topic per cursor (`state` module docs) |
//! | ack token | (incarnation, cursor, partition, offset, delivery) in 26 bytes |
//!
//! # Guarantees and how they are met
//!
//! * **Publish** checks the batch (every record for this topic, the topic known to exist) and
//!   returns once every record was acknowledged with `acks=all` by the partition leaders
//!   (idempotent producer by default). Records of one partition are stored in batch order.
//!   Kafka has no atomic multi-partition append outside transactions: if the brokers fail in
//!   the middle of a batch, its first records may be stored while the call fails
//!   (`Unavailable` after at most `publish_timeout`: at least once, never lost once
//!   acknowledged).
//! * **Fetch** serves, in this order, the held events whose lease or nack delay has ended
//!   (delivery count + 1), then new events from the cursor's consumer, in offset order per
//!   partition. A node consumes only the partitions the group assigned to it, through one
//!   consumer per cursor however many fetches start at once (a second one would join the group
//!   as another member and start a rebalance).
//! * **Ack** marks events done, moves the committed offset of each partition to its lowest
//!   event not yet done, and returns once Kafka recorded the commit (a synchronous
//!   `OffsetCommit`). Events acked above that floor, and the delivery counts of events handed
//!   out, go into the commit's metadata: a node that takes the partition over (after a crash, a
//!   restart, or a rebalance) skips the acked ones and counts the deliveries on.
//! * **Leases and nacks** are kept by the node that fetched the event, in memory (the runtime
//!   bounds what it holds). If the node dies, the partition goes to another node after
//!   `session_timeout` and everything from the committed offset on is delivered again, with
//!   its delivery count increased: at least once.
//! * **Subscribe** of a new cursor commits its start position for every partition as a group
//!   without members ("simple" commit); an existing cursor (one with committed offsets) keeps
//!   its position.
//! * **Seek** leaves the group on this node, commits the new position and joins again at the
//!   next fetch: Kafka moves a group's offsets only while no member consumes, so a seek fails
//!   while nodes other than this one consume the cursor. Time seeks use `ListOffsets` with the
//!   record timestamps, which are the events' ingest times.
//! * **Unsubscribe** deletes the cursor's group; **delete_topic** deletes the topic and the
//!   groups of its cursors.
//!
//! # Broker outages
//!
//! librdkafka reconnects by itself (pauses up to one second). A publish that the brokers do not
//! acknowledge within `publish_timeout` fails with
//! [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable) naming Kafka and
//! the brokers; so do metadata, offset and commit calls after `request_timeout`. Fetches during
//! an outage return what is due for redelivery, or nothing. Metadata requests, which only
//! read, are sent again when a broker drops the connection, until `request_timeout` is spent.

mod cursor;
mod error;
mod groups;
pub mod names;
mod options;
mod part;
mod state;
mod store;

pub use error::KafkaStoreError;
pub use options::{CursorState, KafkaOptions};
pub use store::KafkaStore;
