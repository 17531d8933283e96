//! One cursor's state, kept in memory by the store that serves it and persisted as a snapshot
//! message in the topic's state topic. Pure logic: no I/O, so every rule here is unit-tested.
//! (The same state machine as the RabbitMQ store's cursors: positions are queue offsets.)
//!
//! Positions are queue offsets. Below `horizon` every offset was handed out (or is not an
//! event); those still in `inflight` are not done. `committed` (the first offset not done) is
//! the lowest in-flight offset, or `horizon`. A snapshot holds `horizon`, the in-flight offsets
//! with their delivery counts and, for an unresolved time seek, the time; restoring one makes
//! every in-flight event due at once (its lease belonged to a store that is gone) and skips the
//! offsets below `horizon` that are not in flight (they were acked).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use eventmesh_core::EventRecord;
use eventmesh_storage::{AckToken, StorageError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What the queue reader found at an offset.
// Short-lived (one per message read, moved straight into the buffer): boxing the record would
// only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Item {
    /// An event.
    Record(EventRecord),
    /// Not an event (a marker, a foreign message): only moves the position.
    Skip,
}

/// A delivery handed out or waiting for redelivery.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `None` after a restore, until the reader has read the event again.
    record: Option<EventRecord>,
    count: u32,
    /// When the lease or the nack delay ends.
    due: Instant,
}

/// One delivery chosen by [`CursorState::fetch`].
#[derive(Debug)]
pub(crate) struct Handed {
    pub(crate) offset: u64,
    pub(crate) count: u32,
    pub(crate) record: EventRecord,
    pub(crate) token: AckToken,
}

/// The persisted form of a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// The cursor it belongs to (`topic/group[/member]`): a snapshot of another cursor is
    /// ignored.
    pub(crate) cursor: String,
    /// Grows with every change.
    pub(crate) version: u64,
    /// The store instance that wrote it.
    pub(crate) writer: u64,
    /// Set by unsubscribe: the cursor no longer exists.
    #[serde(default)]
    pub(crate) deleted: bool,
    pub(crate) committed: u64,
    pub(crate) horizon: u64,
    /// An unresolved seek to a time (Unix ms): the cursor starts at the first event at or after.
    pub(crate) time: Option<i64>,
    /// In-flight offsets and their delivery counts.
    pub(crate) pending: Vec<(u64, u32)>,
}

/// Where the reader must (re)attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    Offset(u64),
    /// Unix milliseconds.
    Time(i64),
}

const TOKEN_MAGIC: &[u8; 3] = b"RM\x01";
const TOKEN_LEN: usize = 3 + 8 + 8 + 4;

/// A cursor's in-memory state.
#[derive(Debug)]
pub(crate) struct CursorState {
    /// Changes on every seek and restore; tokens of another epoch are ignored.
    pub(crate) epoch: u64,
    /// Changes on every seek: a reader of another generation is stale.
    pub(crate) reader_gen: u64,
    /// Grows with every change worth persisting.
    pub(crate) version: u64,
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
    pub(crate) fn new(at: Attach) -> Self {
        let mut s = CursorState {
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
    pub(crate) fn restore(snap: &Snapshot, now: Instant) -> Self {
        let mut s = CursorState::new(match snap.time {
            Some(t) => Attach::Time(t),
            None => Attach::Offset(snap.committed),
        });
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
    pub(crate) fn seek(&mut self, at: Attach) {
        self.position(at);
        self.epoch = self.epoch.wrapping_add(1);
        self.reader_gen += 1;
        self.version += 1;
    }

    /// Where a (re)started reader attaches.
    pub(crate) fn attach(&self) -> Attach {
        match (self.read_pos, self.time) {
            (Some(o), _) => Attach::Offset(o),
            (None, Some(t)) => Attach::Time(t),
            (None, None) => Attach::Offset(self.horizon),
        }
    }

    /// Skips the reader to `offset`: retention removed what was below it. Restored in-flight
    /// events below it that were not read again are gone.
    pub(crate) fn jump(&mut self, offset: u64) {
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
    pub(crate) fn buffered(&self) -> usize {
        self.fresh.len()
    }

    /// Takes what the reader found at `offset`. Returns whether fetchers may have work.
    pub(crate) fn on_read(&mut self, offset: u64, item: Item) -> bool {
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
        // Restored in-flight events below this offset that the queue no longer has.
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
    pub(crate) fn fetch(&mut self, max: usize, lease: Duration, now: Instant) -> Vec<Handed> {
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
                token: token(self.epoch, offset, e.count),
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
                token: token(self.epoch, offset, 1),
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
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.inflight
            .values()
            .filter(|e| e.record.is_some())
            .map(|e| e.due)
            .min()
    }

    /// Marks deliveries done. Tokens of another epoch are ignored (the cursor was moved).
    pub(crate) fn ack(&mut self, tokens: &[(u64, u64, u32)]) {
        for &(epoch, offset, _) in tokens {
            if epoch == self.epoch && self.inflight.remove(&offset).is_some() {
                self.version += 1;
            }
        }
    }

    /// Gives a delivery back, due after `delay`; a token of an older delivery is ignored.
    pub(crate) fn nack(&mut self, t: (u64, u64, u32), delay: Duration, now: Instant) {
        self.set_due(t, now + delay);
    }

    /// Extends the lease of current deliveries.
    pub(crate) fn extend(&mut self, tokens: &[(u64, u64, u32)], lease: Duration, now: Instant) {
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
    pub(crate) fn committed(&self) -> u64 {
        self.inflight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.horizon)
            .min(self.horizon)
    }

    /// Events handed out and not acked.
    pub(crate) fn in_flight(&self) -> u64 {
        self.inflight.len() as u64
    }

    /// The persisted form.
    pub(crate) fn snapshot(&self, cursor: &str, writer: u64) -> Snapshot {
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

/// An ack token: magic, epoch, offset, delivery count.
pub(crate) fn token(epoch: u64, offset: u64, count: u32) -> AckToken {
    let mut b = BytesMut::with_capacity(TOKEN_LEN);
    b.put_slice(TOKEN_MAGIC);
    b.put_u64(epoch);
    b.put_u64(offset);
    b.put_u32(count);
    AckToken(b.freeze())
}

/// Reads a token: `(epoch, offset, count)`.
pub(crate) fn parse_token(t: &AckToken) -> Result<(u64, u64, u32), StorageError> {
    let b: &Bytes = &t.0;
    if b.len() != TOKEN_LEN || !b.starts_with(TOKEN_MAGIC) {
        return Err(StorageError::InvalidToken(format!(
            "not a RocketMQ store token ({} bytes)",
            b.len()
        )));
    }
    let mut r = &b[3..];
    Ok((r.get_u64(), r.get_u64(), r.get_u32()))
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

    fn parsed(h: &Handed) -> (u64, u64, u32) {
        parse_token(&h.token).expect("token")
    }

    #[test]
    fn hands_out_in_order_and_redelivers_after_lease_and_nack() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Offset(0));
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
        let mut s = CursorState::new(Attach::Offset(10));
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
        assert!(parse_token(&AckToken(Bytes::from_static(b"nope"))).is_err());
    }

    #[test]
    fn restore_skips_acked_and_redelivers_pending_with_higher_counts() {
        let now = Instant::now();
        let mut s = CursorState::new(Attach::Offset(0));
        for i in 0..6 {
            s.on_read(i, Item::Record(rec(i as usize)));
        }
        s.on_read(6, Item::Skip);
        let d = s.fetch(4, ms(1000), now);
        s.ack(&[parsed(&d[0]), parsed(&d[2])]);
        let snap = s.snapshot("t/g", 7);
        assert_eq!((snap.committed, snap.horizon), (1, 4));
        let mut r = CursorState::restore(&snap, now);
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
        let mut s = CursorState::new(Attach::Time(1_003));
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
