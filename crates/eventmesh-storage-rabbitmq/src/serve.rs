//! Serving one cursor: its lock, its stream reader, its persisted state.
//!
//! A cursor is served by one store at a time: the one whose connection holds the cursor's
//! exclusive *lock queue*. Another store (another mesh node) on the same cursor is a standby:
//! its fetches return nothing until the holder's connection goes away, and then it takes the
//! lock and continues from the persisted state. The holder reads the topic stream from the
//! cursor's position into a bounded read-ahead buffer, hands events out with a lease, and
//! writes the cursor's [`Snapshot`] to its state queue (group-committed: concurrent changes
//! share one write) before an ack, a nack, a seek or a fetch that handed something out
//! returns. Leases and nack delays are kept by the holder; when the holder dies, every event
//! it had handed out and not acked comes back at once to the next holder, with a higher
//! delivery count.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::EventRecord;
use eventmesh_storage::{ConsumerRef, Delivery, Offset};
use futures_util::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::Conn;
use crate::error::RabbitError;
use crate::stream::{RECORD_TYPE, attach_args, consume, delivery_offset, is_marker};
use eventmesh_storage::lease_cursor::{Attach, CursorState, Handed, Item, Snapshot, TokenCodec};

/// This store's ack tokens (their magic keeps tokens of other stores out).
pub(crate) const TOKENS: TokenCodec = TokenCodec::new(*b"RQ\x01", "RabbitMQ");

/// Whether this store serves the cursor now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Owner,
    Standby,
}

/// Why a cursor operation could not be done.
#[derive(Debug)]
pub(crate) enum CursorError {
    /// The state queue is gone (unsubscribed, or its topic deleted).
    Gone,
    /// The topic stream is gone.
    NoTopic,
    Rabbit(RabbitError),
}

impl From<RabbitError> for CursorError {
    fn from(e: RabbitError) -> Self {
        CursorError::Rabbit(e)
    }
}

struct Reader {
    generation: u64,
    reader_gen: u64,
    channel: Channel,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Session {
    /// The connection generation on which this store holds the lock; 0: it does not.
    generation: u64,
    loaded: bool,
    reader: Option<Reader>,
}

/// The arguments of a state queue (the same on every declare, or the broker refuses it).
pub(crate) fn state_args(expiry_ms: u32) -> FieldTable {
    let mut a = FieldTable::default();
    a.insert("x-max-length".into(), AMQPValue::LongInt(1));
    a.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    a.insert("x-expires".into(), AMQPValue::LongUInt(expiry_ms));
    a
}

/// A cursor this store knows.
pub(crate) struct Cursor {
    pub(crate) consumer: ConsumerRef,
    pub(crate) state_queue: String,
    lock_queue: String,
    topic_queue: String,
    writer: u64,
    expiry_ms: u32,
    prefetch: u16,
    read_ahead: usize,
    st: Mutex<CursorState>,
    notify: tokio::sync::Notify,
    space: tokio::sync::Notify,
    session: tokio::sync::Mutex<Session>,
    flushed: tokio::sync::Mutex<u64>,
    touched: Mutex<Option<Instant>>,
    /// The last fetch, ack, nack, extension or seek through this store.
    used: Mutex<Instant>,
}

/// Settings a cursor needs from the store.
pub(crate) struct CursorConfig {
    pub(crate) state_queue: String,
    pub(crate) lock_queue: String,
    pub(crate) topic_queue: String,
    pub(crate) expiry_ms: u32,
    pub(crate) prefetch: u16,
    pub(crate) read_ahead: usize,
}

impl Cursor {
    /// A cursor whose state is in the broker (loaded when first served), or, with `state`, one
    /// just created with that state (already persisted as version `state.version`).
    pub(crate) fn new(
        consumer: ConsumerRef,
        cfg: CursorConfig,
        writer: u64,
        state: Option<CursorState>,
    ) -> Arc<Cursor> {
        let flushed = state.as_ref().map_or(0, |s| s.version);
        Arc::new(Cursor {
            consumer,
            state_queue: cfg.state_queue,
            lock_queue: cfg.lock_queue,
            topic_queue: cfg.topic_queue,
            writer,
            expiry_ms: cfg.expiry_ms,
            prefetch: cfg.prefetch,
            read_ahead: cfg.read_ahead,
            st: Mutex::new(state.unwrap_or_else(|| CursorState::new(Attach::Offset(0), TOKENS))),
            notify: tokio::sync::Notify::new(),
            space: tokio::sync::Notify::new(),
            session: tokio::sync::Mutex::new(Session::default()),
            flushed: tokio::sync::Mutex::new(flushed),
            touched: Mutex::new(None),
            used: Mutex::new(Instant::now()),
        })
    }

    /// Takes the lock if it can, loads the state and (re)starts the reader.
    pub(crate) async fn ensure(self: &Arc<Self>, conn: &Conn) -> Result<Role, CursorError> {
        *self.used.lock() = Instant::now();
        let mut s = self.session.lock().await;
        let link = conn.link()?;
        if s.generation != link.generation {
            let (_, ch) = conn.channel().await?;
            let declared = conn
                .bounded(
                    "queue.declare (cursor lock)",
                    ch.queue_declare(
                        self.lock_queue.as_str().into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await;
            match declared {
                Ok(_) => {
                    let _ = ch.close(200, "lock taken".into()).await;
                }
                Err(e) if e.is_locked() => return Ok(Role::Standby),
                Err(e) => return Err(e.into()),
            }
            let Some(snap) = read_snapshot(conn, &self.state_queue).await? else {
                // Unsubscribed or its topic deleted meanwhile: give the lock back.
                if let Ok((_, ch)) = conn.channel().await {
                    let _ = conn
                        .bounded(
                            "queue.delete (cursor lock)",
                            ch.queue_delete(self.lock_queue.as_str().into(), Default::default()),
                        )
                        .await;
                    let _ = ch.close(200, "lock released".into()).await;
                }
                return Err(CursorError::Gone);
            };
            let mut flushed = self.flushed.lock().await;
            let ours = s.loaded && snap.writer == self.writer && snap.version == *flushed;
            if !ours {
                let mut st = self.st.lock();
                let reader_gen = st.reader_gen + 1;
                *st = CursorState::restore(&snap, Instant::now(), TOKENS);
                st.reader_gen = reader_gen;
                *flushed = snap.version;
                tracing::debug!(
                    message = "Cursor loaded.",
                    cursor = %self.consumer,
                    committed = snap.committed,
                    pending = snap.pending.len()
                );
            }
            drop(flushed);
            s.loaded = true;
            s.generation = link.generation;
        }
        let reader_gen = self.st.lock().reader_gen;
        let alive = s.reader.as_ref().is_some_and(|r| {
            r.generation == link.generation && r.reader_gen == reader_gen && !r.task.is_finished()
        });
        if !alive {
            if let Some(old) = s.reader.take() {
                old.task.abort();
                let _ = old.channel.close(200, "reader restarted".into()).await;
            }
            let at = self.st.lock().attach();
            let (generation, channel, consumer) =
                match consume(conn, &self.topic_queue, self.prefetch, attach_args(at)).await {
                    Ok(v) => v,
                    Err(e) if e.is_not_found() => return Err(CursorError::NoTopic),
                    Err(e) => return Err(e.into()),
                };
            let task = tokio::spawn(self.clone().read(consumer, reader_gen));
            s.reader = Some(Reader {
                generation,
                reader_gen,
                channel,
                task,
            });
        }
        Ok(Role::Owner)
    }

    async fn read(self: Arc<Self>, mut consumer: Consumer, reader_gen: u64) {
        while let Some(next) = consumer.next().await {
            let Ok(d) = next else { break };
            let offset = delivery_offset(&d);
            let item = self.item(&d);
            let AmqpDelivery { acker, .. } = d;
            if let Some(offset) = offset {
                let mut item = Some(item);
                loop {
                    let space = self.space.notified();
                    tokio::pin!(space);
                    space.as_mut().enable();
                    {
                        let mut st = self.st.lock();
                        if st.reader_gen != reader_gen {
                            return;
                        }
                        if st.buffered() < self.read_ahead {
                            if let Some(it) = item.take()
                                && st.on_read(offset, it)
                            {
                                self.notify.notify_waiters();
                            }
                            break;
                        }
                    }
                    space.await;
                }
            }
            if acker.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
        tracing::debug!(message = "Cursor reader stopped.", cursor = %self.consumer, reader_gen);
    }

    fn item(&self, d: &AmqpDelivery) -> Item {
        if is_marker(d) {
            return Item::Skip;
        }
        let typed = d
            .properties
            .kind()
            .as_ref()
            .is_none_or(|k| k.as_str() == RECORD_TYPE);
        if !typed {
            return Item::Skip;
        }
        match EventRecord::decode(&Bytes::copy_from_slice(&d.data)) {
            Ok(r) if r.topic == self.consumer.topic => Item::Record(r),
            Ok(r) => {
                tracing::warn!(message = "Skipping a record of another topic in a topic stream.", cursor = %self.consumer, topic = %r.topic);
                Item::Skip
            }
            Err(error) => {
                tracing::warn!(message = "Skipping an undecodable message in a topic stream.", cursor = %self.consumer, %error);
                Item::Skip
            }
        }
    }

    /// Fetches up to `max` deliveries, waiting up to `wait` for some.
    pub(crate) async fn fetch(
        self: &Arc<Self>,
        conn: &Conn,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, CursorError> {
        let end = Instant::now() + wait;
        loop {
            let role = self.ensure(conn).await?;
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let (got, next_due) = if role == Role::Owner {
                let mut st = self.st.lock();
                (st.fetch(max, lease, now), st.next_due())
            } else {
                (Vec::new(), None)
            };
            self.space.notify_waiters();
            if !got.is_empty() {
                self.persist(conn).await?;
                return Ok(got.into_iter().map(delivery).collect());
            }
            if now >= end {
                return Ok(Vec::new());
            }
            // Wake for a due redelivery, and at least every 500 ms to look at the session.
            let mut wake = end.min(now + Duration::from_millis(500));
            if let Some(d) = next_due {
                wake = wake.min(d.max(now));
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Applies `f` to the state if this store serves the cursor, then persists.
    pub(crate) async fn update(
        self: &Arc<Self>,
        conn: &Conn,
        f: impl FnOnce(&mut CursorState),
    ) -> Result<Role, CursorError> {
        let role = self.ensure(conn).await?;
        if role == Role::Owner {
            f(&mut self.st.lock());
            self.notify.notify_waiters();
            self.persist(conn).await?;
        }
        Ok(role)
    }

    /// `(committed, in_flight)`: from memory when serving, else from the state queue.
    pub(crate) async fn info(self: &Arc<Self>, conn: &Conn) -> Result<(u64, u64), CursorError> {
        if self.ensure(conn).await? == Role::Owner {
            let st = self.st.lock();
            return Ok((st.committed(), st.in_flight()));
        }
        let snap = read_snapshot(conn, &self.state_queue)
            .await?
            .ok_or(CursorError::Gone)?;
        Ok((snap.committed, snap.pending.len() as u64))
    }

    /// Writes the state if it changed since the last write (group commit).
    pub(crate) async fn persist(&self, conn: &Conn) -> Result<(), CursorError> {
        let want = self.st.lock().version;
        let mut flushed = self.flushed.lock().await;
        if *flushed >= want {
            return Ok(());
        }
        let snap = self.st.lock().snapshot(&self.state_queue, self.writer);
        let body = serde_json::to_vec(&snap).map_err(|e| {
            CursorError::Rabbit(RabbitError::Protocol {
                queue: self.state_queue.clone(),
                reason: e.to_string(),
            })
        })?;
        let props = BasicProperties::default().with_content_type("application/json".into());
        if !conn
            .publish_confirmed("", &self.state_queue, &body, props)
            .await?
        {
            return Err(CursorError::Gone);
        }
        *flushed = snap.version;
        drop(flushed);
        self.touch(conn).await;
        Ok(())
    }

    /// Re-declares the state queue now and then, which keeps `x-expires` from removing it while
    /// the cursor is in use (publishing to a queue does not count as use).
    async fn touch(&self, conn: &Conn) {
        let due = self
            .touched
            .lock()
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if !due {
            return;
        }
        *self.touched.lock() = Some(Instant::now());
        if let Ok((_, ch)) = conn.channel().await {
            let _ = conn
                .bounded(
                    "queue.declare (state)",
                    ch.queue_declare(
                        self.state_queue.as_str().into(),
                        QueueDeclareOptions::durable(),
                        state_args(self.expiry_ms),
                    ),
                )
                .await;
            let _ = ch.close(200, "touched".into()).await;
        }
    }

    /// Releases the cursor to other stores when this one has not used it for `idle` and holds
    /// nothing in flight (a node whose members left must not keep the cursor from the nodes
    /// that still have members). The next use here takes it back if it is free.
    pub(crate) async fn release_if_idle(&self, conn: &Conn, idle: Duration) {
        let idle_long = self.used.lock().elapsed() >= idle;
        let serving = self.session.try_lock().is_ok_and(|s| s.generation != 0);
        if idle_long && serving && self.st.lock().in_flight() == 0 {
            tracing::debug!(message = "Releasing an idle cursor.", cursor = %self.consumer);
            self.stop(conn, true).await;
        }
    }

    /// Stops serving: persists what changed, stops the reader, releases the lock.
    pub(crate) async fn stop(&self, conn: &Conn, release: bool) {
        let mut s = self.session.lock().await;
        if s.generation != 0
            && conn.link().is_ok_and(|l| l.generation == s.generation)
            && let Err(error) = self.persist(conn).await
        {
            tracing::warn!(message = "Could not persist a cursor on stop.", cursor = %self.consumer, error = ?error);
        }
        if let Some(r) = s.reader.take() {
            r.task.abort();
            let _ = r.channel.close(200, "cursor stopped".into()).await;
        }
        if release
            && s.generation != 0
            && let Ok((_, ch)) = conn.channel().await
        {
            let _ = conn
                .bounded(
                    "queue.delete (cursor lock)",
                    ch.queue_delete(self.lock_queue.as_str().into(), Default::default()),
                )
                .await;
            let _ = ch.close(200, "lock released".into()).await;
        }
        s.generation = 0;
    }
}

fn delivery(h: Handed) -> Delivery {
    Delivery {
        token: h.token,
        offset: Offset {
            partition: 0,
            seq: h.offset,
        },
        delivery_count: h.count,
        record: h.record,
    }
}

/// Reads the newest snapshot in a state queue; `None` if the queue does not exist.
pub(crate) async fn read_snapshot(
    conn: &Conn,
    queue: &str,
) -> Result<Option<Snapshot>, RabbitError> {
    let (_, ch) = conn.channel().await?;
    let mut best: Option<Snapshot> = None;
    for _ in 0..16 {
        let got = conn
            .bounded(
                "basic.get (state)",
                ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
            )
            .await;
        match got {
            Ok(Some(m)) => match serde_json::from_slice::<Snapshot>(&m.delivery.data) {
                Ok(s) if best.as_ref().is_none_or(|b| s.version > b.version) => best = Some(s),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(message = "Skipping an unreadable cursor snapshot.", queue, %error);
                }
            },
            Ok(None) => break,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    // Closing the channel gives the messages back to the queue.
    let _ = ch.close(200, "state read".into()).await;
    match best {
        Some(s) => Ok(Some(s)),
        None => Err(RabbitError::Unavailable(format!(
            "the state queue `{queue}` holds no cursor snapshot yet"
        ))),
    }
}
