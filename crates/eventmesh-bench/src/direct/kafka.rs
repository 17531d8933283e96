//! Kafka (`kafka://host:port[,host:port…]`, rdkafka with its bundled librdkafka, the Kafka
//! store's client and producer settings): a fresh topic per run (one partition, one replica, as
//! the store makes them); every publish awaits the brokers' `acks=all` acknowledgement from an
//! idempotent producer (with `--batch N`, the N records of a batch go out first, then their
//! acknowledgements are awaited); subscribers are members of one consumer group for a
//! CLUSTERING run and of one group each for BROADCASTING, and commit every record they handled
//! (asynchronously, batched by librdkafka). The topic and groups are deleted afterwards.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::redact::mask_url;
use futures_util::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{OnEvent, RunGroups, sanitize};
use crate::BenchError;

/// What the direct side does, for the report.
pub(crate) const SETTINGS: &str = "Kafka via rdkafka (bundled librdkafka): one partition, 1 replica; idempotent producer, acks=all, every publish awaits its acknowledgement; consumer groups, every record committed (async commits)";

/// How long admin and produce calls may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the brokers may take to answer when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Kafka connection.
pub(crate) struct Kafka {
    url: String,
    config: ClientConfig,
    admin: Arc<AdminClient<DefaultClientContext>>,
    producer: FutureProducer,
}

impl Kafka {
    /// Connects to `url` (`kafka://h1:p1,h2:p2`) and checks that the brokers answer.
    pub(crate) async fn connect(url: &str) -> Result<Kafka, BenchError> {
        let Some(hosts) = url.strip_prefix("kafka://").filter(|h| !h.is_empty()) else {
            return Err(BenchError::Unsupported(format!(
                "--direct {}: not a kafka://host:port URL",
                mask_url(url)
            )));
        };
        let cant = |e: rdkafka::error::KafkaError| {
            BenchError::Direct(format!("cannot connect to {}: {e}", mask_url(url)))
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", hosts)
            .set("client.id", "eventmesh-bench")
            .set("allow.auto.create.topics", "false");
        let admin: AdminClient<DefaultClientContext> = config.create().map_err(cant)?;
        let producer: FutureProducer = config
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .create()
            .map_err(cant)?;
        let probe = producer.clone();
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, CONNECT_TIMEOUT))
            .await
            .map_err(|e| BenchError::Direct(e.to_string()))?
            .map_err(cant)?;
        Ok(Kafka {
            url: url.to_owned(),
            config,
            admin: Arc::new(admin),
            producer,
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Creates the run's topic for `topic`.
    pub(crate) async fn prepare(&self, topic: &str) -> Result<KafkaTopic, BenchError> {
        let name = format!("eventmesh-bench-{}", sanitize(topic));
        let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let created = self
            .admin
            .create_topics(
                &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
                &opts,
            )
            .await
            .map_err(|e| BenchError::Direct(format!("cannot create topic {name}: {e}")))?;
        if let Some(Err((_, code))) = created.into_iter().next() {
            return Err(BenchError::Direct(format!(
                "cannot create topic {name}: {code}"
            )));
        }
        Ok(KafkaTopic {
            name,
            config: self.config.clone(),
            admin: self.admin.clone(),
            producer: self.producer.clone(),
            groups: RunGroups::default(),
        })
    }
}

/// The run's topic.
#[derive(Clone)]
pub(crate) struct KafkaTopic {
    name: String,
    config: ClientConfig,
    admin: Arc<AdminClient<DefaultClientContext>>,
    producer: FutureProducer,
    /// The consumer groups the run made, deleted with the topic.
    groups: RunGroups,
}

impl KafkaTopic {
    /// Produces `data` `count` times (a batch: every record first, then every acknowledgement)
    /// and awaits the acknowledgements.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        let sends = (0..count).map(|_| {
            self.producer.send(
                FutureRecord::<(), [u8]>::to(&self.name).payload(data.as_ref()),
                TIMEOUT,
            )
        });
        for r in join_all(sends).await {
            r.map_err(|(e, _)| e.to_string())?;
        }
        Ok(())
    }

    /// Starts a member of the consumer group `group` (from the topic's start), calling
    /// `on_event` with each record's payload and committing it, until `stop` is cancelled.
    pub(crate) async fn subscribe(
        &self,
        group: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        let group_id = format!("{}-{}", self.name, sanitize(group));
        self.groups.remember(&group_id);
        let consumer: StreamConsumer = self
            .config
            .clone()
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| BenchError::Direct(format!("cannot create consumer {group_id}: {e}")))?;
        consumer
            .subscribe(&[&self.name])
            .map_err(|e| BenchError::Direct(format!("cannot subscribe {group_id}: {e}")))?;
        Ok(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => break,
                    next = consumer.recv() => next,
                };
                match next {
                    Ok(m) => {
                        on_event(m.payload().unwrap_or_default());
                        if let Err(error) = consumer.commit_message(&m, CommitMode::Async) {
                            warn!(message = "Direct commit failed.", %error);
                        }
                    }
                    Err(error) => warn!(message = "Direct consume failed.", %error),
                }
            }
            // Closing the consumer leaves the group; it blocks until the broker answered.
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        }))
    }

    /// Deletes the run's topic and consumer groups.
    pub(crate) async fn remove(&self) {
        let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
        if let Err(error) = self.admin.delete_topics(&[&self.name], &opts).await {
            warn!(message = "Could not delete the benchmark topic.", topic = %self.name, %error);
        }
        let groups = self.groups.all();
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        if !names.is_empty()
            && let Err(error) = self.admin.delete_groups(&names, &opts).await
        {
            warn!(message = "Could not delete the benchmark groups.", %error);
        }
    }
}
