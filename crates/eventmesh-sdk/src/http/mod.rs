//! The HTTP client: a publisher ([`HttpPublisher`]) and a webhook subscriber helper
//! ([`HttpSubscriber`]) for EventMesh runtimes (this one, or Apache EventMesh's HTTP port 10105).
//!
//! ```no_run
//! use eventmesh_sdk::http::{HttpConfig, HttpPublisher, HttpSubscriber, PushedEvent};
//! use eventmesh_sdk::{SubscriptionMode, SubscriptionType};
//!
//! # async fn demo() -> Result<(), eventmesh_sdk::http::HttpError> {
//! let config = HttpConfig::new("http://127.0.0.1:10105").producer_group("demo-pub");
//! let publisher = HttpPublisher::new(config.clone())?;
//! publisher.publish("demo-topic", eventmesh_sdk::text_event("hello")).await?;
//!
//! // A webhook server on a local port, subscribed and heart-beating until dropped.
//! let subscriber = HttpSubscriber::start(
//!     config.consumer_group("demo-group"),
//!     "127.0.0.1:0".parse().unwrap(),
//!     |event: PushedEvent| async move {
//!         println!("{:?}", event.event.data);
//!         Ok::<_, String>(None) // Ok: done; Err: the mesh retries; Some(reply) answers a request
//!     },
//! )
//! .await?;
//! subscriber
//!     .subscribe("demo-topic", SubscriptionMode::Clustering, SubscriptionType::Async)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Two wire modes ([`HttpMode`]):
//! * [`HttpMode::Legacy`] (default): the request-code protocol the Java SDK speaks (104 async
//!   send, 102 batch, 101 request-reply, 206/207 subscribe, 203 heartbeat, 301 reply), with the
//!   event as an `eventmeshmessage` (`content` = its data) or, with
//!   [`HttpConfig::cloudevents`], as structured CloudEvent JSON in `content`;
//! * [`HttpMode::CloudEvents`]: the CloudEvents HTTP binding on `/eventmesh/publish/{topic}`
//!   (structured mode; batches in batched mode). Request-reply always uses code 101.
//!
//! The subscriber understands the three push formats (legacy form, form with CloudEvent JSON,
//! binary-mode CloudEvent), answers `{"retCode":0}` when the handler returns `Ok` and
//! `{"retCode":2}` (retry) when it fails, and answers requests (SYNC subscriptions) with code 301.

mod config;
mod error;
mod publisher;
mod push;
mod subscriber;

pub use config::{HttpConfig, HttpMode};
pub use error::HttpError;
pub use publisher::HttpPublisher;
pub use push::PushedEvent;
pub use subscriber::{HandlerFuture, HttpSubscriber, PushHandler};
