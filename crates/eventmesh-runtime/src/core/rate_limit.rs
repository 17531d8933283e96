//! Token buckets for publish rates (global and per session).
//!
//! A bucket holds up to one second of tokens (`rate`), refills continuously, and takes a batch
//! all or nothing, so a refused batch leaves the bucket untouched. Time is Tokio's clock, so tests
//! with a paused clock control refills.

use parking_lot::Mutex;
use tokio::time::Instant;

/// A token bucket; `rate` 0 means unlimited.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            state: Mutex::new((f64::from(rate), Instant::now())),
        }
    }

    /// Whether the bucket limits anything.
    pub(crate) fn is_unlimited(&self) -> bool {
        self.rate == 0.0
    }

    /// Takes `n` tokens, or none when fewer are available. A batch larger than the burst (one
    /// second's worth) can never pass, and is refused like any other over-limit batch.
    pub(crate) fn try_take(&self, n: usize) -> bool {
        if self.is_unlimited() {
            return true;
        }
        let mut st = self.state.lock();
        let now = Instant::now();
        let (tokens, last) = *st;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        let want = n as f64;
        if tokens >= want {
            *st = (tokens - want, now);
            true
        } else {
            *st = (tokens, now);
            false
        }
    }

    /// Gives back tokens taken by a batch that was refused later (by another bucket).
    pub(crate) fn refund(&self, n: usize) {
        if self.is_unlimited() {
            return;
        }
        let mut st = self.state.lock();
        st.0 = (st.0 + n as f64).min(self.rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_at_its_rate() {
        let b = TokenBucket::new(10);
        assert!(b.try_take(10));
        assert!(!b.try_take(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.try_take(5));
        assert!(!b.try_take(1));
        b.refund(3);
        assert!(b.try_take(3));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!b.try_take(11), "never more than one second's burst");
        assert!(TokenBucket::new(0).try_take(1_000_000));
    }
}
