//! Same-run baselines (`--direct URL`): the same workload straight against the broker with its
//! own Rust client, so the mesh's overhead is a ratio measured on one machine in one run.
//!
//! One module per broker, chosen by the URL's scheme; `run.rs` sees only [`Direct`] (the
//! connection) and [`DirectTopic`] (the run's stream or queues):
//!
//! * [`nats`] — `nats://host:port`: NATS JetStream with async-nats.
//! * [`redis`] — `redis://host:port` (`rediss://` too): a Redis stream with the `redis` crate.
//! * [`amqp`] — `amqp://user:pass@host:port[/vhost]`: RabbitMQ with lapin.
//! * [`kafka`] — `kafka://host:port[,host:port…]`: Kafka with rdkafka.
//! * `rocketmq` — `rocketmq://namesrv:port[,namesrv:port…][?cluster=NAME]`: RocketMQ with
//!   rocketmq-client-rust (only in builds with the `rocketmq` feature, like the store).
//!
//! Every broker does the same: a fresh stream (or queues) per run, every publish awaited (with
//! `--batch N`, the N publishes of a batch go out together and are awaited together), subscribers
//! in one shared group for CLUSTERING and one group each for BROADCASTING, every message acked,
//! and whatever the run created deleted afterwards.

mod amqp;
mod kafka;
mod nats;
mod redis;
#[cfg(feature = "rocketmq")]
mod rocketmq;

use std::sync::Arc;

use bytes::Bytes;
use eventmesh_core::redact::mask_url;
use tokio_util::sync::CancellationToken;

use crate::BenchError;

/// What a direct subscriber calls with each message's payload.
pub(crate) type OnEvent = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A broker the workload runs against directly.
pub(crate) enum Direct {
    Nats(nats::Nats),
    Redis(redis::Redis),
    Amqp(amqp::Amqp),
    Kafka(kafka::Kafka),
    #[cfg(feature = "rocketmq")]
    Rocket(Box<rocketmq::Rocket>),
}

impl Direct {
    /// Connects to `url`: `nats://`, `redis://` (or `rediss://`), `amqp://`, `kafka://` or
    /// `rocketmq://`.
    pub(crate) async fn connect(url: &str) -> Result<Direct, BenchError> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        match scheme {
            "nats" => Ok(Direct::Nats(nats::Nats::connect(url).await?)),
            "redis" | "rediss" => Ok(Direct::Redis(redis::Redis::connect(url).await?)),
            "amqp" => Ok(Direct::Amqp(amqp::Amqp::connect(url).await?)),
            "kafka" => Ok(Direct::Kafka(kafka::Kafka::connect(url).await?)),
            #[cfg(feature = "rocketmq")]
            "rocketmq" => Ok(Direct::Rocket(Box::new(
                rocketmq::Rocket::connect(url).await?,
            ))),
            #[cfg(not(feature = "rocketmq"))]
            "rocketmq" => Err(BenchError::Unsupported(format!(
                "--direct {}: this eventmesh was built without RocketMQ (build it with \
                 `--features rocketmq`)",
                mask_url(url)
            ))),
            _ => Err(BenchError::Unsupported(format!(
                "--direct {}: the broker URL must start with nats://, redis://, amqp://, kafka:// \
                 or rocketmq://",
                mask_url(url)
            ))),
        }
    }

    /// The broker URL, its password masked.
    pub(crate) fn url(&self) -> String {
        match self {
            Direct::Nats(d) => mask_url(d.url()),
            Direct::Redis(d) => mask_url(d.url()),
            Direct::Amqp(d) => mask_url(d.url()),
            Direct::Kafka(d) => mask_url(d.url()),
            #[cfg(feature = "rocketmq")]
            Direct::Rocket(d) => mask_url(d.url()),
        }
    }

    /// The report's `protocol`.
    pub(crate) fn protocol(&self) -> &'static str {
        match self {
            Direct::Nats(_) => "nats-jetstream",
            Direct::Redis(_) => "redis-streams",
            Direct::Amqp(_) => "rabbitmq-amqp",
            Direct::Kafka(_) => "kafka",
            #[cfg(feature = "rocketmq")]
            Direct::Rocket(_) => "rocketmq",
        }
    }

    /// What the direct side does (broker, durability, acks), for the report.
    pub(crate) fn settings(&self) -> String {
        match self {
            Direct::Nats(_) => nats::SETTINGS.to_owned(),
            Direct::Redis(d) => d.settings(),
            Direct::Amqp(d) => d.settings(),
            Direct::Kafka(_) => kafka::SETTINGS.to_owned(),
            #[cfg(feature = "rocketmq")]
            Direct::Rocket(_) => rocketmq::SETTINGS.to_owned(),
        }
    }

    /// Creates the run's stream (or exchange) for `topic`. `retain_unread`: events must be
    /// stored even when no subscriber reads them (a `pub` run), which matters where nothing
    /// stores an event without a reader (RabbitMQ's fanout exchange).
    pub(crate) async fn prepare(
        &self,
        topic: &str,
        retain_unread: bool,
    ) -> Result<DirectTopic, BenchError> {
        Ok(match self {
            Direct::Nats(d) => DirectTopic::Nats(Box::new(d.prepare(topic).await?)),
            Direct::Redis(d) => DirectTopic::Redis(d.prepare(topic).await?),
            Direct::Amqp(d) => DirectTopic::Amqp(d.prepare(topic, retain_unread).await?),
            Direct::Kafka(d) => DirectTopic::Kafka(d.prepare(topic).await?),
            #[cfg(feature = "rocketmq")]
            Direct::Rocket(d) => DirectTopic::Rocket(d.prepare(topic).await?),
        })
    }

    /// Closes the connection (the clients that need an orderly stop).
    pub(crate) async fn close(self) {
        #[cfg(feature = "rocketmq")]
        if let Direct::Rocket(d) = self {
            (*d).close().await;
        }
    }
}

/// The run's stream or queues on the broker.
#[derive(Clone)]
pub(crate) enum DirectTopic {
    Nats(Box<nats::NatsTopic>),
    Redis(redis::RedisTopic),
    Amqp(amqp::AmqpTopic),
    Kafka(kafka::KafkaTopic),
    #[cfg(feature = "rocketmq")]
    Rocket(rocketmq::RocketTopic),
}

impl DirectTopic {
    /// Publishes `data` `count` times (one batch) and awaits the broker's acknowledgements.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        match self {
            DirectTopic::Nats(t) => t.publish(data, count).await,
            DirectTopic::Redis(t) => t.publish(data, count).await,
            DirectTopic::Amqp(t) => t.publish(data, count).await,
            DirectTopic::Kafka(t) => t.publish(data, count).await,
            #[cfg(feature = "rocketmq")]
            DirectTopic::Rocket(t) => t.publish(data, count).await,
        }
    }

    /// Starts a subscriber in the group `group` (subscribers with the same group share its
    /// events), calling `on_event` with each message's payload and acking it, until `stop` is
    /// cancelled.
    pub(crate) async fn subscribe(
        &self,
        group: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        match self {
            DirectTopic::Nats(t) => t.subscribe(group, stop, on_event).await,
            DirectTopic::Redis(t) => t.subscribe(group, stop, on_event).await,
            DirectTopic::Amqp(t) => t.subscribe(group, stop, on_event).await,
            DirectTopic::Kafka(t) => t.subscribe(group, stop, on_event).await,
            #[cfg(feature = "rocketmq")]
            DirectTopic::Rocket(t) => t.subscribe(group, stop, on_event).await,
        }
    }

    /// Deletes what the run created on the broker (failures are logged).
    pub(crate) async fn remove(&self) {
        match self {
            DirectTopic::Nats(t) => t.remove().await,
            DirectTopic::Redis(t) => t.remove().await,
            DirectTopic::Amqp(t) => t.remove().await,
            DirectTopic::Kafka(t) => t.remove().await,
            #[cfg(feature = "rocketmq")]
            DirectTopic::Rocket(t) => t.remove().await,
        }
    }
}

/// The consumer groups a run made on the broker, deleted with its topic.
#[derive(Clone, Default)]
pub(crate) struct RunGroups(Arc<parking_lot::Mutex<Vec<String>>>);

impl RunGroups {
    /// Records `name` (once).
    pub(crate) fn remember(&self, name: &str) {
        let mut groups = self.0.lock();
        if !groups.iter().any(|g| g == name) {
            groups.push(name.to_owned());
        }
    }

    /// Every group recorded.
    pub(crate) fn all(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

/// A name-safe form of a topic (stream, key and queue names).
pub(crate) fn sanitize(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn stream_names_keep_only_safe_characters() {
        assert_eq!(sanitize("bench-00ff"), "bench-00ff");
        assert_eq!(sanitize("a.b c*>"), "a_b_c__");
    }
}
