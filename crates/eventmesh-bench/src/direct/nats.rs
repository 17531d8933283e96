//! NATS JetStream (`nats://host:port`, async-nats): a fresh stream per run (file storage, one
//! replica, the server's default sync interval) on one subject; every publish awaits its
//! JetStream ack (with `--batch N`, the N publishes of a batch go out first, then their acks are
//! awaited); subscribers pull from a durable consumer with explicit acks (one shared consumer
//! for a CLUSTERING run, one per subscriber for BROADCASTING) and ack every message. The stream is
//! deleted afterwards.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{OnEvent, sanitize};
use crate::BenchError;

/// What the direct side does, for the report.
pub(crate) const SETTINGS: &str = "NATS JetStream via async-nats: file storage, 1 replica, server-default sync interval; every publish awaits its JetStream ack; pull consumer with explicit acks, every message acked";

/// A JetStream connection.
pub(crate) struct Nats {
    js: jetstream::Context,
    url: String,
}

impl Nats {
    /// Connects to `url`; only `nats://` is supported.
    pub(crate) async fn connect(url: &str) -> Result<Nats, BenchError> {
        let Some(hosts) = url.strip_prefix("nats://") else {
            return Err(BenchError::Unsupported(format!(
                "--direct {url}: not a nats:// URL"
            )));
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(hosts.split(',').collect::<Vec<_>>().as_slice())
            .await
            .map_err(|e| BenchError::Direct(format!("cannot connect to {url}: {e}")))?;
        Ok(Nats {
            js: jetstream::new(client),
            url: url.to_owned(),
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Creates the run's stream for `topic`.
    pub(crate) async fn prepare(&self, topic: &str) -> Result<NatsTopic, BenchError> {
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
        Ok(NatsTopic {
            js: self.js.clone(),
            stream,
            name,
            subject,
        })
    }
}

/// The run's stream.
#[derive(Clone)]
pub(crate) struct NatsTopic {
    js: jetstream::Context,
    stream: stream::Stream,
    name: String,
    subject: String,
}

impl NatsTopic {
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
