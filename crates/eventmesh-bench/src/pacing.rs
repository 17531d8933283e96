//! Open-loop pacing: tickets with due times fixed in advance, and the timestamp in the data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::Limit;

/// Digits of the send timestamp at the start of the data.
pub(crate) const STAMP_LEN: usize = 20;

/// One event to send: its index and when it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) index: u64,
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

    /// The next ticket, or `None` once the count is reached or the duration is over.
    pub(crate) fn next_ticket(&self) -> Option<Ticket> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if let Limit::Count(n) = self.limit
            && index >= n
        {
            return None;
        }
        let due = match self.rate {
            Some(rate) => self.start + Self::offset(index, rate),
            None => Instant::now(),
        };
        if let Limit::Duration(d) = self.limit
            && due.saturating_duration_since(self.start) >= d
        {
            return None;
        }
        Some(Ticket { index, due })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_due_on_the_rate_schedule() {
        assert_eq!(Pacer::offset(0, 10_000), Duration::ZERO);
        assert_eq!(Pacer::offset(1, 10_000), Duration::from_micros(100));
        assert_eq!(Pacer::offset(25_000, 10_000), Duration::from_millis(2500));
        assert_eq!(Pacer::offset(1, 3), Duration::from_nanos(333_333_333));

        let pacer = Pacer::new(Some(1000), Limit::Count(3));
        let t: Vec<_> = std::iter::from_fn(|| pacer.next_ticket()).collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].due - t[0].due, Duration::from_millis(2));
        assert_eq!(pacer.issued(), 3);
    }

    #[test]
    fn a_duration_limits_the_scheduled_tickets() {
        // 100/s for 50 ms: tickets due at 0, 10, 20, 30 and 40 ms, whenever they are taken.
        let pacer = Pacer::new(Some(100), Limit::Duration(Duration::from_millis(50)));
        let n = std::iter::from_fn(|| pacer.next_ticket()).count();
        assert_eq!(n, 5);
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
