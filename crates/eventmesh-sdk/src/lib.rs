//! The Rust client of EventMesh-rs (and of Apache EventMesh runtimes) over the EventMesh TCP
//! protocol.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventmesh_sdk::{Client, ClientConfig, Purpose, SubscriptionMode, SubscriptionType};
//!
//! # async fn demo() -> Result<(), eventmesh_sdk::Error> {
//! // A subscriber: the handler's Ok acknowledges the event; an Err leaves it to be redelivered.
//! let config = ClientConfig::builder("127.0.0.1:10000", "demo-group")
//!     .purpose(Purpose::Sub)
//!     .build()?;
//! let subscriber = Client::connect(config).await?;
//! subscriber
//!     .subscribe("demo-topic", SubscriptionMode::Clustering, SubscriptionType::Async,
//!         |delivery: eventmesh_sdk::Delivery| async move {
//!             println!("{:?}", delivery.event.data);
//!             Ok(())
//!         })
//!     .await?;
//!
//! // A publisher.
//! let publisher = Client::connect(ClientConfig::builder("127.0.0.1:10000", "demo-pub").build()?).await?;
//! publisher.publish("demo-topic", eventmesh_sdk::text_event("hello")).await?;
//!
//! // Request-reply: a SYNC subscriber's handler returns the reply event.
//! let reply = publisher
//!     .request("demo-rpc", eventmesh_sdk::text_event("ping"), Duration::from_secs(3))
//!     .await?;
//! # let _ = reply;
//! publisher.close().await;
//! subscriber.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! Modelled on `async-nats`: a [`Client`] is a cheap cloneable handle over **one connection task
//! per client**, which owns the socket and talks to the handles over bounded channels. The task:
//!
//! * greets the server (`HELLO_REQUEST` with the configured user agent), matches every answer
//!   to its request by `seq` (ten random digits `0`–`8`, as the Java SDK), and sends a heartbeat
//!   every `heartbeat_interval`; a heartbeat left unanswered for a whole interval counts as a
//!   lost connection;
//! * routes pushed events to the worker task of their subscription; the worker calls the
//!   handler and acknowledges after it returns `Ok` (SYNC subscriptions answer
//!   `REQUEST_TO_CLIENT` with the handler's reply as `RESPONSE_TO_SERVER`, then ack);
//! * reconnects with backoff when the connection is lost or the server says goodbye, and
//!   re-sends HELLO, SUBSCRIBE (every topic) and LISTEN; a `REDIRECT_TO_CLIENT` makes it
//!   reconnect to the address given at once (see [`ReconnectPolicy`]);
//! * on [`Client::close`] or when the last handle is dropped, sends `CLIENT_GOODBYE_REQUEST`,
//!   and ends, together with every handler task.
//!
//! Events are [`CloudEvent`]s; on the wire they travel as `eventmeshmessage` bodies (the
//! default) or as structured CloudEvents JSON ([`Protocol::CloudEvents`]), converted by
//! `eventmesh-protocol` (the SDK holds no wire logic of its own).
//!
//! # Invariants worth naming
//!
//! * Every channel is bounded. Calls waiting for answers are capped by `max_in_flight`; a push
//!   that finds its subscription's buffer full is dropped **without ack**, so the runtime
//!   redelivers it; nothing is lost and memory stays bounded.
//! * An ack is only sent on the connection its push arrived on: after a reconnect, acks of
//!   pushes from the old connection are dropped (the runtime has already redelivered them).
//! * Errors are typed ([`Error`]); when the server refused, [`Error::server`] gives its code
//!   and description, and a rate-limit answer is [`Error::RateLimited`].

#![deny(missing_docs)]

mod config;
mod error;
/// The gRPC client (feature `grpc`): publisher and stream subscriber of the EventMesh gRPC
/// protocol.
#[cfg(feature = "grpc")]
pub mod grpc;

pub mod http;
pub mod reconnect;
pub mod tcp;

pub use config::{
    ClientConfig, ClientConfigBuilder, DEFAULT_ADDRESS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_REQUEST_TIMEOUT, Protocol, Purpose, SDK_VERSION,
};
pub use error::{Error, ServerError};
pub use eventmesh_core::{CloudEvent, ExtensionValue, SubscriptionMode, SubscriptionType};
pub use reconnect::ReconnectPolicy;
pub use tcp::{Client, ConnectionState, Delivery, DeliveryKind, Handler, HandlerError, IntoReply};

/// A CloudEvent with a random id, source `/eventmesh-sdk-rust`, type `eventmesh.sdk.text` and
/// `data` = `text` as `text/plain`.
#[must_use]
pub fn text_event(text: impl Into<String>) -> CloudEvent {
    CloudEvent::new(random_id(), "/eventmesh-sdk-rust", "eventmesh.sdk.text")
        .with_data("text/plain", text.into())
}

/// A random event id (32 hex digits).
#[must_use]
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
