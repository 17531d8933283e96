//! RabbitMQ (`amqp://user:pass@host:port[/vhost]`, lapin): a fresh durable fanout exchange per
//! run with durable **classic** queues bound to it — one queue shared by the CLUSTERING
//! subscribers, one per subscriber for BROADCASTING, one kept for a `pub` run so its events are
//! stored too. Not the stream queues (`x-queue-type=stream`) the RabbitMQ store uses: a stream
//! gives every consumer every message, so the competing consumers of a CLUSTERING group need a
//! classic queue. Messages are persistent (delivery mode 2); every publish awaits its publisher
//! confirm (with `--batch N`, the N publishes of a batch go out first, then their confirms are
//! awaited); consumers use manual acks (`basic.ack` per message) with a prefetch of 256. The
//! queues and the exchange are deleted afterwards.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::redact::mask_url;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{OnEvent, sanitize};
use crate::BenchError;

/// Unacked deliveries per consumer.
const PREFETCH: u16 = 256;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the direct side does, for the report.
const SETTINGS: &str = "RabbitMQ via lapin: durable fanout exchange, durable classic queues (not the store's stream queues: a stream cannot share messages among competing consumers), persistent messages (delivery mode 2), publisher confirms awaited for every publish; manual acks (basic.ack per message), prefetch 256; one queue shared by CLUSTERING subscribers, one per BROADCASTING subscriber";

/// A RabbitMQ connection.
pub(crate) struct Amqp {
    conn: Arc<Connection>,
    url: String,
}

fn amqp_error(url: &str, op: &str, e: &lapin::Error) -> BenchError {
    BenchError::Direct(format!("{op} on {}: {e}", mask_url(url)))
}

impl Amqp {
    /// Connects to `url`.
    pub(crate) async fn connect(url: &str) -> Result<Amqp, BenchError> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("eventmesh-bench-{}", std::process::id()).into());
        let conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(amqp_error(url, "cannot connect", &e)),
                Err(_) => {
                    return Err(BenchError::Direct(format!(
                        "cannot connect to {}: no answer within {} s",
                        mask_url(url),
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            };
        Ok(Amqp {
            conn: Arc::new(conn),
            url: url.to_owned(),
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// What the direct side does, for the report.
    pub(crate) fn settings(&self) -> String {
        SETTINGS.to_owned()
    }

    /// Declares the run's exchange (and with `retain_unread` a queue bound to it, so that the
    /// events of a run without subscribers are stored) and opens the publishing channel.
    pub(crate) async fn prepare(
        &self,
        topic: &str,
        retain_unread: bool,
    ) -> Result<AmqpTopic, BenchError> {
        let exchange = format!("eventmesh-bench.{}", sanitize(topic));
        let url = &self.url;
        let admin = self
            .conn
            .create_channel()
            .await
            .map_err(|e| amqp_error(url, "channel.open", &e))?;
        admin
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(url, "exchange.declare", &e))?;
        let publisher = self
            .conn
            .create_channel()
            .await
            .map_err(|e| amqp_error(url, "channel.open", &e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_error(url, "confirm.select", &e))?;
        let topic = AmqpTopic {
            inner: Arc::new(Inner {
                conn: self.conn.clone(),
                url: self.url.clone(),
                exchange,
                admin,
                publisher,
                queues: Mutex::new(Vec::new()),
            }),
        };
        if retain_unread {
            topic.queue("retained").await?;
        }
        Ok(topic)
    }
}

struct Inner {
    conn: Arc<Connection>,
    url: String,
    exchange: String,
    /// Declares, binds and deletes.
    admin: Channel,
    /// In confirm mode; shared by every publisher.
    publisher: Channel,
    /// The queues declared so far.
    queues: Mutex<Vec<String>>,
}

/// The run's exchange and queues.
#[derive(Clone)]
pub(crate) struct AmqpTopic {
    inner: Arc<Inner>,
}

impl AmqpTopic {
    /// Declares the durable queue of `group` bound to the exchange (once) and returns its name.
    async fn queue(&self, group: &str) -> Result<String, BenchError> {
        let inner = &self.inner;
        let name = format!("{}.{}", inner.exchange, sanitize(group));
        if inner.queues.lock().contains(&name) {
            return Ok(name);
        }
        let url = &inner.url;
        inner
            .admin
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(url, "queue.declare", &e))?;
        inner.queues.lock().push(name.clone());
        inner
            .admin
            .queue_bind(
                name.as_str().into(),
                inner.exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(url, "queue.bind", &e))?;
        Ok(name)
    }

    /// Publishes `data` `count` times as persistent messages (every publish first, then every
    /// confirm) and awaits the confirms.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        let inner = &self.inner;
        let mut confirms = Vec::new();
        for _ in 0..count {
            let confirm = inner
                .publisher
                .basic_publish(
                    inner.exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &data,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .map_err(|e| e.to_string())?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            match confirm.await.map_err(|e| e.to_string())? {
                Confirmation::Ack(_) => {}
                Confirmation::Nack(_) => return Err("the broker nacked a publish".to_owned()),
                Confirmation::NotRequested => {
                    return Err("the channel is not in confirm mode".to_owned());
                }
            }
        }
        Ok(())
    }

    /// Starts a consumer on `group`'s queue (declared and bound if new) on its own channel,
    /// calling `on_event` with each message's body and acking it, until `stop` is cancelled.
    pub(crate) async fn subscribe(
        &self,
        group: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        let queue = self.queue(group).await?;
        let inner = &self.inner;
        let url = &inner.url;
        let ch = inner
            .conn
            .create_channel()
            .await
            .map_err(|e| amqp_error(url, "channel.open", &e))?;
        ch.basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(|e| amqp_error(url, "basic.qos", &e))?;
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(url, "basic.consume", &e))?;
        Ok(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => break,
                    next = consumer.next() => next,
                };
                match next {
                    Some(Ok(delivery)) => {
                        on_event(&delivery.data);
                        if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                            warn!(message = "Direct basic.ack failed.", %error);
                        }
                    }
                    Some(Err(error)) => {
                        warn!(message = "Direct consume failed.", %error);
                        break;
                    }
                    None => break,
                }
            }
            let _ = ch.close(200, "bench done".into()).await;
        }))
    }

    /// Deletes the run's queues and exchange and closes the connection.
    pub(crate) async fn remove(&self) {
        let inner = &self.inner;
        let queues = std::mem::take(&mut *inner.queues.lock());
        for queue in queues {
            if let Err(error) = inner
                .admin
                .queue_delete(queue.as_str().into(), Default::default())
                .await
            {
                warn!(message = "Could not delete a benchmark queue.", %queue, %error);
            }
        }
        if let Err(error) = inner
            .admin
            .exchange_delete(inner.exchange.as_str().into(), Default::default())
            .await
        {
            warn!(message = "Could not delete the benchmark exchange.", exchange = %inner.exchange, %error);
        }
        let _ = inner.publisher.close(200, "bench done".into()).await;
        let _ = inner.admin.close(200, "bench done".into()).await;
        let _ = inner.conn.close(200, "bench done".into()).await;
    }
}
