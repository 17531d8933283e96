//! Open-loop pacing: tickets with due times fixed in advance, and the timestamp in the data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::Limit;

/// Digits of the send timestamp at the start of the data.
pub(crate) const STAMP_LEN: usize = 20;

/// Consecutive events sent together (one event without `--batch`): the first index, how many,
/// and when the batch is due, which is when its last event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) first: u64,
    pub(crate) len: u64,
    pub(crate) due: Instant,
}

/// Hands out tickets to every sender of a run. With a rate, ticket `i` is due at
/// `start + i / rate` whenever it is taken; without one it is due when taken.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    start_wall_ns: u64,
    rate: Option<u64>,
    limit: Limit,
    next: AtomicU64,
}

impl Pacer {
    /// A pacer starting now.
    #[must_use]
    pub fn new(rate: Option<u64>, limit: Limit) -> Self {
        let start_wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Pacer {
            start: Instant::now(),
            start_wall_ns,
            rate,
            limit,
            next: AtomicU64::new(0),
        }
    }

    /// A pacer starting now on this pacer's clock (so stamps of both compare exactly).
    #[must_use]
    pub fn restart(&self, rate: Option<u64>, limit: Limit) -> Self {
        let start = Instant::now();
        Pacer {
            start,
            start_wall_ns: self.wall_ns(start),
            rate,
            limit,
            next: AtomicU64::new(0),
        }
    }

    /// When the run started.
    #[must_use]
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When ticket `index` is due at `rate` events per second.
    #[must_use]
    pub fn offset(index: u64, rate: u64) -> Duration {
        let ns = u128::from(index) * 1_000_000_000 / u128::from(rate.max(1));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The next `size` tickets as one batch (fewer at the end of a count or a duration), or
    /// `None` once the count is reached or the duration is over. The batch is due when its last
    /// ticket is: with a rate, ticket `i` is due at `start + i / rate`; without one, now.
    pub(crate) fn next_batch(&self, size: u64) -> Option<Batch> {
        let size = size.max(1);
        let first = self.next.fetch_add(size, Ordering::Relaxed);
        let end = match (self.limit, self.rate) {
            (Limit::Count(n), _) => n,
            (Limit::Duration(d), Some(rate)) => Self::scheduled_within(d, rate),
            (Limit::Duration(d), None) => {
                if self.start.elapsed() >= d {
                    return None;
                }
                u64::MAX
            }
        };
        if first >= end {
            return None;
        }
        let len = size.min(end - first);
        let due = match self.rate {
            Some(rate) => self.start + Self::offset(first + len - 1, rate),
            None => Instant::now(),
        };
        Some(Batch { first, len, due })
    }

    /// How many tickets fall due within `d` at `rate` (those with `offset(i) < d`).
    fn scheduled_within(d: Duration, rate: u64) -> u64 {
        let scaled = d.as_nanos() * u128::from(rate.max(1));
        u64::try_from(scaled.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }

    /// Tickets handed out so far (the count, once it is reached).
    #[must_use]
    pub fn issued(&self) -> u64 {
        let n = self.next.load(Ordering::Relaxed);
        match self.limit {
            Limit::Count(c) => n.min(c),
            Limit::Duration(_) => n,
        }
    }

    /// The wall-clock time of `at` in nanoseconds since the Unix epoch, on this pacer's clock
    /// (the wall clock at the start plus the monotonic time since).
    #[must_use]
    pub fn wall_ns(&self, at: Instant) -> u64 {
        let since =
            u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        self.start_wall_ns.saturating_add(since)
    }

    /// The time from the stamp at the start of `data` until now, if `data` has one.
    #[must_use]
    pub fn latency_of(&self, data: &[u8]) -> Option<Duration> {
        let stamp = parse_stamp(data)?;
        Some(Duration::from_nanos(
            self.wall_ns(Instant::now()).saturating_sub(stamp),
        ))
    }
}

/// Event data of `size` bytes (at least [`STAMP_LEN`]) starting with `stamp_ns` in 20 digits.
pub(crate) fn payload(stamp_ns: u64, size: usize) -> Bytes {
    let mut data = format!("{stamp_ns:020}").into_bytes();
    data.resize(size.max(STAMP_LEN), b'x');
    Bytes::from(data)
}

/// The stamp at the start of `data`.
pub(crate) fn parse_stamp(data: &[u8]) -> Option<u64> {
    let digits = data.get(..STAMP_LEN)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// When a batch leaves and what its latency counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Due later: wait for it, then count from the moment it actually leaves. The timer wakes
    /// the sender up to a tick (1 ms in Tokio) after the due time; that lateness is the
    /// tool's, not the mesh's, and must not be in the figures.
    WaitUntil(Instant),
    /// Due already (no rate, or the sender is behind schedule because the mesh held it back):
    /// leave at once and count from the due time, so a slow mesh is not forgiven (no
    /// coordinated omission).
    Now(Instant),
}

impl Departure {
    /// The departure of a batch due at `due`, seen at `now`. A sleep until a time that has
    /// come would still wait for the next timer tick, which is why due batches do not sleep.
    pub(crate) fn of(due: Instant, now: Instant) -> Departure {
        if due > now {
            Departure::WaitUntil(due)
        } else {
            Departure::Now(due)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_batches_leave_at_once_and_count_from_their_due_time() {
        let now = Instant::now();
        let past = now - Duration::from_millis(3);
        let later = now + Duration::from_millis(3);
        assert_eq!(Departure::of(past, now), Departure::Now(past));
        assert_eq!(Departure::of(now, now), Departure::Now(now));
        assert_eq!(Departure::of(later, now), Departure::WaitUntil(later));
    }

    #[test]
    fn tickets_are_due_on_the_rate_schedule() {
        assert_eq!(Pacer::offset(0, 10_000), Duration::ZERO);
        assert_eq!(Pacer::offset(1, 10_000), Duration::from_micros(100));
        assert_eq!(Pacer::offset(25_000, 10_000), Duration::from_millis(2500));
        assert_eq!(Pacer::offset(1, 3), Duration::from_nanos(333_333_333));

        let pacer = Pacer::new(Some(1000), Limit::Count(3));
        let t: Vec<_> = std::iter::from_fn(|| pacer.next_batch(1)).collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].due - t[0].due, Duration::from_millis(2));
        assert_eq!(pacer.issued(), 3);
    }

    #[test]
    fn a_duration_limits_the_scheduled_tickets() {
        // 100/s for 50 ms: tickets due at 0, 10, 20, 30 and 40 ms, whenever they are taken.
        let pacer = Pacer::new(Some(100), Limit::Duration(Duration::from_millis(50)));
        let n = std::iter::from_fn(|| pacer.next_batch(1)).count();
        assert_eq!(n, 5);
        assert_eq!(Pacer::scheduled_within(Duration::from_millis(1100), 3), 4);
        assert_eq!(Pacer::scheduled_within(Duration::from_secs(1), 3), 3);
    }

    #[test]
    fn batches_take_consecutive_tickets_and_are_due_with_their_last() {
        // 1,000/s, 25 events in batches of 10: 0..10, 10..20, then the last 5.
        let pacer = Pacer::new(Some(1000), Limit::Count(25));
        let b: Vec<_> = std::iter::from_fn(|| pacer.next_batch(10)).collect();
        let spans: Vec<_> = b.iter().map(|b| (b.first, b.len)).collect();
        assert_eq!(spans, [(0, 10), (10, 10), (20, 5)]);
        assert_eq!(b[0].due - pacer.start(), Duration::from_millis(9));
        assert_eq!(b[2].due - pacer.start(), Duration::from_millis(24));

        // 1,000/s for 25 ms: 25 tickets (due at 0..=24 ms), cut the same way.
        let pacer = Pacer::new(Some(1000), Limit::Duration(Duration::from_millis(25)));
        let lens: Vec<_> = std::iter::from_fn(|| pacer.next_batch(10))
            .map(|b| b.len)
            .collect();
        assert_eq!(lens, [10, 10, 5]);
    }

    #[test]
    fn stamps_round_trip_through_the_data() {
        let data = payload(1_700_000_000_123_456_789, 128);
        assert_eq!(data.len(), 128);
        assert!(std::str::from_utf8(&data).is_ok());
        assert_eq!(parse_stamp(&data), Some(1_700_000_000_123_456_789));
        assert_eq!(payload(7, 1).len(), STAMP_LEN);
        assert_eq!(parse_stamp(b"12"), None);
        assert_eq!(parse_stamp(b"abcdefghijklmnopqrstuvwxyz"), None);

        let pacer = Pacer::new(None, Limit::Count(1));
        let stamp = pacer.wall_ns(pacer.start());
        let latency = pacer.latency_of(&payload(stamp, 64)).unwrap();
        assert!(latency < Duration::from_secs(5));
    }
}
