//! Serving one cursor: loading its snapshot from the state topic, reading the topic's queue from
//! its position, handing out deliveries, and persisting every change before the call returns.
//!
//! A cursor's snapshot is a message on the topic's state topic; the cursor's consumer group
//! points at its latest snapshot with its consumer offset on the state topic, and its consumer
//! offset on the data topic is the committed position (what RocketMQ's tools show as progress).
//! Concurrent callers share one write (a later caller finds its change already written).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::EventRecord;
use eventmesh_storage::{AckToken, ConsumerRef, Delivery, Offset, StorageError, StorageResult};
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::warn;

use crate::client::{Clients, Route};
use crate::error::RocketError;
use eventmesh_storage::lease_cursor::{Attach, CursorState, Handed, Item, Snapshot, TokenCodec};

/// This store's ack tokens (their magic keeps tokens of other stores out).
pub(crate) const TOKENS: TokenCodec = TokenCodec::new(*b"RM\x01", "RocketMQ");

/// A cursor this store serves.
pub(crate) struct Cursor {
    pub(crate) consumer: ConsumerRef,
    /// `topic/group[/member]`, written in its snapshots.
    key: String,
    group: String,
    topic: String,
    state_topic: String,
    writer: u64,
    st: Mutex<CursorState>,
    /// Held by the one fetcher that pulls from the broker.
    pull: tokio::sync::Mutex<()>,
    /// The version last written, held while writing.
    flushed: tokio::sync::Mutex<(u64, u64)>,
    /// Set when the cursor was unsubscribed or its topic deleted: calls fail.
    gone: Mutex<bool>,
    /// When this store last got (or renewed) the broker's lock of the cursor's queue; `None`
    /// once it lost it (another store took the cursor over): calls fail then.
    locked: Mutex<Option<Instant>>,
}

/// The pause between two pulls that found nothing, while a fetch waits.
const POLL_PAUSE: Duration = Duration::from_millis(50);

/// Names a cursor needs.
pub(crate) struct CursorNames {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) state_topic: String,
}

fn encode_snapshot(s: &Snapshot) -> Result<Bytes, RocketError> {
    serde_json::to_vec(s)
        .map(Bytes::from)
        .map_err(|e| RocketError::Protocol {
            op: "writing a cursor snapshot".to_owned(),
            reason: e.to_string(),
        })
}

/// How the stored state of a cursor was found.
pub(crate) enum Stored {
    /// No cursor.
    None,
    /// Its latest snapshot.
    Snapshot(Snapshot),
    /// Only its committed position (its snapshot expired from the state topic).
    Committed(u64),
}

impl Cursor {
    /// Reads what the brokers hold about a cursor.
    pub(crate) async fn stored(
        clients: &Clients,
        key: &str,
        n: &CursorNames,
        state_route: &Route,
        data_route: &Route,
    ) -> Result<Stored, RocketError> {
        let Some(ptr) = clients
            .consumer_offset(&n.group, &n.state_topic, state_route)
            .await?
        else {
            return Ok(Stored::None);
        };
        let pulled = clients
            .pull(
                &n.group,
                &n.state_topic,
                state_route,
                ptr,
                1,
                Duration::ZERO,
            )
            .await?;
        if let Some(m) = pulled.messages.first()
            && u64::try_from(m.queue_offset()).ok() == Some(ptr)
        {
            let body = m.body().unwrap_or_default();
            let snap: Snapshot =
                serde_json::from_slice(&body).map_err(|e| RocketError::Protocol {
                    op: format!("reading the snapshot of cursor {key}"),
                    reason: e.to_string(),
                })?;
            if snap.cursor != key || snap.deleted {
                return Ok(Stored::None);
            }
            return Ok(Stored::Snapshot(snap));
        }
        if ptr < pulled.min {
            // The snapshot expired from the state topic: resume from the committed position.
            if let Some(c) = clients
                .consumer_offset(&n.group, &n.topic, data_route)
                .await?
            {
                return Ok(Stored::Committed(c));
            }
        }
        Ok(Stored::None)
    }

    /// A cursor in memory over the given state.
    pub(crate) fn new(
        consumer: ConsumerRef,
        n: CursorNames,
        writer: u64,
        st: CursorState,
        flushed: u64,
    ) -> Arc<Cursor> {
        Arc::new(Cursor {
            key: consumer.to_string(),
            consumer,
            group: n.group,
            topic: n.topic,
            state_topic: n.state_topic,
            writer,
            st: Mutex::new(st),
            pull: tokio::sync::Mutex::new(()),
            flushed: tokio::sync::Mutex::new((flushed, 0)),
            gone: Mutex::new(false),
            locked: Mutex::new(Some(Instant::now())),
        })
    }

    /// The cursor's consumer group (the name its queue lock is taken under).
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// The cursor's data topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the queue lock was last renewed `renew` ago or more.
    pub(crate) fn lock_due(&self, renew: Duration) -> bool {
        self.locked.lock().is_none_or(|at| at.elapsed() >= renew)
    }

    /// Records a renewal of the queue lock.
    pub(crate) fn relocked(&self) {
        *self.locked.lock() = Some(Instant::now());
    }

    /// Records that another store holds the queue lock now: this copy of the cursor is stale.
    pub(crate) fn lost_lock(&self) {
        *self.locked.lock() = None;
    }

    /// The cursor's key as its snapshots carry it.
    pub(crate) fn key_of(c: &ConsumerRef) -> String {
        c.to_string()
    }

    fn check(&self) -> StorageResult<()> {
        if *self.gone.lock() {
            return Err(StorageError::UnknownConsumer(self.key.clone()));
        }
        if self.locked.lock().is_none() {
            return Err(StorageError::Unavailable(format!(
                "cursor {} is served by another store now (it took the RocketMQ queue lock over)",
                self.key
            )));
        }
        Ok(())
    }

    /// Marks the cursor gone (unsubscribed, or its topic deleted).
    pub(crate) fn retire(&self) {
        *self.gone.lock() = true;
    }

    /// Writes the cursor's state if it changed since the last write.
    pub(crate) async fn persist(
        &self,
        clients: &Clients,
        state_route: &Route,
        data_route: &Route,
    ) -> Result<(), RocketError> {
        let mut flushed = self.flushed.lock().await;
        if self.locked.lock().is_none() {
            // Another store serves the cursor now: its snapshots are the cursor's state.
            return Err(RocketError::Unavailable(format!(
                "cursor {} is served by another store now; this one's changes are not written",
                self.key
            )));
        }
        let (snap, committed) = {
            let st = self.st.lock();
            if st.version <= flushed.0 {
                return Ok(());
            }
            (st.snapshot(&self.key, self.writer), st.committed())
        };
        self.write(clients, state_route, &snap).await?;
        if committed != flushed.1 {
            clients
                .commit_offset(&self.group, &self.topic, data_route, committed)
                .await?;
        }
        *flushed = (snap.version, committed);
        Ok(())
    }

    /// Writes one snapshot and points the cursor's group at it.
    async fn write(
        &self,
        clients: &Clients,
        state_route: &Route,
        snap: &Snapshot,
    ) -> Result<(), RocketError> {
        let body = encode_snapshot(snap)?;
        let msg = rocketmq_model::common::message::message_single::Message::builder()
            .topic(self.state_topic.as_str())
            .body(body)
            .build()
            .map_err(|e| RocketError::Config(format!("building a snapshot message: {e}")))?;
        let at = clients
            .send(&self.state_topic, state_route, vec![msg])
            .await?;
        clients
            .commit_offset(&self.group, &self.state_topic, state_route, at)
            .await
    }

    /// Writes a deletion marker: the cursor no longer exists for any store.
    pub(crate) async fn write_deleted(
        &self,
        clients: &Clients,
        state_route: &Route,
    ) -> Result<(), RocketError> {
        let _flushed = self.flushed.lock().await;
        let mut snap = self.st.lock().snapshot(&self.key, self.writer);
        snap.deleted = true;
        self.write(clients, state_route, &snap).await
    }

    /// Moves the cursor.
    pub(crate) fn seek(&self, at: Attach) -> StorageResult<()> {
        self.check()?;
        self.st.lock().seek(at);
        Ok(())
    }

    /// Acks, nacks or extends through `f` on the state.
    pub(crate) fn update(&self, f: impl FnOnce(&mut CursorState)) -> StorageResult<()> {
        self.check()?;
        f(&mut self.st.lock());
        Ok(())
    }

    /// `(committed, in flight)`.
    pub(crate) fn info(&self) -> StorageResult<(u64, u64)> {
        self.check()?;
        let st = self.st.lock();
        Ok((st.committed(), st.in_flight()))
    }

    /// Fetches up to `max` deliveries, pulling from the broker when nothing is ready, for up to
    /// `wait`.
    pub(crate) async fn fetch(
        &self,
        clients: &Clients,
        data_route: &Route,
        max: usize,
        lease: Duration,
        wait: Duration,
        pull_batch: u32,
    ) -> StorageResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        // Even with no wait, one pull looks at what the broker holds.
        let mut pulled_once = false;
        loop {
            self.check()?;
            let now = Instant::now();
            let (handed, next_due) = {
                let mut st = self.st.lock();
                let handed = st.fetch(max, lease, now);
                (handed, st.next_due())
            };
            if !handed.is_empty() {
                return Ok(handed.into_iter().map(delivery).collect());
            }
            if now >= deadline && pulled_once {
                return Ok(Vec::new());
            }
            // Wake up for the first due redelivery, or at the deadline.
            let until = next_due.map_or(deadline, |d| d.min(deadline)).max(now);
            let guard = if pulled_once {
                match tokio::time::timeout_at(until, self.pull.lock()).await {
                    Ok(g) => g,
                    Err(_) => continue,
                }
            } else {
                self.pull.lock().await
            };
            pulled_once = true;
            // Someone else may have pulled meanwhile.
            let (ready, attach) = {
                let st = self.st.lock();
                let due = st.next_due().is_some_and(|d| d <= Instant::now());
                (st.buffered() > 0 || due, st.attach())
            };
            if ready {
                drop(guard);
                continue;
            }
            let until = next_due.map_or(deadline, |d| d.min(deadline));
            // No long polling at the broker: rocketmq-rust holds a suspended pull past its
            // suspend time (beyond the caller's wait), so the store polls itself, pausing
            // `POLL_PAUSE` between empty pulls.
            let suspend = Duration::ZERO;
            let mut attach = attach;
            let mut read = 0usize;
            // The broker returns a few dozen messages per pull at most: pull again at once
            // while messages come and fewer than `max` are ready, so that one fetch hands out
            // up to `max` events.
            loop {
                let from = match attach {
                    Attach::Offset(o) => o,
                    Attach::Time(t) => clients.offset_at(&self.topic, data_route, t).await?,
                };
                let pulled = match clients
                    .pull(
                        &self.group,
                        &self.topic,
                        data_route,
                        from,
                        pull_batch,
                        suspend,
                    )
                    .await
                {
                    Ok(p) => p,
                    // A long poll the client gave up on is not an outage: try again.
                    Err(RocketError::Unavailable(_)) if Instant::now() >= until => break,
                    Err(e) => return Err(e.into()),
                };
                let mut st = self.st.lock();
                if pulled.illegal && from < pulled.min {
                    // Retention removed events the cursor had not read: skip to what is left.
                    st.jump(pulled.min);
                    break;
                }
                let got = pulled.messages.len();
                read += got;
                for m in pulled.messages {
                    let Ok(offset) = u64::try_from(m.queue_offset()) else {
                        continue;
                    };
                    let item = match m.body().map(|b| EventRecord::decode(&b)) {
                        Some(Ok(r)) => Item::Record(r),
                        Some(Err(error)) => {
                            warn!(message = "Skipped a message that is not an event.", topic = %self.topic, offset, %error);
                            Item::Skip
                        }
                        None => Item::Skip,
                    };
                    st.on_read(offset, item);
                }
                if got == 0 || st.buffered() >= max {
                    break;
                }
                attach = st.attach();
            }
            if read == 0 {
                let pause = (Instant::now() + POLL_PAUSE).min(until);
                tokio::time::sleep_until(pause).await;
            }
            drop(guard);
        }
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

/// Reads the tokens of one call.
pub(crate) fn parse_tokens(tokens: &[AckToken]) -> StorageResult<Vec<(u64, u64, u32)>> {
    tokens.iter().map(|t| TOKENS.decode(t)).collect()
}
