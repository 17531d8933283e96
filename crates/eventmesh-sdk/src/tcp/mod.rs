//! The TCP client: [`Client`] and what it hands to subscription handlers.
//!
//! * `connection`: framed IO over tokio with the protocol crate's codec, and `seq` generation;
//! * `session`: the connection task (one per client): request/answer matching by `seq`,
//!   heartbeats, push routing, goodbye;
//! * `client`: the cloneable handle;
//! * `publisher`: publish, broadcast, request-reply;
//! * `subscriber`: subscriptions, handlers and acks.

mod client;
mod connection;
mod publisher;
pub(crate) mod session;
mod subscriber;

pub use client::Client;
pub use connection::{SEQ_LEN, new_seq};
pub use publisher::TTL_EXTENSION;
pub use session::ConnectionState;
pub use subscriber::{Delivery, DeliveryKind, Handler, HandlerError, IntoReply};
