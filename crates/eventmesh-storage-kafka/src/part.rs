//! One partition of a cursor: what was handed out, what is done, and how that is written into
//! the metadata of the group's committed offset.
//!
//! Kafka keeps one committed offset per (group, partition). The store commits the lowest offset
//! not yet done (the *floor*: the lowest offset in flight, or the next one to read), and writes
//! into the commit's metadata string what a new owner of the partition needs so that a crash or
//! a restart neither hands out again an event acked out of order nor forgets how often an
//! event was delivered:
//!
//! * `until`: every offset from the floor below it has been handed out at least once;
//! * the offsets at or above the floor already acked (as runs);
//! * the offsets delivered more than once, with their counts.
//!
//! The format is `e1` followed by URL-safe base64 (no padding) of unsigned LEB128 integers:
//! `until - floor`, the number of acked runs, each run as (gap from the end of the previous run
//! or the floor, length), the number of counts, each as (gap from the previous counted offset
//! plus one, or the floor, count). A metadata string that does not fit `metadata_max_bytes`
//! loses its counts first, then its last acked runs: the events concerned are then delivered
//! again after a crash (at least once, never lost).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventmesh_core::EventRecord;
use tokio::time::Instant;

/// One event handed out and not yet acked.
pub(crate) struct Held {
    /// The event.
    pub(crate) record: EventRecord,
    /// Deliveries so far, the current one included.
    pub(crate) count: u32,
    /// When it is due again: the end of its lease, or of its nack delay.
    pub(crate) due: Instant,
}

/// The state of one partition of one cursor on this node.
pub(crate) struct Part {
    /// The next offset to take from Kafka.
    position: u64,
    /// Offsets at or above the floor that are done (acked, or skipped as foreign).
    done: BTreeSet<u64>,
    /// Offsets handed out and not done.
    pub(crate) held: BTreeMap<u64, Held>,
    /// From the commit this partition was loaded from: offsets below this were handed out.
    prior_until: u64,
    /// From that commit: delivery counts above 1.
    prior_counts: HashMap<u64, u32>,
    /// The last state (floor, metadata) written to the cursor's state topic, if any.
    pub(crate) saved: Option<(u64, String)>,
}

impl Part {
    /// The state of a partition whose group committed `committed` with `metadata`.
    pub(crate) fn load(committed: u64, metadata: &str) -> Part {
        let mut p = Part {
            position: committed,
            done: BTreeSet::new(),
            held: BTreeMap::new(),
            prior_until: committed,
            prior_counts: HashMap::new(),
            saved: None,
        };
        if let Some(m) = decode(committed, metadata) {
            p.prior_until = m.until;
            p.done = m.done;
            p.prior_counts = m.counts;
        }
        p
    }

    /// The lowest offset not done: what is committed.
    pub(crate) fn floor(&self) -> u64 {
        self.held
            .first_key_value()
            .map_or(self.position, |(o, _)| (*o).min(self.position))
    }

    /// Events held (handed out and not done).
    pub(crate) fn in_flight(&self) -> u64 {
        self.held.len() as u64
    }

    /// Done offsets at or above the floor (acked out of order).
    pub(crate) fn done_above(&self) -> u64 {
        self.done.len() as u64
    }

    /// An event at `offset` was read from Kafka. Returns its delivery count if it is to be
    /// handed out, `None` if it is done already (or was read before).
    pub(crate) fn take(&mut self, offset: u64) -> Option<u32> {
        if offset < self.position {
            return None;
        }
        self.position = offset + 1;
        if self.done.contains(&offset) {
            self.prune();
            return None;
        }
        let before = if let Some(c) = self.prior_counts.remove(&offset) {
            c
        } else if offset < self.prior_until {
            1
        } else {
            0
        };
        Some(before.saturating_add(1))
    }

    /// An event read from Kafka that is not to be delivered (not an event of this topic).
    pub(crate) fn skip(&mut self, offset: u64) {
        if offset >= self.position {
            self.position = offset + 1;
        }
        self.done.insert(offset);
        self.prune();
    }

    /// Marks `offset` done. Returns whether anything changed.
    pub(crate) fn ack(&mut self, offset: u64) -> bool {
        let was_held = self.held.remove(&offset).is_some();
        if !was_held && (offset < self.floor() || (offset < self.position)) {
            // Done already: below the floor, or read and not held.
            return false;
        }
        self.done.insert(offset);
        self.prune();
        true
    }

    fn prune(&mut self) {
        let floor = self.floor();
        while let Some(&o) = self.done.first() {
            if o >= floor {
                break;
            }
            self.done.remove(&o);
        }
    }

    /// The metadata string to commit with [`Part::floor`], at most `max_bytes` long.
    pub(crate) fn metadata(&self, max_bytes: usize) -> String {
        let floor = self.floor();
        let until = self.position.max(self.prior_until);
        let mut counts: BTreeMap<u64, u32> = self
            .prior_counts
            .iter()
            .filter(|(o, c)| **o >= self.position && **c > 1)
            .map(|(o, c)| (*o, *c))
            .collect();
        counts.extend(
            self.held
                .iter()
                .filter(|(_, h)| h.count > 1)
                .map(|(o, h)| (*o, h.count)),
        );
        let runs = runs(self.done.iter().copied().filter(|o| *o >= floor));
        encode(floor, until, &runs, &counts, max_bytes)
    }
}

/// Whether a state (floor, metadata) must go to the state topic after `saved` was the last one
/// written: when it differs, unless both say nothing beyond their floors (a state with empty
/// metadata is used only at its own floor, where an empty one changes nothing).
pub(crate) fn state_changed(saved: Option<&(u64, String)>, floor: u64, metadata: &str) -> bool {
    match saved {
        Some((f, m)) if *f == floor && m == metadata => false,
        Some((_, m)) => !(metadata.is_empty() && m.is_empty()),
        None => !metadata.is_empty(),
    }
}

/// Consecutive offsets as (start, length).
fn runs(offsets: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for o in offsets {
        match out.last_mut() {
            Some((s, l)) if *s + *l == o => *l += 1,
            _ => out.push((o, 1)),
        }
    }
    out
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn get(input: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *input.get(*i)?;
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

const MAGIC: &str = "e1";

fn encode_all(floor: u64, until: u64, runs: &[(u64, u64)], counts: &BTreeMap<u64, u32>) -> String {
    let mut b = Vec::new();
    put(&mut b, until.saturating_sub(floor));
    put(&mut b, runs.len() as u64);
    let mut at = floor;
    for (s, l) in runs {
        put(&mut b, s - at);
        put(&mut b, *l);
        at = s + l;
    }
    put(&mut b, counts.len() as u64);
    let mut at = floor;
    for (o, c) in counts.range(floor..) {
        put(&mut b, o - at);
        put(&mut b, u64::from(*c));
        at = o + 1;
    }
    format!("{MAGIC}{}", URL_SAFE_NO_PAD.encode(b))
}

fn encode(
    floor: u64,
    until: u64,
    runs: &[(u64, u64)],
    counts: &BTreeMap<u64, u32>,
    max_bytes: usize,
) -> String {
    if until <= floor && runs.is_empty() && counts.is_empty() {
        return String::new();
    }
    let full = encode_all(floor, until, runs, counts);
    if full.len() <= max_bytes {
        return full;
    }
    tracing::warn!(
        message = "Kafka commit metadata too long; after a crash some events are delivered again.",
        bytes = full.len(),
        max_bytes
    );
    let none = BTreeMap::new();
    let mut keep = runs.len();
    loop {
        let s = encode_all(floor, until, &runs[..keep], &none);
        if s.len() <= max_bytes || keep == 0 {
            return if s.len() <= max_bytes {
                s
            } else {
                String::new()
            };
        }
        keep /= 2;
    }
}

struct Decoded {
    until: u64,
    done: BTreeSet<u64>,
    counts: HashMap<u64, u32>,
}

fn decode(floor: u64, metadata: &str) -> Option<Decoded> {
    let b = URL_SAFE_NO_PAD.decode(metadata.strip_prefix(MAGIC)?).ok()?;
    let mut i = 0;
    let until = floor.checked_add(get(&b, &mut i)?)?;
    let n = get(&b, &mut i)?;
    let mut done = BTreeSet::new();
    let mut at = floor;
    for _ in 0..n {
        let start = at.checked_add(get(&b, &mut i)?)?;
        let len = get(&b, &mut i)?;
        // A run longer than a million offsets is not something this store writes.
        if len > 1_000_000 {
            return None;
        }
        let end = start.checked_add(len)?;
        done.extend(start..end);
        at = end;
    }
    let n = get(&b, &mut i)?;
    let mut counts = HashMap::new();
    let mut at = floor;
    for _ in 0..n {
        let o = at.checked_add(get(&b, &mut i)?)?;
        let c = u32::try_from(get(&b, &mut i)?).ok()?;
        counts.insert(o, c);
        at = o + 1;
    }
    (i == b.len()).then_some(Decoded {
        until,
        done,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::{CloudEvent, Topic};

    #[test]
    fn a_state_is_written_when_it_changed_and_says_something() {
        let s = |f: u64, m: &str| Some((f, m.to_owned()));
        // Nothing written yet: only a state with something beyond its floor.
        assert!(!state_changed(None, 5, ""));
        assert!(state_changed(None, 5, "e1AA"));
        // The same state again: nothing.
        assert!(!state_changed(s(5, "e1AA").as_ref(), 5, "e1AA"));
        // A different floor or metadata: written.
        assert!(state_changed(s(5, "e1AA").as_ref(), 6, "e1AA"));
        assert!(state_changed(s(5, "e1AA").as_ref(), 5, "e1AB"));
        // Back to empty after a non-empty one: written, so the old one is not applied.
        assert!(state_changed(s(5, "e1AA").as_ref(), 9, ""));
        // Empty after empty (another floor): nothing; an empty state is used only at its floor.
        assert!(!state_changed(s(5, "").as_ref(), 9, ""));
    }

    fn held(p: &mut Part, o: u64) {
        let c = p.take(o).unwrap();
        let t = Topic::new("t").unwrap();
        let record = EventRecord::new(t, CloudEvent::new("id", "/s", "ty"));
        p.held.insert(
            o,
            Held {
                record,
                count: c,
                due: Instant::now(),
            },
        );
    }

    #[test]
    fn floor_stays_at_the_lowest_unacked_event() {
        let mut p = Part::load(10, "");
        for o in 10..20 {
            held(&mut p, o);
        }
        assert_eq!(p.floor(), 10);
        assert!(p.ack(12));
        assert!(p.ack(11));
        assert_eq!(p.floor(), 10, "10 is not acked: the floor must not pass it");
        assert!(p.ack(10));
        assert_eq!(p.floor(), 13);
        assert!(!p.ack(10), "acking a done event changes nothing");
        for o in 13..20 {
            p.ack(o);
        }
        assert_eq!(p.floor(), 20);
        assert_eq!(p.done_above(), 0);
        assert_eq!(p.metadata(4000), "");
    }

    #[test]
    fn a_reload_skips_acked_events_and_counts_deliveries() {
        let mut p = Part::load(0, "");
        for o in 0..100 {
            held(&mut p, o);
        }
        for o in (0..100).filter(|o| o % 3 == 1) {
            p.ack(o);
        }
        // Event 5 was delivered three times.
        p.held.get_mut(&5).unwrap().count = 3;
        let floor = p.floor();
        let meta = p.metadata(4000);
        assert_eq!(floor, 0);
        let mut q = Part::load(floor, &meta);
        let mut seen = Vec::new();
        for o in 0..120 {
            if let Some(c) = q.take(o) {
                seen.push((o, c));
            }
        }
        assert!(
            seen.iter().all(|(o, _)| o % 3 != 1 || *o >= 100),
            "{seen:?}"
        );
        assert_eq!(seen.iter().find(|(o, _)| *o == 5).unwrap().1, 4);
        assert_eq!(seen.iter().find(|(o, _)| *o == 6).unwrap().1, 2);
        assert_eq!(seen.iter().find(|(o, _)| *o == 100).unwrap().1, 1);
        assert_eq!(seen.len(), 100 - 33 + 20);
    }

    #[test]
    fn long_metadata_is_cut_to_the_limit() {
        let mut p = Part::load(0, "");
        for o in 0..5000 {
            held(&mut p, o);
        }
        for o in (1..5000).step_by(2) {
            p.ack(o);
        }
        let meta = p.metadata(300);
        assert!(meta.len() <= 300 && !meta.is_empty(), "{}", meta.len());
        let mut q = Part::load(0, &meta);
        assert_eq!(q.take(0), Some(2));
        assert_eq!(q.take(1), None, "the first acked runs are kept");
        assert_eq!(
            q.take(4999),
            Some(2),
            "a dropped acked run is delivered again"
        );
    }

    #[test]
    fn garbage_metadata_is_ignored() {
        for m in ["", "x", "e1!!", "e1AAAA", "e1_____"] {
            let mut p = Part::load(7, m);
            assert_eq!(p.take(7), Some(1), "{m}");
        }
    }
}
