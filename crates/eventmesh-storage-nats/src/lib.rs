//! A NATS JetStream event store for EventMesh-rs: the store for meshes of several nodes.
//!
//! [`NatsStore`] implements the pull-based [`EventStore`](eventmesh_storage::EventStore) over
//! JetStream with the `async-nats` client. Every node of a mesh points at the same NATS system
//! (`nats://h1:4222,h2:4222,h3:4222`), and the nodes share topics, group cursors and leases
//! through it: the nodes themselves hold no event state.
//!
//! # Mapping
//!
//! | mesh | JetStream |
//! | --- | --- |
//! | topic | a stream `P_<topic>` with the one subject `P.<topic>` (file storage, `replicas` copies, limits retention, no size or age limit, duplicate window `duplicate_window`) |
//! | event | one message: the versioned binary [`EventRecord`](eventmesh_core::EventRecord) encoding, header `Nats-Msg-Id` = the mesh id |
//! | offset | partition 0, the stream sequence number |
//! | CLUSTERING cursor | a durable pull consumer `C__<group>`, explicit acks, `max_deliver` unlimited |
//! | BROADCASTING cursor | a durable pull consumer `B__<group>__<member>` per member, with `inactive_threshold = member_expiry`: the server removes it when the member stops fetching for that long |
//! | delivery count | the message's delivered count (`$JS.ACK` subject) |
//! | ack token | the delivery's `$JS.ACK.…` subject (checked against the cursor's consumer) |
//!
//! `P` is the `stream_prefix` option. Topic, group and member names are encoded so that NATS
//! accepts them (it refuses `.`, `*`, `>`, whitespace and path separators in names): letters,
//! digits and `-` stay, every other byte becomes `_XX` (hex), so `orders.created` is stream
//! `EVENTMESH_orders_2Ecreated` on subject `EVENTMESH.orders_2Ecreated`. The encoding is
//! reversible ([`names::decode`]); names over 200 bytes encoded are replaced by a hash, and the
//! stream's description keeps the topic. The [`names`] module has the details.
//!
//! # Guarantees and how they are met
//!
//! * **Publish** returns once JetStream acknowledged every event of the batch (stored on the
//!   stream's replicas). The batch is checked first (all records for this topic, each within the
//!   server's `max_payload`) and refused as a whole if not. JetStream (2.9) has no atomic
//!   multi-message publish: if the connection fails in the middle of a batch, its first events
//!   may be stored while the call fails. Each event carries its mesh id as `Nats-Msg-Id`, so the
//!   same batch retried within the duplicate window is stored once.
//! * **Order**: one stream per topic, one partition; offsets strictly increase.
//! * **Fetch** sends explicit pull requests that never outlive it: what is available at once
//!   (`no_wait`), else a wait for the first event (`batch: 1, expires: wait`), then what came
//!   with it. A consumer is checked to exist once per store (JetStream does not answer a pull on
//!   a missing consumer).
//!   Due redeliveries (nacked or lease ended) come before new events: JetStream serves its
//!   redelivery queue first.
//! * **Leases.** The consumers' `AckWait` is the crash lease ([`NatsOptions::ack_wait`]; the
//!   runtime sets it to its `crash_lease`, the lease it fetches with). While the store runs, a
//!   lease keeper makes each delivery's lease exactly the one its fetch asked for: a shorter
//!   lease ends with a `-NAK` the keeper sends, a longer one is kept alive with `+WPI` (in
//!   progress). If the node dies, the server redelivers after `AckWait`.
//!   nats-server 2.9 can send a second copy of a delivery whose lease still runs (with a count
//!   that does not go up); the store drops such copies (`held.rs`), so a lease is never broken
//!   by the server.
//! * **Ack** is a confirmed ack (`+ACK` sent as a request; the server answers once it recorded
//!   it), so an acked event is not handed out again once `ack` returned. **Nack** is `-NAK` with
//!   the delay (`{"delay": ns}`); **extend_lease** is `+WPI`.
//! * **Replay**: `StartFrom` becomes the consumer's deliver policy (`all`, `new`,
//!   `by_start_sequence`, `by_start_time`). JetStream cannot move a consumer, so
//!   [`seek`](eventmesh_storage::EventStore::seek) deletes it and makes it again under the same
//!   name; a fetch of another node at that moment may fail with `UnknownConsumer` once. Time
//!   seeks use the time JetStream stored each event (a few milliseconds after the mesh accepted
//!   it; on another machine, its clock).
//! * **Subscribe** of an existing cursor keeps its position (a reconnecting member resumes).
//!
//! # Broker outages
//!
//! The client reconnects by itself, for ever, with pauses growing to `max_reconnect_backoff`,
//! to any server of the URL (and those the cluster announces). Durable consumers and the
//! stream's data live on the servers, so fetches work again once connected; acks sent for
//! deliveries made before the outage still count. While the connection is down every call fails
//! at once with [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable)
//! naming the (masked) URL; a publish whose acknowledgement does not come within
//! `request_timeout` fails the same way (its events may or may not be stored: at least once,
//! never lost once acknowledged). JetStream file storage writes each acknowledged message to its
//! file before the acknowledgement, so a killed (not power-cut) single server keeps it; with
//! `replicas = 3` an acknowledged event survives losing a server.
//!
//! # Server requirements
//!
//! nats-server 2.9 or later with JetStream (`-js`). Events up to the mesh's `max_event_bytes`
//! (4 MiB by default) need `max_payload` raised to at least that (the server's default is 1 MiB;
//! larger events are refused with `Invalid`).

mod api;
mod consumer;
mod error;
mod held;
mod lease;
pub mod names;
mod options;
mod store;

pub use error::NatsError;
pub use options::NatsOptions;
pub use store::NatsStore;
