//! Latency histograms.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::BenchError;

/// The largest latency recorded exactly (larger ones are recorded as this).
const HIGHEST_NS: u64 = 60_000_000_000;

/// An HDR histogram of latencies in nanoseconds (3 significant digits, 1 ns to 60 s).
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    /// An empty histogram.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] if the histogram cannot be built (it always can with these
    /// bounds).
    pub fn new() -> Result<Self, BenchError> {
        Histogram::new_with_bounds(1, HIGHEST_NS, 3)
            .map(|histogram| Latency { histogram })
            .map_err(|e| BenchError::Histogram(e.to_string()))
    }

    /// Records one latency (saturating at 60 s; zero is recorded as 1 ns).
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(ns);
    }

    /// Records the same latency `count` times (a batch's events share their batch's latency).
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record_n(ns, count);
    }

    /// Adds every value of `other`.
    ///
    /// # Errors
    /// [`BenchError::Histogram`] if `other` holds values out of range (it cannot, with the
    /// same bounds).
    pub fn merge(&mut self, other: &Latency) -> Result<(), BenchError> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| BenchError::Histogram(e.to_string()))
    }

    /// Values recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at `quantile` (0.0–1.0) in microseconds (0 when empty).
    #[must_use]
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        ns_to_us(self.histogram.value_at_quantile(quantile))
    }

    /// The largest value in microseconds (0 when empty).
    #[must_use]
    pub fn max_us(&self) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        ns_to_us(self.histogram.max())
    }

    /// The mean in microseconds (0 when empty).
    #[must_use]
    pub fn mean_us(&self) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.mean() / 1000.0
    }
}

#[allow(clippy::cast_precision_loss)] // Nanosecond latencies below 2^53 are exact.
fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_hold_both_sides() {
        let mut a = Latency::new().unwrap();
        let mut b = Latency::new().unwrap();
        for us in 1..=900 {
            a.record(Duration::from_micros(us));
        }
        for us in 901..=1000 {
            b.record(Duration::from_micros(us));
        }
        b.record(Duration::from_secs(3600)); // saturates at 60 s
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 1001);
        let p50 = a.quantile_us(0.5);
        assert!((499.0..=502.0).contains(&p50), "{p50}");
        let p99 = a.quantile_us(0.99);
        assert!((989.0..=992.0).contains(&p99), "{p99}");
        let max = a.max_us();
        assert!((59_900_000.0..=60_100_000.0).contains(&max), "{max}");
    }

    #[test]
    fn empty_histograms_report_zero() {
        let mut a = Latency::new().unwrap();
        assert_eq!(a.quantile_us(0.99), 0.0);
        assert_eq!(a.max_us(), 0.0);
        assert_eq!(a.mean_us(), 0.0);
        a.record(Duration::ZERO);
        assert_eq!(a.count(), 1);
    }

    #[test]
    fn a_batch_latency_counts_once_per_event() {
        let mut a = Latency::new().unwrap();
        a.record_n(Duration::from_micros(250), 100);
        a.record_n(Duration::from_secs(3600), 1); // saturates at 60 s
        assert_eq!(a.count(), 101);
        let p50 = a.quantile_us(0.5);
        assert!((249.0..=251.0).contains(&p50), "{p50}");
    }
}
