//! The event-store trait every EventMesh-rs storage backend implements, and its conformance kit.
//!
//! The interface is pull-based (see `docs/ARCHITECTURE.md` and the delivery rules): the runtime
//! core fetches events for a consumer cursor, and acknowledges, nacks or extends each delivery
//! through the opaque [`AckToken`] it came with. The store's own redelivery is only a *crash
//! lease*: an event fetched and neither acked nor nacked within the lease given to
//! [`EventStore::fetch`] becomes fetchable again. Windows, ack timeouts, attempt counting,
//! backoff, dead-lettering and request-reply belong to the runtime core, so they behave the same
//! on every store.
//!
//! A *cursor* is the store's position for one consumer:
//! * CLUSTERING: one cursor per (topic, group), shared by all members on all nodes;
//! * BROADCASTING: one cursor per (topic, group, member), see [`ConsumerRef::member`].
//!
//! Invariants every backend keeps (the [`testkit`] checks them):
//! * `publish` returns only once the batch is durable under the store's stated policy, and a
//!   batch is stored all or nothing;
//! * events of one partition are first delivered in offset order;
//! * an acked event is never delivered again to that cursor (unless the cursor is sought back);
//! * an event fetched and not acked comes back after a nack's delay or the lease's end, with its
//!   delivery count increased.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use eventmesh_core::{ErrorCode, EventMeshError, EventRecord, GroupName, Topic};

#[cfg(feature = "lease-cursor")]
pub mod lease_cursor;
pub mod names;
#[cfg(feature = "testkit")]
pub mod testkit;

/// The position of an event in a store: a partition and a sequence number within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    /// The partition (0 for stores that do not partition).
    pub partition: u32,
    /// The sequence number within the partition; increases by one per event in stores that can
    /// (the embedded store), and strictly increases in all stores.
    pub seq: u64,
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.seq)
    }
}

/// Which cursor an operation is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerRef {
    /// The topic.
    pub topic: Topic,
    /// The consumer group.
    pub group: GroupName,
    /// `None`: the group's shared cursor (CLUSTERING). `Some(member)`: that member's own cursor
    /// (BROADCASTING), keyed by the member's stable identity.
    pub member: Option<String>,
}

impl ConsumerRef {
    /// The shared cursor of a CLUSTERING group.
    pub fn clustering(topic: Topic, group: GroupName) -> Self {
        ConsumerRef {
            topic,
            group,
            member: None,
        }
    }

    /// One member's cursor of a BROADCASTING group.
    pub fn broadcasting(topic: Topic, group: GroupName, member: impl Into<String>) -> Self {
        ConsumerRef {
            topic,
            group,
            member: Some(member.into()),
        }
    }
}

impl fmt::Display for ConsumerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.member {
            Some(m) => write!(f, "{}/{}/{}", self.topic, self.group, m),
            None => write!(f, "{}/{}", self.topic, self.group),
        }
    }
}

/// Where a new cursor starts, or where [`EventStore::seek`] moves one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest retained event.
    Earliest,
    /// After the newest event: only events published from now on.
    Latest,
    /// This sequence number in every partition (clamped to what is retained).
    Offset(u64),
    /// The first event whose ingest time is at or after this Unix-millisecond time.
    Time(i64),
}

/// An opaque token naming one delivery; only the store that issued it can read it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AckToken(pub Bytes);

/// One event handed to the runtime by [`EventStore::fetch`].
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The token for ack, nack and lease extension.
    pub token: AckToken,
    /// Where the event is in the store.
    pub offset: Offset,
    /// How many times the store has handed out this event to this cursor, this time included.
    pub delivery_count: u32,
    /// The event.
    pub record: EventRecord,
}

/// What a store knows about one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic.
    pub topic: Topic,
    /// How many partitions it has.
    pub partitions: u32,
    /// Events currently retained (approximate for brokers that cannot count cheaply).
    pub retained_events: u64,
    /// Bytes currently retained, when the store knows.
    pub retained_bytes: Option<u64>,
}

/// A cursor's state, for admin views and tests.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CursorInfo {
    /// Per partition: the first sequence number not yet done (everything below it is acked).
    pub committed: Vec<(u32, u64)>,
    /// Events fetched and not yet acked (leased or waiting for redelivery).
    pub in_flight: u64,
    /// Events published and not yet done, when the store knows.
    pub backlog: Option<u64>,
}

/// Failures of an event store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The topic does not exist.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// The cursor does not exist; call [`EventStore::subscribe`] first.
    #[error("consumer cursor `{0}` does not exist; subscribe first")]
    UnknownConsumer(String),
    /// The ack token is malformed or was issued by another store.
    #[error("invalid ack token: {0}")]
    InvalidToken(String),
    /// The argument is invalid (mixed topics in a batch, an event over the size limit, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend cannot be reached or is not ready.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// An I/O error on a named file.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data is corrupt.
    #[error("corrupt data in {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The byte offset of the corrupt record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process (lock held)")]
    Locked(PathBuf),
    /// The store was closed.
    #[error("event store is closed")]
    Closed,
    /// A backend-specific failure.
    #[error("{0}")]
    Backend(String),
}

impl StorageError {
    /// The domain error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            StorageError::UnknownConsumer(_) => ErrorCode::NotSubscribed,
            StorageError::InvalidToken(_) | StorageError::Invalid(_) => ErrorCode::BadRequest,
            StorageError::Unavailable(_) | StorageError::Locked(_) => ErrorCode::StorageUnavailable,
            StorageError::Closed => ErrorCode::ShuttingDown,
            StorageError::Io { .. } | StorageError::Corrupt { .. } | StorageError::Backend(_) => {
                ErrorCode::StorageFailure
            }
        }
    }
}

impl From<StorageError> for EventMeshError {
    fn from(e: StorageError) -> Self {
        EventMeshError::new(e.code(), e.to_string())
    }
}

/// The result type of store operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// An event store. See the crate docs for the contract.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// A short name of the backend (`embedded`, `nats`, …) for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Creates a topic. Returns `false` when it already existed (not an error).
    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool>;

    /// Deletes a topic, its events and its cursors.
    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()>;

    /// Lists the topics.
    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>>;

    /// Appends a batch of events to `topic`, all or nothing, and returns once the batch is durable
    /// under the store's policy. Every record's `topic` must equal `topic`. Returns the offset of
    /// each record, in order.
    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>>;

    /// Creates the cursor if it does not exist, starting at `start`; an existing cursor keeps its
    /// position (a reconnecting member resumes). Returns once the position is recorded.
    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()>;

    /// Deletes a cursor and its in-flight state.
    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()>;

    /// Fetches up to `max` events for the cursor: first those due for redelivery, then new ones in
    /// offset order. Each is leased for `lease`. Waits up to `wait` when nothing is available, and
    /// returns an empty batch when the wait ends.
    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>>;

    /// Marks deliveries done. Acking an event already done is not an error.
    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()>;

    /// Gives a delivery back, to be fetched again after `delay`.
    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()>;

    /// Extends the lease of deliveries still being worked on to `lease` from now.
    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()>;

    /// Moves a cursor (replay or skip). In-flight deliveries of the cursor are forgotten.
    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()>;

    /// The cursor's state.
    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo>;

    /// Checks that the store can serve requests now.
    async fn health(&self) -> StorageResult<()>;

    /// Flushes everything and releases the store; later calls fail with [`StorageError::Closed`].
    async fn close(&self) -> StorageResult<()>;
}
