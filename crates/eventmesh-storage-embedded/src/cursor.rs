//! A cursor's state machine, its journal operations, snapshots and ack tokens.
//!
//! Per partition a cursor has a *committed* position (the first sequence number not done), a
//! *next* position (the first never delivered), and between them every event is either acked
//! (the acked-above-committed set) or in flight (delivery count, and when it becomes due for
//! redelivery: the lease's end or the nack's delay). Every change is an [`Op`]; live operations
//! apply ops and journal them, recovery replays them, so both paths run the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use eventmesh_storage::{AckToken, StorageError};
use tokio::time::Instant;

use crate::codec::{Reader, put_i64, put_u32, put_u64};

/// An event fetched and not yet acked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// Deliveries so far.
    pub(crate) count: u32,
    /// When it becomes due for redelivery.
    pub(crate) due: Instant,
    /// For a nacked event: the wall-clock time (Unix ms) before which it is not redelivered,
    /// persisted so a restart keeps the delay. 0 for a leased event.
    pub(crate) not_before_ms: i64,
}

/// A cursor's state in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartState {
    pub(crate) committed: u64,
    pub(crate) next: u64,
    pub(crate) acked: BTreeSet<u64>,
    pub(crate) inflight: BTreeMap<u64, InFlight>,
    timers: BTreeSet<(Instant, u64)>,
}

impl PartState {
    pub(crate) fn at(pos: u64) -> Self {
        PartState {
            committed: pos,
            next: pos,
            ..Default::default()
        }
    }

    pub(crate) fn set_due(
        &mut self,
        seq: u64,
        due: Instant,
        not_before_ms: i64,
        count: Option<u32>,
    ) {
        if let Some(f) = self.inflight.get_mut(&seq) {
            self.timers.remove(&(f.due, seq));
            f.due = due;
            f.not_before_ms = not_before_ms;
            if let Some(c) = count {
                f.count = c;
            }
            self.timers.insert((due, seq));
        }
    }

    fn advance(&mut self) {
        while self.committed < self.next && self.acked.remove(&self.committed) {
            self.committed += 1;
        }
    }

    /// The earliest redelivery deadline.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// In-flight events due at `now`, earliest first.
    pub(crate) fn due(&self, now: Instant, max: usize) -> Vec<u64> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(max)
            .map(|(_, s)| *s)
            .collect()
    }
}

/// A change to a cursor, as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sequence numbers `from..to` delivered for the first time (count 1); `next = to`.
    Deliver { part: u32, from: u64, to: u64 },
    /// An in-flight event delivered again, now with `count` deliveries.
    Redeliver { part: u32, seq: u64, count: u32 },
    /// Events done.
    Ack { part: u32, seqs: Vec<u64> },
    /// An in-flight event given back, not to be redelivered before `not_before_ms`.
    Nack {
        part: u32,
        seq: u64,
        not_before_ms: i64,
    },
    /// The cursor moved: everything is forgotten and both positions set to `pos`.
    Seek { epoch: u32, part: u32, pos: u64 },
    /// Retention moved the log start to `start`: positions below it move up.
    Skip { part: u32, start: u64 },
}

const OP_DELIVER: u8 = 1;
const OP_REDELIVER: u8 = 2;
const OP_ACK: u8 = 3;
const OP_NACK: u8 = 4;
const OP_SEEK: u8 = 5;
const OP_SKIP: u8 = 6;

impl Op {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Deliver { part, from, to } => {
                out.push(OP_DELIVER);
                put_u32(out, *part);
                put_u64(out, *from);
                put_u64(out, *to);
            }
            Op::Redeliver { part, seq, count } => {
                out.push(OP_REDELIVER);
                put_u32(out, *part);
                put_u64(out, *seq);
                put_u32(out, *count);
            }
            Op::Ack { part, seqs } => {
                out.push(OP_ACK);
                put_u32(out, *part);
                put_u32(out, u32::try_from(seqs.len()).unwrap_or(u32::MAX));
                for s in seqs {
                    put_u64(out, *s);
                }
            }
            Op::Nack {
                part,
                seq,
                not_before_ms,
            } => {
                out.push(OP_NACK);
                put_u32(out, *part);
                put_u64(out, *seq);
                put_i64(out, *not_before_ms);
            }
            Op::Seek { epoch, part, pos } => {
                out.push(OP_SEEK);
                put_u32(out, *epoch);
                put_u32(out, *part);
                put_u64(out, *pos);
            }
            Op::Skip { part, start } => {
                out.push(OP_SKIP);
                put_u32(out, *part);
                put_u64(out, *start);
            }
        }
    }

    pub(crate) fn decode(body: &[u8]) -> Option<Op> {
        let mut r = Reader::new(body);
        let op = match r.u8()? {
            OP_DELIVER => Op::Deliver {
                part: r.u32()?,
                from: r.u64()?,
                to: r.u64()?,
            },
            OP_REDELIVER => Op::Redeliver {
                part: r.u32()?,
                seq: r.u64()?,
                count: r.u32()?,
            },
            OP_ACK => {
                let part = r.u32()?;
                let n = r.u32()? as usize;
                if n > r.remaining() / 8 {
                    return None;
                }
                let mut seqs = Vec::with_capacity(n);
                for _ in 0..n {
                    seqs.push(r.u64()?);
                }
                Op::Ack { part, seqs }
            }
            OP_NACK => Op::Nack {
                part: r.u32()?,
                seq: r.u64()?,
                not_before_ms: r.i64()?,
            },
            OP_SEEK => Op::Seek {
                epoch: r.u32()?,
                part: r.u32()?,
                pos: r.u64()?,
            },
            OP_SKIP => Op::Skip {
                part: r.u32()?,
                start: r.u64()?,
            },
            _ => return None,
        };
        r.is_empty().then_some(op)
    }
}

/// The clock an op is applied with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) now_ms: i64,
    /// The lease of deliveries (zero on replay: recovered in-flight events are due at once).
    pub(crate) lease: Duration,
}

impl Clock {
    fn due_at(&self, not_before_ms: i64) -> Instant {
        let wait = u64::try_from(not_before_ms.saturating_sub(self.now_ms)).unwrap_or(0);
        self.now + Duration::from_millis(wait)
    }
}

/// A cursor's whole state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CursorState {
    /// Random, chosen at creation; tokens carry it.
    pub(crate) id: u64,
    /// Bumped by every seek; tokens of older epochs are stale.
    pub(crate) epoch: u32,
    pub(crate) parts: Vec<PartState>,
}

impl CursorState {
    pub(crate) fn new(id: u64, positions: &[u64]) -> Self {
        CursorState {
            id,
            epoch: 0,
            parts: positions.iter().map(|p| PartState::at(*p)).collect(),
        }
    }

    fn part(&mut self, p: u32) -> Option<&mut PartState> {
        self.parts.get_mut(p as usize)
    }

    /// Applies one op. Ops naming an unknown partition or sequence number are ignored, so replay
    /// is total.
    pub(crate) fn apply(&mut self, op: &Op, clock: &Clock) {
        match op {
            Op::Deliver { part, from, to } => {
                let Some(ps) = self.part(*part) else { return };
                if *from > ps.next {
                    ps.apply_skip(*from);
                }
                let due = clock.now + clock.lease;
                for seq in (*from).max(ps.next)..*to {
                    ps.inflight.insert(
                        seq,
                        InFlight {
                            count: 1,
                            due,
                            not_before_ms: 0,
                        },
                    );
                    ps.timers.insert((due, seq));
                }
                ps.next = ps.next.max(*to);
            }
            Op::Redeliver { part, seq, count } => {
                let Some(ps) = self.part(*part) else { return };
                ps.set_due(*seq, clock.now + clock.lease, 0, Some(*count));
            }
            Op::Ack { part, seqs } => {
                let Some(ps) = self.part(*part) else { return };
                for seq in seqs {
                    if *seq < ps.committed || *seq >= ps.next {
                        continue;
                    }
                    if let Some(f) = ps.inflight.remove(seq) {
                        ps.timers.remove(&(f.due, *seq));
                    }
                    ps.acked.insert(*seq);
                }
                ps.advance();
            }
            Op::Nack {
                part,
                seq,
                not_before_ms,
            } => {
                let Some(ps) = self.part(*part) else { return };
                ps.set_due(*seq, clock.due_at(*not_before_ms), *not_before_ms, None);
            }
            Op::Seek { epoch, part, pos } => {
                self.epoch = *epoch;
                if let Some(ps) = self.part(*part) {
                    *ps = PartState::at(*pos);
                }
            }
            Op::Skip { part, start } => {
                if let Some(ps) = self.part(*part) {
                    ps.apply_skip(*start);
                }
            }
        }
    }

    /// Rebuilds timers after a restart: every in-flight event is due now, or when its nack delay
    /// ends.
    pub(crate) fn reset_timers(&mut self, clock: &Clock) {
        for ps in &mut self.parts {
            ps.timers.clear();
            let seqs: Vec<(u64, i64)> = ps
                .inflight
                .iter()
                .map(|(s, f)| (*s, f.not_before_ms))
                .collect();
            for (seq, nb) in seqs {
                let due = clock.due_at(nb);
                if let Some(f) = ps.inflight.get_mut(&seq) {
                    f.due = due;
                }
                ps.timers.insert((due, seq));
            }
        }
    }

    /// The snapshot body (identity and journal generation are added by the caller).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.id);
        put_u32(out, self.epoch);
        put_u32(out, u32::try_from(self.parts.len()).unwrap_or(u32::MAX));
        for ps in &self.parts {
            put_u64(out, ps.committed);
            put_u64(out, ps.next);
            put_u64(out, ps.acked.len() as u64);
            for s in &ps.acked {
                put_u64(out, *s);
            }
            put_u64(out, ps.inflight.len() as u64);
            for (s, f) in &ps.inflight {
                put_u64(out, *s);
                put_u32(out, f.count);
                put_i64(out, f.not_before_ms);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, clock: &Clock) -> Option<Self> {
        let id = r.u64()?;
        let epoch = r.u32()?;
        let n = r.u32()? as usize;
        // Every cursor has at least partition 0.
        if n == 0 || n > r.remaining() / 32 {
            return None;
        }
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let mut ps = PartState::at(0);
            ps.committed = r.u64()?;
            ps.next = r.u64()?;
            let na = usize::try_from(r.u64()?).ok()?;
            if na > r.remaining() / 8 || ps.next < ps.committed {
                return None;
            }
            for _ in 0..na {
                ps.acked.insert(r.u64()?);
            }
            let ni = usize::try_from(r.u64()?).ok()?;
            if ni > r.remaining() / 20 {
                return None;
            }
            for _ in 0..ni {
                let seq = r.u64()?;
                let count = r.u32()?;
                let not_before_ms = r.i64()?;
                ps.inflight.insert(
                    seq,
                    InFlight {
                        count,
                        due: clock.now,
                        not_before_ms,
                    },
                );
            }
            parts.push(ps);
        }
        let mut st = CursorState { id, epoch, parts };
        st.reset_timers(clock);
        Some(st)
    }
}

impl PartState {
    fn apply_skip(&mut self, start: u64) {
        if start <= self.committed {
            return;
        }
        self.committed = start;
        self.next = self.next.max(start);
        self.acked = self.acked.split_off(&start);
        let keep = self.inflight.split_off(&start);
        for (seq, f) in std::mem::replace(&mut self.inflight, keep) {
            self.timers.remove(&(f.due, seq));
        }
        self.advance();
    }
}

/// What an ack token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) cursor_id: u64,
    pub(crate) epoch: u32,
    pub(crate) part: u32,
    pub(crate) seq: u64,
    pub(crate) count: u32,
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 4 + 4 + 8 + 4 + 4;

impl Token {
    pub(crate) fn encode(&self) -> AckToken {
        let mut b = Vec::with_capacity(TOKEN_LEN);
        b.push(TOKEN_VERSION);
        put_u64(&mut b, self.cursor_id);
        put_u32(&mut b, self.epoch);
        put_u32(&mut b, self.part);
        put_u64(&mut b, self.seq);
        put_u32(&mut b, self.count);
        let crc = crc32c::crc32c(&b);
        put_u32(&mut b, crc);
        AckToken(Bytes::from(b))
    }

    pub(crate) fn decode(t: &AckToken) -> Result<Token, StorageError> {
        let b = &t.0[..];
        let bad = |why: &str| {
            StorageError::InvalidToken(format!("{why} (not a token of the embedded store)"))
        };
        if b.len() != TOKEN_LEN {
            return Err(bad(&format!(
                "token is {} bytes long, expected {TOKEN_LEN}",
                b.len()
            )));
        }
        let (body, crc) = b.split_at(TOKEN_LEN - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(bad("token checksum mismatch"));
        }
        let mut r = Reader::new(body);
        if r.u8() != Some(TOKEN_VERSION) {
            return Err(bad("unknown token version"));
        }
        let fields = (|| {
            Some(Token {
                cursor_id: r.u64()?,
                epoch: r.u32()?,
                part: r.u32()?,
                seq: r.u64()?,
                count: r.u32()?,
            })
        })();
        fields.ok_or_else(|| bad("truncated token"))
    }
}

/// How a valid token relates to the cursor's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    /// The token's delivery is of the current epoch.
    Current,
    /// The cursor was sought since: the delivery no longer exists.
    Stale,
}

impl CursorState {
    /// Checks that a token was issued by this cursor for an event it delivered.
    pub(crate) fn check(&self, t: &Token, cursor: &str) -> Result<TokenCheck, StorageError> {
        if t.cursor_id != self.id {
            return Err(StorageError::InvalidToken(format!(
                "token was not issued for cursor `{cursor}`"
            )));
        }
        let Some(ps) = self.parts.get(t.part as usize) else {
            return Err(StorageError::InvalidToken(format!(
                "token names partition {} which does not exist",
                t.part
            )));
        };
        if t.epoch != self.epoch {
            return Ok(TokenCheck::Stale);
        }
        if t.seq >= ps.next || t.count == 0 {
            return Err(StorageError::InvalidToken(format!(
                "token names event {}:{} which cursor `{cursor}` never delivered",
                t.part, t.seq
            )));
        }
        Ok(TokenCheck::Current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(lease_ms: u64) -> Clock {
        Clock {
            now: Instant::now(),
            now_ms: 1_000_000,
            lease: Duration::from_millis(lease_ms),
        }
    }

    #[test]
    fn ops_round_trip() {
        let ops = [
            Op::Deliver {
                part: 0,
                from: 1,
                to: 9,
            },
            Op::Redeliver {
                part: 0,
                seq: 3,
                count: 7,
            },
            Op::Ack {
                part: 0,
                seqs: vec![1, 2, 5],
            },
            Op::Nack {
                part: 0,
                seq: 4,
                not_before_ms: -5,
            },
            Op::Seek {
                epoch: 3,
                part: 0,
                pos: 77,
            },
            Op::Skip { part: 0, start: 12 },
        ];
        for op in ops {
            let mut b = Vec::new();
            op.encode(&mut b);
            assert_eq!(Op::decode(&b), Some(op.clone()));
            assert_eq!(Op::decode(&b[..b.len() - 1]), None);
        }
        assert_eq!(Op::decode(&[99]), None);
    }

    #[test]
    fn acks_advance_the_committed_position() {
        let c = clock(1000);
        let mut st = CursorState::new(1, &[10]);
        st.apply(
            &Op::Deliver {
                part: 0,
                from: 10,
                to: 15,
            },
            &c,
        );
        st.apply(
            &Op::Ack {
                part: 0,
                seqs: vec![11, 12],
            },
            &c,
        );
        assert_eq!(st.parts[0].committed, 10);
        st.apply(
            &Op::Ack {
                part: 0,
                seqs: vec![10],
            },
            &c,
        );
        assert_eq!(st.parts[0].committed, 13);
        assert_eq!(st.parts[0].inflight.len(), 2);
        st.apply(
            &Op::Ack {
                part: 0,
                seqs: vec![10, 99],
            },
            &c,
        );
        assert_eq!(st.parts[0].committed, 13);
        st.apply(&Op::Skip { part: 0, start: 14 }, &c);
        assert_eq!((st.parts[0].committed, st.parts[0].next), (14, 15));
        assert_eq!(
            st.parts[0].inflight.keys().copied().collect::<Vec<_>>(),
            [14]
        );
    }

    #[test]
    fn snapshot_round_trips_and_makes_inflight_due() {
        let c = clock(60_000);
        let mut st = CursorState::new(42, &[0]);
        st.apply(
            &Op::Deliver {
                part: 0,
                from: 0,
                to: 5,
            },
            &c,
        );
        st.apply(
            &Op::Ack {
                part: 0,
                seqs: vec![1, 3],
            },
            &c,
        );
        st.apply(
            &Op::Redeliver {
                part: 0,
                seq: 0,
                count: 2,
            },
            &c,
        );
        st.apply(
            &Op::Nack {
                part: 0,
                seq: 4,
                not_before_ms: c.now_ms + 5000,
            },
            &c,
        );
        let mut b = Vec::new();
        st.encode(&mut b);
        let later = clock(0);
        let back = CursorState::decode(&mut Reader::new(&b), &later).unwrap();
        assert_eq!(back.parts[0].acked, st.parts[0].acked);
        assert_eq!(back.parts[0].inflight[&0].count, 2);
        assert_eq!(back.parts[0].due(later.now, 10), vec![0, 2]);
        assert_eq!(back.parts[0].inflight[&4].not_before_ms, c.now_ms + 5000);
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let t = Token {
            cursor_id: 9,
            epoch: 2,
            part: 0,
            seq: 77,
            count: 3,
        };
        assert_eq!(Token::decode(&t.encode()).unwrap(), t);
        let mut bad = t.encode().0.to_vec();
        bad[10] ^= 1;
        assert!(matches!(
            Token::decode(&AckToken(Bytes::from(bad))),
            Err(StorageError::InvalidToken(_))
        ));
        for junk in [&b""[..], b"x", &[0u8; 33]] {
            assert!(matches!(
                Token::decode(&AckToken(Bytes::copy_from_slice(junk))),
                Err(StorageError::InvalidToken(_))
            ));
        }
    }
}
