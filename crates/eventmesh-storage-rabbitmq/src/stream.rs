//! Reading RabbitMQ streams over AMQP 0.9.1, and the per-topic tail reader that tells a publish
//! the offsets its events got.
//!
//! A stream consumer attaches with `x-stream-offset` (an offset, `first`, `next`, or a
//! timestamp in seconds) and needs a `basic.qos` and acks (which only return credit). Each
//! delivery carries its offset in the `x-stream-offset` header.
//!
//! AMQP's publisher confirm does not say where a message landed, so each store runs one *tail
//! reader* per topic it publishes to, attached at `next`: a publish registers a random
//! correlation id per message before sending, and the tail reader answers each id with the
//! offset at which it reads that message. The same mechanism gives the end of a stream: a
//! *marker* message (AMQP `type` = [`MARKER_TYPE`], skipped by every cursor) is published and
//! its offset awaited, which is how `Latest` and offset seeks past the end are resolved.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::conn::Conn;
use crate::error::RabbitError;
use eventmesh_storage::lease_cursor::Attach;

/// The AMQP `type` of marker messages.
pub(crate) const MARKER_TYPE: &str = "eventmesh.marker";
/// The AMQP `type` of event messages (body: the versioned `EventRecord` encoding).
pub(crate) const RECORD_TYPE: &str = "eventmesh.record";

/// How much earlier than a time seek's target a reader attaches (stream timestamps are the
/// broker's whole seconds, ingest times the mesh's milliseconds): covers the rounding and a
/// broker clock up to this far behind the mesh's. The cursor drops what comes before the target.
pub(crate) const TIME_MARGIN_SECS: i64 = 30;

/// A random correlation id.
pub(crate) fn new_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The consume arguments attaching at `at`.
pub(crate) fn attach_args(at: Attach) -> FieldTable {
    let mut args = FieldTable::default();
    let v = match at {
        Attach::Offset(o) => AMQPValue::LongLongInt(i64::try_from(o).unwrap_or(i64::MAX)),
        Attach::Time(ms) => {
            AMQPValue::Timestamp(u64::try_from(ms.div_euclid(1000) - TIME_MARGIN_SECS).unwrap_or(0))
        }
    };
    args.insert("x-stream-offset".into(), v);
    args
}

/// The `next` attach point (only what is written from now on).
fn next_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("next".into()),
    );
    args
}

/// The stream offset of a delivery.
pub(crate) fn delivery_offset(d: &Delivery) -> Option<u64> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

/// Whether a delivery is a marker.
pub(crate) fn is_marker(d: &Delivery) -> bool {
    d.properties
        .kind()
        .as_ref()
        .is_some_and(|k| k.as_str() == MARKER_TYPE)
}

/// Opens a channel and a stream consumer on `queue`.
pub(crate) async fn consume(
    conn: &Conn,
    queue: &str,
    prefetch: u16,
    args: FieldTable,
) -> Result<(u64, Channel, Consumer), RabbitError> {
    let (generation, ch) = conn.channel().await?;
    conn.bounded(
        "basic.qos",
        ch.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await?;
    let consumer = conn
        .bounded(
            "basic.consume",
            ch.basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            ),
        )
        .await?;
    Ok((generation, ch, consumer))
}

#[derive(Default)]
struct TailInner {
    pending: HashMap<String, oneshot::Sender<u64>>,
    /// The connection generation the consumer runs on; 0: not running.
    generation: u64,
    channel: Option<Channel>,
}

/// The tail reader of one topic stream.
pub(crate) struct Tail {
    queue: String,
    inner: Mutex<TailInner>,
    start: tokio::sync::Mutex<()>,
    /// The last publish or marker through it.
    used: Mutex<tokio::time::Instant>,
}

impl Tail {
    pub(crate) fn new(queue: String) -> Arc<Tail> {
        Arc::new(Tail {
            queue,
            inner: Mutex::new(TailInner::default()),
            start: tokio::sync::Mutex::new(()),
            used: Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// Makes sure the reader runs on the live connection (attached before this returns).
    pub(crate) async fn ensure(self: &Arc<Self>, conn: &Conn) -> Result<(), RabbitError> {
        *self.used.lock() = tokio::time::Instant::now();
        let _one = self.start.lock().await;
        let link = conn.link()?;
        if self.inner.lock().generation == link.generation {
            return Ok(());
        }
        let (generation, ch, consumer) = consume(conn, &self.queue, 1024, next_args()).await?;
        {
            let mut inner = self.inner.lock();
            inner.generation = generation;
            inner.channel = Some(ch);
        }
        tokio::spawn(self.clone().run(consumer, generation));
        Ok(())
    }

    /// Registers a correlation id; the receiver gets the offset the message is read at.
    pub(crate) fn expect(&self, key: &str) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        self.inner.lock().pending.insert(key.to_owned(), tx);
        rx
    }

    /// Forgets correlation ids (after a failed publish).
    pub(crate) fn forget(&self, keys: &[String]) {
        let mut inner = self.inner.lock();
        for k in keys {
            inner.pending.remove(k);
        }
    }

    /// Stops the reader if nothing used it for `idle` and no publish waits on it (the next
    /// publish starts it again), so a store does not keep reading topics it stopped writing to.
    pub(crate) async fn stop_if_idle(&self, idle: std::time::Duration) {
        let Ok(_one) = self.start.try_lock() else {
            return; // Being started: in use.
        };
        // Checked under `start`: an `ensure` that finished before this saw `used` refreshed.
        let idle_long = self.used.lock().elapsed() >= idle;
        let quiet = {
            let inner = self.inner.lock();
            inner.generation != 0 && inner.pending.is_empty()
        };
        if idle_long && quiet {
            tracing::debug!(message = "Stopping an idle tail reader.", queue = %self.queue);
            self.stop().await;
        }
    }

    /// Stops the reader.
    pub(crate) async fn stop(&self) {
        let ch = {
            let mut inner = self.inner.lock();
            inner.generation = 0;
            inner.pending.clear();
            inner.channel.take()
        };
        if let Some(ch) = ch {
            let _ = ch.close(200, "tail reader stopped".into()).await;
        }
    }

    async fn run(self: Arc<Self>, mut consumer: Consumer, generation: u64) {
        while let Some(next) = consumer.next().await {
            let Ok(d) = next else { break };
            if let (Some(offset), Some(key)) = (delivery_offset(&d), d.properties.correlation_id())
            {
                let tx = self.inner.lock().pending.remove(key.as_str());
                if let Some(tx) = tx {
                    let _ = tx.send(offset);
                }
            }
            if d.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
        let mut inner = self.inner.lock();
        if inner.generation == generation {
            inner.generation = 0;
            inner.channel = None;
            // Waiting publishes fail now rather than at their timeout.
            inner.pending.clear();
        }
        tracing::debug!(message = "Tail reader stopped.", queue = %self.queue, generation);
    }
}
