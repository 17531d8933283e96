//! Same-run baselines (`--direct URL`): the same workload straight against the broker with its
//! own Rust client, so the mesh's overhead is a ratio measured on one machine in one run.
//!
//! NATS JetStream (`nats://host:port`, async-nats): a fresh stream per run (file storage, one
//! replica, the server's default sync interval) on one subject; every publish awaits its
//! JetStream ack (with `--batch N`, the N publishes of a batch go out first, then their acks are
//! awaited); subscribers pull from a durable consumer with explicit acks (one shared consumer
//! for a CLUSTERING run, one per subscriber for BROADCASTING) and ack every message. The stream is
//! deleted afterwards.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::BenchError;

/// What a direct subscriber calls with each message's payload.
pub(crate) type OnEvent = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A broker the workload runs against directly.
pub(crate) struct Direct {
    js: jetstream::Context,
    url: String,
}

impl Direct {
    /// Connects to `url`; only `nats://` is supported.
    pub(crate) async fn connect(url: &str) -> Result<Direct, BenchError> {
        let Some(hosts) = url.strip_prefix("nats://") else {
            return Err(BenchError::Unsupported(format!(
                "--direct {url}: only nats:// brokers are supported for now"
            )));
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(hosts.split(',').collect::<Vec<_>>().as_slice())
            .await
            .map_err(|e| BenchError::Direct(format!("cannot connect to {url}: {e}")))?;
        Ok(Direct {
            js: jetstream::new(client),
            url: url.to_owned(),
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// What the direct side does, for the report.
    pub(crate) fn settings() -> &'static str {
        "NATS JetStream via async-nats: file storage, 1 replica, server-default sync interval; every publish awaits its JetStream ack; pull consumer with explicit acks, every message acked"
    }

    /// Creates the run's stream for `topic`.
    pub(crate) async fn prepare(&self, topic: &str) -> Result<DirectTopic, BenchError> {
        let name = format!("BENCH-{}", sanitize(topic));
        let subject = format!("bench.{}", sanitize(topic));
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                storage: stream::StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| BenchError::Direct(format!("cannot create stream {name}: {e}")))?;
        Ok(DirectTopic {
            js: self.js.clone(),
            stream,
            name,
            subject,
        })
    }
}

/// The run's stream.
#[derive(Clone)]
pub(crate) struct DirectTopic {
    js: jetstream::Context,
    stream: stream::Stream,
    name: String,
    subject: String,
}

impl DirectTopic {
    /// Publishes `data` `count` times (a batch: every publish first, then every JetStream
    /// ack) and awaits the acks.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        let mut acks = Vec::new();
        for _ in 0..count {
            let ack = self
                .js
                .publish(self.subject.clone(), data.clone())
                .await
                .map_err(|e| e.to_string())?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Starts a subscriber pulling from the durable consumer `durable`, calling `on_event` with
    /// each message's payload and acking it, until `stop` is cancelled.
    pub(crate) async fn subscribe(
        &self,
        durable: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BenchError::Direct(format!("cannot create consumer {durable}: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| BenchError::Direct(format!("cannot pull from {durable}: {e}")))?;
        Ok(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(msg)) => {
                        on_event(&msg.payload);
                        if let Err(error) = msg.ack().await {
                            warn!(message = "Direct ack failed.", %error);
                        }
                    }
                    Some(Err(error)) => warn!(message = "Direct pull failed.", %error),
                    None => return,
                }
            }
        }))
    }

    /// Deletes the run's stream.
    pub(crate) async fn remove(&self) {
        if let Err(error) = self.js.delete_stream(&self.name).await {
            warn!(message = "Could not delete the benchmark stream.", stream = %self.name, %error);
        }
    }
}

/// A stream-name-safe form of a topic.
fn sanitize(topic: &str) -> String {
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
