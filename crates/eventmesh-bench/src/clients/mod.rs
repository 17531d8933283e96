//! The mesh's clients, one module per protocol, behind one publisher and one subscriber type
//! chosen by [`Transport`]: `run` drives them without knowing the protocol.

mod grpc;
mod http;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_sdk::{CloudEvent, SubscriptionMode, SubscriptionType};

use crate::{BenchConfig, BenchError, Transport};

/// The `source` of published events and replies.
const SOURCE: &str = "/eventmesh-bench";
/// The `type` of published events.
const EVENT_TYPE: &str = "eventmesh.bench";
/// The `type` of replies.
const REPLY_TYPE: &str = "eventmesh.bench.reply";
/// The subsystem (`sys`) the clients name.
const SUBSYSTEM: &str = "eventmesh-bench";
/// How long a publish or request may wait for its answer.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a counting subscriber calls with each event's data.
pub(crate) type OnEvent = Arc<dyn Fn(Option<&[u8]>) + Send + Sync>;

/// What a subscriber does with each event.
#[derive(Clone)]
pub(crate) enum Role {
    /// Counts it (ASYNC subscription).
    Count(OnEvent),
    /// Answers it with a reply carrying the same data (SYNC subscription, request-reply).
    Echo,
}

impl Role {
    /// The subscription type the role needs: ASYNC to count, SYNC to answer.
    fn subscription_type(&self) -> SubscriptionType {
        match self {
            Role::Count(_) => SubscriptionType::Async,
            Role::Echo => SubscriptionType::Sync,
        }
    }

    /// Handles one delivered event's data: counts it (no answer) or makes the reply.
    fn handle(&self, data: Option<Bytes>) -> Option<CloudEvent> {
        match self {
            Role::Count(on_event) => {
                on_event(data.as_deref());
                None
            }
            Role::Echo => Some(reply(data.unwrap_or_default())),
        }
    }
}

/// One subscriber to start.
pub(crate) struct Subscription<'a> {
    /// The topic.
    pub(crate) topic: &'a str,
    /// The consumer group.
    pub(crate) group: String,
    /// How the group shares the topic.
    pub(crate) mode: SubscriptionMode,
    /// What it does with each event.
    pub(crate) role: Role,
    /// Its number, for messages.
    pub(crate) n: usize,
}

/// The event of ticket `index` carrying `data`.
pub(crate) fn event(index: u64, data: Bytes) -> CloudEvent {
    CloudEvent::new(index.to_string(), SOURCE, EVENT_TYPE).with_data("text/plain", data)
}

/// The reply to a request carrying `data`.
fn reply(data: Bytes) -> CloudEvent {
    CloudEvent::new("reply", SOURCE, REPLY_TYPE).with_data("text/plain", data)
}

/// `addr` as a URL: `http://addr` unless it names a scheme.
fn url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// A client's error while doing `context`.
fn client_error<E>(context: String, source: E) -> BenchError
where
    E: std::error::Error + Send + Sync + 'static,
{
    BenchError::Client {
        context,
        source: Box::new(source),
    }
}

/// A publisher connection. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub(crate) enum Publisher {
    Tcp(tcp::Publisher),
    Grpc(grpc::Publisher),
    Http(http::Publisher),
}

impl Publisher {
    /// Connects publisher `n` of `group` to the mesh (HTTP connects on the first call).
    pub(crate) async fn connect(
        config: &BenchConfig,
        group: String,
        n: usize,
    ) -> Result<Publisher, BenchError> {
        Ok(match config.transport {
            Transport::Tcp => Publisher::Tcp(tcp::Publisher::connect(config, group, n).await?),
            Transport::Grpc => Publisher::Grpc(grpc::Publisher::connect(config, group, n).await?),
            Transport::Http => Publisher::Http(http::Publisher::connect(config, group)?),
        })
    }

    /// Publishes `events` to `topic` in one call (one event: the plain publish; more: the
    /// protocol's batch publish) and waits for the mesh's acknowledgement.
    pub(crate) async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<(), String> {
        match self {
            Publisher::Tcp(p) => p.publish(topic, events).await,
            Publisher::Grpc(p) => p.publish(topic, events).await,
            Publisher::Http(p) => p.publish(topic, events).await,
        }
    }

    /// Sends `event` as a request to `topic` and waits for the reply.
    pub(crate) async fn request(&self, topic: &str, event: CloudEvent) -> Result<(), String> {
        match self {
            Publisher::Tcp(p) => p.request(topic, event).await,
            Publisher::Grpc(p) => p.request(topic, event).await,
            Publisher::Http(p) => p.request(topic, event).await,
        }
    }

    /// Closes the connection (TCP; the others close when dropped).
    pub(crate) async fn close(&self) {
        if let Publisher::Tcp(p) = self {
            p.close().await;
        }
    }
}

/// A running subscriber.
pub(crate) enum Subscriber {
    Tcp(tcp::Subscriber),
    Grpc(grpc::Subscriber),
    Http(http::Subscriber),
}

impl Subscriber {
    /// Starts `sub` and returns once the mesh accepted the subscription.
    pub(crate) async fn start(
        config: &BenchConfig,
        sub: Subscription<'_>,
    ) -> Result<Subscriber, BenchError> {
        Ok(match config.transport {
            Transport::Tcp => Subscriber::Tcp(tcp::Subscriber::start(config, sub).await?),
            Transport::Grpc => Subscriber::Grpc(grpc::Subscriber::start(config, sub).await?),
            Transport::Http => Subscriber::Http(http::Subscriber::start(config, sub).await?),
        })
    }

    /// Stops it (acknowledging or answering what it handled).
    pub(crate) async fn close(self) {
        match self {
            Subscriber::Tcp(s) => s.close().await,
            Subscriber::Grpc(s) => s.close().await,
            Subscriber::Http(s) => s.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_urls() {
        assert_eq!(url("127.0.0.1:10205"), "http://127.0.0.1:10205");
        assert_eq!(url("https://mesh:10205"), "https://mesh:10205");
    }

    #[test]
    fn events_carry_their_index_and_data() {
        let e = event(42, Bytes::from_static(b"00000000000000000001xx"));
        assert_eq!(e.id, "42");
        assert_eq!(e.data.as_deref(), Some(&b"00000000000000000001xx"[..]));
    }
}
