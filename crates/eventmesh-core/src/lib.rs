//! Domain types of EventMesh-rs.
//!
//! Everything here is transport-neutral: the wire types of each protocol live in
//! `eventmesh-protocol` and are converted to these types at the edge of each server.
//!
//! * [`event`]: the CloudEvents 1.0 event model ([`CloudEvent`]).
//! * [`record`]: the one versioned stored-record format ([`EventRecord`]) every event store keeps,
//!   with the mesh-assigned [`EventId`] (client ids collide, so nothing keys on them).
//! * [`topic`]: topics (with a tenant slot) and the single topic-matching function.
//! * [`subscription`]: consumer groups, subscription mode and type.
//! * [`session`]: what the core knows about a connected client (principal, `traceparent`).
//! * [`redact`]: URL secrets masked for logs ([`redact::mask_url`]).
//! * [`error`]: the one internal error-code set and its mapping table per wire protocol.
//!
//! Invariants worth naming: a [`Topic`] or [`GroupName`] that exists has been validated; an
//! [`EventRecord`] decoded from bytes has passed its version and bounds checks.

pub mod error;
pub mod event;
pub mod id;
pub mod record;
pub mod redact;
pub mod session;
pub mod subscription;
pub mod topic;

pub use error::{ErrorCode, EventMeshError};
pub use event::{CloudEvent, EventValidationError, ExtensionValue, SpecVersion};
pub use id::EventId;
pub use record::{EventRecord, RecordDecodeError};
pub use session::{Principal, SessionId, SessionMeta, Transport};
pub use subscription::{GroupName, Subscription, SubscriptionMode, SubscriptionType};
pub use topic::{Topic, TopicError, TopicPattern};

/// The default limit on the encoded size of one event (4 MiB), checked at every entry point.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
