//! The result of a run: throughput and latency percentiles, as text or one JSON object.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{BenchConfig, Latency};

/// What a run measured.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// The scenario (`pub`, `sub`, `pubsub`, `request-reply`, `fanout`).
    pub scenario: &'static str,
    /// The protocol (`tcp`, `grpc`, `http`; `nats-jetstream` for a `--direct` run).
    pub protocol: &'static str,
    /// The mesh's address.
    pub addr: String,
    /// The topic.
    pub topic: String,
    /// Event data size in bytes.
    pub size: usize,
    /// Publisher connections.
    pub publishers: usize,
    /// Subscriber connections.
    pub subscribers: usize,
    /// The subscribers' group mode (`broadcasting` for fanout, `clustering` for
    /// request-reply, whatever `--mode` says).
    pub mode: &'static str,
    /// The target rate (events/s), if any.
    pub rate: Option<u64>,
    /// Un-acknowledged publish calls per publisher.
    pub window: usize,
    /// Events per publish call (1: no batching).
    pub batch: usize,
    /// Events (or requests) acknowledged by the mesh.
    pub published: u64,
    /// Events delivered to subscribers (replies received, for request-reply).
    pub delivered: u64,
    /// Events (or requests) whose publish failed (every event of a failed batch).
    pub errors: u64,
    /// Seconds from the start to the last event counted.
    pub elapsed_secs: f64,
    /// What the latency measures.
    pub latency: &'static str,
    /// Events counted per second (deliveries end to end, acks for `pub`, replies for
    /// request-reply).
    pub events_per_sec: f64,
    /// The same in MiB of event data per second.
    pub mib_per_sec: f64,
    /// Latency percentiles and extremes in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Latencies recorded.
    pub samples: u64,
}

/// What a run counted, before it becomes a [`Report`].
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) topic: String,
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Latency,
}

impl Report {
    pub(crate) fn new(config: &BenchConfig, tally: &Tally) -> Report {
        let counted = match config.scenario {
            crate::Scenario::Pub => tally.published,
            _ => tally.delivered,
        };
        let secs = tally.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // Counts below 2^53 are exact.
        let events_per_sec = if secs > 0.0 {
            counted as f64 / secs
        } else {
            0.0
        };
        #[allow(clippy::cast_precision_loss)]
        let mib_per_sec = events_per_sec * config.size as f64 / (1024.0 * 1024.0);
        let latency = match config.scenario {
            crate::Scenario::Pub => "publish-to-ack",
            crate::Scenario::RequestReply => "request-to-reply",
            _ => "publish-to-delivery",
        };
        let h = &tally.latency;
        Report {
            scenario: config.scenario.as_str(),
            protocol: config.transport.as_str(),
            addr: config.addr.clone(),
            topic: tally.topic.clone(),
            size: config.size,
            publishers: if config.scenario == crate::Scenario::Sub {
                0
            } else {
                config.publishers
            },
            subscribers: if config.scenario == crate::Scenario::Pub {
                0
            } else {
                config.subscribers
            },
            mode: crate::run::effective_mode(config).as_str(),
            rate: config.rate,
            window: config.window,
            batch: config.batch,
            published: tally.published,
            delivered: tally.delivered,
            errors: tally.errors,
            elapsed_secs: round3(secs),
            latency,
            events_per_sec: round3(events_per_sec),
            mib_per_sec: round3(mib_per_sec),
            p50_us: h.quantile_us(0.5),
            p90_us: h.quantile_us(0.9),
            p99_us: h.quantile_us(0.99),
            p999_us: h.quantile_us(0.999),
            max_us: h.max_us(),
            mean_us: round3(h.mean_us()),
            samples: h.count(),
        }
    }

    /// The report as one line of JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        // A struct of numbers and strings always serializes.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .rate
            .map_or_else(|| "unlimited".to_owned(), |r| format!("{r}/s"));
        writeln!(
            f,
            "{} over {} to {} (topic {}): {} B events, {} publisher(s), {} subscriber(s), {}, rate {}, window {}, batch {}",
            self.scenario,
            self.protocol,
            self.addr,
            self.topic,
            self.size,
            self.publishers,
            self.subscribers,
            self.mode,
            rate,
            self.window,
            self.batch
        )?;
        writeln!(
            f,
            "  published {}  delivered {}  errors {}  in {:.3} s",
            self.published, self.delivered, self.errors, self.elapsed_secs
        )?;
        writeln!(
            f,
            "  throughput  {:.0} events/s  {:.2} MiB/s",
            self.events_per_sec, self.mib_per_sec
        )?;
        write!(
            f,
            "  {} latency (us, {} samples)  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
            self.latency,
            self.samples,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.mean_us
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;

    #[test]
    fn json_has_the_published_fields() {
        let mut latency = Latency::new().unwrap();
        for us in 1..=1000 {
            latency.record(Duration::from_micros(us));
        }
        let mut config = BenchConfig::new(Scenario::PubSub);
        config.transport = crate::Transport::Grpc;
        config.batch = 10;
        let tally = Tally {
            topic: "T".into(),
            published: 1000,
            delivered: 1000,
            errors: 0,
            elapsed: Duration::from_secs(2),
            latency,
        };
        let report = Report::new(&config, &tally);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["events_per_sec"], 500.0);
        assert_eq!(v["delivered"], 1000);
        assert_eq!(v["scenario"], "pubsub");
        assert_eq!(v["rate"], serde_json::Value::Null);
        assert_eq!(v["protocol"], "grpc");
        assert_eq!(v["batch"], 10);
        for field in [
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "mib_per_sec",
        ] {
            assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field}: {v}");
        }
        let text = report.to_string();
        assert!(text.contains("500 events/s"), "{text}");
        assert!(
            text.contains("over grpc") && text.contains("batch 10"),
            "{text}"
        );
    }
}
