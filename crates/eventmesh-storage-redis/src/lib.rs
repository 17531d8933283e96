//! An EventMesh-rs event store on Redis Streams (the `redis` storage backend).
//!
//! Implements the pull-based [`EventStore`](eventmesh_storage::EventStore) trait on one Redis
//! primary (7.0 or newer; not Redis Cluster) with the `redis` crate: a connection manager that
//! reconnects by itself, plus one connection per fetch that is parked in a blocking read.
//!
//! # Mapping
//!
//! * A topic is a stream, `<prefix>:stream:<topic>`, and a member of the set `<prefix>:topics`
//!   (the set says which topics exist). An event is one entry whose field `r` holds the
//!   versioned `EventRecord` encoding.
//! * A publish is one Lua script that checks the topic and `XADD`s the whole batch: it is stored
//!   all or nothing, and answered only after every `XADD` returned. Its offsets are the entries'
//!   ids packed into one number (`ms << 22 | seq`, partition 0).
//! * A CLUSTERING cursor is the consumer group `c~<group>` on the stream, shared by every mesh node;
//!   a BROADCASTING member's cursor is its own group `b~<group>~<member>`. Member groups unused for
//!   `member_expiry` (default 1 h) are deleted by a periodic task of every store.
//! * Fetch is one script: due redeliveries first (`XAUTOCLAIM`, which counts the delivery),
//!   then new entries (`XREADGROUP … >`), each leased for the fetch's lease. When nothing is
//!   there the fetch waits in a blocking `XREAD` for the next entry.
//! * Ack is `XACK`. Replay and seek re-create the group at the new position (`XRANGE` finds the
//!   position of an offset; stream ids carry their append time in milliseconds, so a time is an
//!   id: a time seek finds the entries Redis appended at or after that millisecond, which for
//!   the mesh's publishes is the records' ingest time plus the publish latency). `cursor_info`
//!   reads `XINFO GROUPS` and the `XPENDING` summary.
//!
//! | key (prefix `eventmesh` by default) | type | holds |
//! | --- | --- | --- |
//! | `<prefix>:topics` | set | the canonical names of the topics that exist |
//! | `<prefix>:stream:<topic>` | stream | the topic's events |
//! | `<prefix>:max_lease` | string | the lease horizon `H` (ms) every node on the prefix uses |
//! | `<prefix>:members` | sorted set | BROADCASTING member groups (`<topic>\n<group>`) by last use (Unix ms) |
//!
//! Topic names (`name` or `tenant~name`) are used in keys as they are: Redis keys are
//! binary-safe. `~` is not allowed in group names, so `c~…` and `b~…~…` never collide and the
//! member identity (which may hold anything) is the unambiguous rest of the name.
//!
//! # Leases, nack delays and the crash lease
//!
//! Everything about a delivery lives in the stream's pending-entry list (PEL), so it survives a
//! mesh node dying and is shared by every node. With `H` = `max_lease` (default 24 h), an entry
//! leased until time `T` is given the delivery time `T − H` (`XCLAIM … TIME (T − H) JUSTID`,
//! which leaves the delivery count alone). Its idle time then reaches `H` exactly at `T`, and
//! `XAUTOCLAIM` with min-idle-time `H` hands it out again, counting the delivery. So:
//!
//! * the crash lease is `XAUTOCLAIM`'s min-idle-time: an entry fetched by a node that died comes
//!   back when its lease ends;
//! * a nack with delay `d` sets `T = now + d` (a zero delay makes it due at once);
//! * extending a lease sets `T = now + lease`;
//! * the delivery count is the PEL's (`XPENDING`), kept across restarts of Redis and of the mesh.
//!
//! Redis refuses delivery times in the future, which is why the deadline is written as a past
//! time offset by `H` rather than as a future one. Leases and delays longer than `H` are cut to
//! it. `H` must be the same on every node sharing a prefix: the first store to open writes its
//! `max_lease` to `<prefix>:max_lease`, and a store configured otherwise uses that value and
//! logs a warning. Times come from Redis's clock (`TIME` inside the scripts), so nodes with skewed clocks
//! agree. Monitoring tools show such an entry's idle time as `H −` its remaining lease. A nack
//! or extension names the delivery (id and count) it is about: one for an older delivery of the
//! same event is ignored. Fetches parked on this node wake for nacks made on this node; ones
//! made on other nodes are found within `fetch_block` (default 250 ms).
//!
//! # Durability
//!
//! Redis writes a publish to memory and, with `appendonly yes`, to its append-only file. Only
//! with **`appendfsync always`** does Redis fsync that file before it answers, so that an
//! acknowledged publish survives Redis (or the machine) crashing; with the Redis default
//! `everysec` up to about a second of acknowledged publishes can be lost, and with `appendonly
//! no` everything since the last snapshot. The store reads these settings when it opens and logs
//! a warning unless they are `yes`/`always`. Use `maxmemory-policy noeviction`: an evicted stream
//! is a lost topic. A publish that times out (`request_timeout`) may still have been stored.
//!
//! # Outages
//!
//! While Redis is unreachable every call fails within `request_timeout` (default 5 s) with
//! `StorageError::Unavailable`, naming the URL with its password masked; the connection manager
//! reconnects in the background, and once Redis is back (with its AOF) calls succeed again,
//! leases and positions intact.

mod conn;
mod cursor;
mod error;
mod fetch;
mod janitor;
mod keys;
mod options;
mod reply;
mod scripts;
mod store;

pub use options::RedisOptions;
pub use store::RedisStore;
