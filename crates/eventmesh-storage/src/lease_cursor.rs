//! A cursor a store keeps itself: for brokers with readable logs but no per-consumer leases
//! (RabbitMQ streams, RocketMQ queues), the store that serves a cursor keeps its state in memory
//! and persists it as a [`Snapshot`] in the broker. Pure logic: no I/O, so every rule here is
//! unit-tested.
//!
//! Positions are log offsets. Below `horizon` every offset was handed out (or is not an
//! event); those still in `inflight` are not done. `committed` (the first offset not done) is
//! the lowest in-flight offset, or `horizon`. A snapshot holds `horizon`, the in-flight offsets
//! with their delivery counts and, for an unresolved time seek, the time; restoring one makes
//! every in-flight event due at once (its lease belonged to a store that is gone) and skips the
//! offsets below `horizon` that are not in flight (they were acked).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use eventmesh_core::EventRecord;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{AckToken, StorageError};

/// What the log reader found at an offset.
// Short-lived (one per message read, moved straight into the buffer): boxing the record would
// only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    /// An event.
    Record(EventRecord),
    /// Not an event (a marker, a foreign message): only moves the position.
    Skip,
}

/// A delivery handed out or waiting for redelivery.
#[derive(Debug)]
struct Entry {
    /// `None` after a restore, until the reader has read the event again.
    record: Option<EventRecord>,
    count: u32,
    /// When the lease or the nack delay ends.
    due: Instant,
}

/// One delivery chosen by [`CursorState::fetch`].
#[derive(Debug)]
pub struct Handed {
    pub offset: u64,
    pub count: u32,
    pub record: EventRecord,
    pub token: AckToken,
}

/// The persisted form of a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The cursor it belongs to (`topic/group[/member]`), for stores that keep the snapshots of
    /// several cursors in one place: a snapshot of another cursor is ignored.
    #[serde(default)]
    pub cursor: String,
    /// Grows with every change.
    pub version: u64,
    /// The store instance that wrote it.
    pub writer: u64,
    /// Set by unsubscribe: the cursor no longer exists.
    #[serde(default)]
    pub deleted: bool,
    pub committed: u64,
    pub horizon: u64,
    /// An unresolved seek to a time (Unix ms): the cursor starts at the first event at or after.
    pub time: Option<i64>,
    /// In-flight offsets and their delivery counts.
    pub pending: Vec<(u64, u32)>,
}

/// Where the reader must (re)attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    Offset(u64),
    /// Unix milliseconds.
    Time(i64),
}

const TOKEN_LEN: usize = 3 + 8 + 8 + 4;

/// How a store's ack tokens look: a three-byte magic, then epoch, offset and delivery count.
/// Each store has its own magic, so a token handed to the wrong store is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCodec {
    magic: [u8; 3],
    store: &'static str,
}

impl TokenCodec {
    /// A codec with its magic and the store's name (for error messages).
    pub const fn new(magic: [u8; 3], store: &'static str) -> Self {
        TokenCodec { magic, store }
    }

    /// An ack token.
    pub fn encode(&self, epoch: u64, offset: u64, count: u32) -> AckToken {
        let mut b = BytesMut::with_capacity(TOKEN_LEN);
        b.put_slice(&self.magic);
        b.put_u64(epoch);
        b.put_u64(offset);
        b.put_u32(count);
        AckToken(b.freeze())
    }

    /// Reads a token: `(epoch, offset, count)`.
    pub fn decode(&self, t: &AckToken) -> Result<(u64, u64, u32), StorageError> {
        let b: &Bytes = &t.0;
        if b.len() != TOKEN_LEN || !b.starts_with(&self.magic) {
            return Err(StorageError::InvalidToken(format!(
                "not a {} store token ({} bytes)",
                self.store,
                b.len()
            )));
        }
        let mut r = &b[3..];
        Ok((r.get_u64(), r.get_u64(), r.get_u32()))
    }
}

/// A cursor's in-memory state.
#[derive(Debug)]
pub struct CursorState {
    codec: TokenCodec,
    /// Changes on every seek and restore; tokens of another epoch are ignored.
    pub epoch: u64,
    /// Changes on every seek: a reader of another generation is stale.
    pub reader_gen: u64,
    /// Grows with every change worth persisting.
    pub version: u64,
    horizon: u64,
    skip_below: u64,
    time: Option<i64>,
    /// The next offset the reader should deliver; `None` while attached by time.
    read_pos: Option<u64>,
    inflight: BTreeMap<u64, Entry>,
    fresh: VecDeque<(u64, Option<EventRecord>)>,
}

impl CursorState {
    /// A new cursor at `at`.
    pub fn new(at: Attach, codec: TokenCodec) -> Self {
        let mut s = CursorState {
            codec,
            epoch: rand::random(),
            reader_gen: 1,
            version: 1,
            horizon: 0,
            skip_below: 0,
            time: None,
            read_pos: Some(0),
            inflight: BTreeMap::new(),
            fresh: VecDeque::new(),
        };
        s.position(at);
        s
    }

    /// A cursor restored from its snapshot.
    pub fn restore(snap: &Snapshot, now: Instant, codec: TokenCodec) -> Self {
        let mut s = CursorState::new(
            match snap.time {
                Some(t) => Attach::Time(t),
                None => Attach::Offset(snap.committed),
            },
            codec,
        );
        s.version = snap.version;
        if snap.time.is_none() {
            s.horizon = snap.horizon;
            s.skip_below = snap.horizon;
            for &(offset, count) in &snap.pending {
                s.inflight.insert(
                    offset,
                    Entry {
                        record: None,
                        count,
                        due: now,
                    },
                );
            }
        }
        s
    }

    fn position(&mut self, at: Attach) {
        self.inflight.clear();
        self.fresh.clear();
        match at {
            Attach::Offset(o) => {
                self.horizon = o;
                self.skip_below = o;
                self.time = None;
                self.read_pos = Some(o);
            }
            Attach::Time(t) => {
                self.horizon = 0;
                self.skip_below = 0;
                self.time = Some(t);
                self.read_pos = None;
            }
        }
    }

    /// Moves the cursor; in-flight deliveries are forgotten and the reader must reattach.
    pub fn seek(&mut self, at: Attach) {
        self.position(at);
        self.epoch = self.epoch.wrapping_add(1);
        self.reader_gen += 1;
        self.version += 1;
    }

    /// Where a (re)started reader attaches.
    pub fn attach(&self) -> Attach {
        match (self.read_pos, self.time) {
            (Some(o), _) => Attach::Offset(o),
            (None, Some(t)) => Attach::Time(t),
            (None, None) => Attach::Offset(self.horizon),
        }
    }

    /// Skips the reader to `offset`: retention removed what was below it. Restored in-flight
    /// events below it that were not read again are gone.
    pub fn jump(&mut self, offset: u64) {
        if self.read_pos.is_some_and(|p| p >= offset) {
            return;
        }
        self.read_pos = Some(offset);
        if self.time.is_none() && self.horizon < offset {
            self.horizon = offset;
            self.skip_below = self.skip_below.max(offset);
        }
        self.inflight
            .retain(|o, e| *o >= offset || e.record.is_some());
        self.version += 1;
    }

    /// Events read ahead and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.fresh.len()
    }

    /// Takes what the reader found at `offset`. Returns whether fetchers may have work.
    pub fn on_read(&mut self, offset: u64, item: Item) -> bool {
        if self.read_pos.is_some_and(|p| offset < p) {
            return false; // Read again after a reattach.
        }
        self.read_pos = Some(offset + 1);
        if let Some(t) = self.time {
            match &item {
                Item::Record(r) if r.ingest_time_ms >= t => {
                    self.time = None;
                    self.horizon = offset;
                    self.skip_below = offset;
                    self.version += 1;
                }
                _ => return false,
            }
        }
        // Restored in-flight events below this offset that the log no longer has.
        let lost: Vec<u64> = self
            .inflight
            .range(..offset)
            .filter(|(_, e)| e.record.is_none())
            .map(|(o, _)| *o)
            .collect();
        for o in lost {
            self.inflight.remove(&o);
        }
        if offset < self.skip_below {
            if let Some(e) = self.inflight.get_mut(&offset) {
                match item {
                    Item::Record(r) if e.record.is_none() => {
                        e.record = Some(r);
                        return true;
                    }
                    Item::Record(_) => {}
                    Item::Skip => {
                        self.inflight.remove(&offset);
                    }
                }
            }
            return false;
        }
        match item {
            Item::Record(r) => self.fresh.push_back((offset, Some(r))),
            Item::Skip => self.fresh.push_back((offset, None)),
        }
        true
    }

    /// Hands out up to `max` events: due redeliveries first (in offset order), then new ones.
    pub fn fetch(&mut self, max: usize, lease: Duration, now: Instant) -> Vec<Handed> {
        let mut out = Vec::new();
        let due = now + lease;
        for (&offset, e) in self.inflight.iter_mut() {
            if out.len() >= max {
                break;
            }
            let Some(record) = &e.record else { continue };
            if e.due > now {
                continue;
            }
            e.count += 1;
            e.due = due;
            out.push(Handed {
                offset,
                count: e.count,
                record: record.clone(),
                token: self.codec.encode(self.epoch, offset, e.count),
            });
        }
        while out.len() < max {
            let Some((offset, item)) = self.fresh.pop_front() else {
                break;
            };
            self.horizon = offset + 1;
            self.version += 1;
            let Some(record) = item else { continue };
            out.push(Handed {
                offset,
                count: 1,
                record: record.clone(),
                token: self.codec.encode(self.epoch, offset, 1),
            });
            self.inflight.insert(
                offset,
                Entry {
                    record: Some(record),
                    count: 1,
                    due,
                },
            );
        }
        if !out.is_empty() {
            self.version += 1;
        }
        out
    }

    /// The earliest instant a redelivery becomes due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.inflight
            .values()
            .filter(|e| e.record.is_some())
            .map(|e| e.due)
            .min()
    }

    /// Marks deliveries done. Tokens of another epoch are ignored (the cursor was moved).
    pub fn ack(&mut self, tokens: &[(u64, u64, u32)]) {
        for &(epoch, offset, _) in tokens {
            if epoch == self.epoch && self.inflight.remove(&offset).is_some() {
                self.version += 1;
            }
        }
    }

    /// Gives a delivery back, due after `delay`; a token of an older delivery is ignored.
    pub fn nack(&mut self, t: (u64, u64, u32), delay: Duration, now: Instant) {
        self.set_due(t, now + delay);
    }

    /// Extends the lease of current deliveries.
    pub fn extend(&mut self, tokens: &[(u64, u64, u32)], lease: Duration, now: Instant) {
        for &t in tokens {
            self.set_due(t, now + lease);
        }
    }

    fn set_due(&mut self, (epoch, offset, count): (u64, u64, u32), due: Instant) {
        if epoch != self.epoch {
            return;
        }
        if let Some(e) = self.inflight.get_mut(&offset)
            && e.count == count
        {
            e.due = due;
        }
    }

    /// The first offset not done.
    pub fn committed(&self) -> u64 {
        self.inflight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.horizon)
            .min(self.horizon)
    }

    /// Events handed out and not acked.
    pub fn in_flight(&self) -> u64 {
        self.inflight.len() as u64
    }

    /// The persisted form.
    pub fn snapshot(&self, cursor: &str, writer: u64) -> Snapshot {
        Snapshot {
            cursor: cursor.to_owned(),
            version: self.version,
            writer,
            deleted: false,
            committed: self.committed(),
            horizon: self.horizon,
            time: self.time,
            pending: self.inflight.iter().map(|(o, e)| (*o, e.count)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::{CloudEvent, Topic};

    fn rec(i: usize) -> EventRecord {
        let topic = Topic::new("t").expect("topic");
        let mut r = EventRecord::new(topic, CloudEvent::new(format!("e{i}"), "/s", "k"));
        r.ingest_time_ms = 1_000 + i as i64;
        r
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const CODEC: TokenCodec = TokenCodec::new(*b"TS\x01", "test");

    fn parsed(h: &Handed) -> (u64, u64, u32) {
        CODEC.decode(&h.token).expect("token")
    }

    #[test]
    fn hands_out_in_order_and_redelivers_after_lease_and_nack() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Offset(0), CODEC);
        for i in 0..5 {
            s.on_read(i, Item::Record(rec(i as usize)));
        }
        let got = s.fetch(2, ms(100), now);
        assert_eq!(
            got.iter().map(|h| (h.offset, h.count)).collect::<Vec<_>>(),
            [(0, 1), (1, 1)]
        );
        assert_eq!(s.committed(), 0);
        s.nack(parsed(&got[0]), Duration::ZERO, now);
        s.ack(&[parsed(&got[1])]);
        let got = s.fetch(2, ms(100), now);
        assert_eq!(
            got.iter().map(|h| (h.offset, h.count)).collect::<Vec<_>>(),
            [(0, 2), (2, 1)]
        );
        // Nothing due before the lease ends; then both come back.
        assert!(
            s.fetch(10, ms(100), now + ms(50))
                .iter()
                .all(|h| h.count == 1)
        );
        let again = s.fetch(10, ms(100), now + ms(200));
        assert_eq!(
            again
                .iter()
                .map(|h| (h.offset, h.count))
                .collect::<Vec<_>>(),
            [(0, 3), (2, 2), (3, 2), (4, 2)]
        );
        s.ack(&again.iter().map(parsed).collect::<Vec<_>>());
        assert_eq!(s.committed(), 5);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn extension_and_stale_tokens() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Offset(10), CODEC);
        s.on_read(10, Item::Record(rec(0)));
        let d = s.fetch(1, ms(100), now);
        s.extend(&[parsed(&d[0])], ms(500), now + ms(50));
        assert!(s.fetch(1, ms(100), now + ms(200)).is_empty());
        let d2 = s.fetch(1, ms(100), now + ms(600));
        assert_eq!(d2[0].count, 2);
        // The old token cannot nack the newer delivery.
        s.nack(parsed(&d[0]), Duration::ZERO, now + ms(600));
        assert!(s.fetch(1, ms(100), now + ms(601)).is_empty());
        s.seek(Attach::Offset(0));
        s.ack(&[parsed(&d2[0])]); // Other epoch: ignored, nothing in flight anyway.
        assert_eq!(s.committed(), 0);
        assert!(
            CODEC
                .decode(&AckToken(Bytes::from_static(b"nope")))
                .is_err()
        );
        let other = TokenCodec::new(*b"XX\x01", "other").encode(1, 2, 3);
        assert!(CODEC.decode(&other).is_err());
    }

    #[test]
    fn restore_skips_acked_and_redelivers_pending_with_higher_counts() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Offset(0), CODEC);
        for i in 0..6 {
            s.on_read(i, Item::Record(rec(i as usize)));
        }
        s.on_read(6, Item::Skip);
        let d = s.fetch(4, ms(1000), now);
        s.ack(&[parsed(&d[0]), parsed(&d[2])]);
        let snap = s.snapshot("t/g", 7);
        assert_eq!((snap.committed, snap.horizon), (1, 4));
        let mut r = CursorState::restore(&snap, now, CODEC);
        assert_eq!(r.attach(), Attach::Offset(1));
        for i in 1..7 {
            r.on_read(
                i,
                if i == 6 {
                    Item::Skip
                } else {
                    Item::Record(rec(i as usize))
                },
            );
        }
        let got = r.fetch(10, ms(1000), now);
        assert_eq!(
            got.iter().map(|h| (h.offset, h.count)).collect::<Vec<_>>(),
            [(1, 2), (3, 2), (4, 1), (5, 1)]
        );
        r.ack(&got.iter().map(parsed).collect::<Vec<_>>());
        assert!(r.fetch(10, ms(1000), now).is_empty());
        assert_eq!(r.committed(), 7);
    }

    #[test]
    fn time_seek_starts_at_the_first_event_at_or_after_the_time() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Time(1_003), CODEC);
        assert_eq!(s.attach(), Attach::Time(1_003));
        for i in 0..6 {
            s.on_read(100 + i, Item::Record(rec(i as usize)));
        }
        let got = s.fetch(10, ms(1000), now);
        assert_eq!(
            got.iter().map(|h| h.offset).collect::<Vec<_>>(),
            [103, 104, 105]
        );
        assert_eq!(s.committed(), 103);
        assert_eq!(s.attach(), Attach::Offset(106));
    }
}
