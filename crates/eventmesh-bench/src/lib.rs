// rocketmq-rust's client futures are deeply nested (the RocketMQ store needs the same).
#![cfg_attr(feature = "rocketmq", recursion_limit = "512")]
//! The logic of `eventmesh bench`: load against a running mesh, in the benchmark's own process,
//! with the Rust SDK's clients: TCP, gRPC or HTTP ([`Transport`]; one module per protocol under
//! `clients/`).
//!
//! # Scenarios
//!
//! * `pub`: publishers only; latency is publish to the mesh's acknowledgement.
//! * `sub`: subscribers only, on `--topic`, for events published by someone else (for example
//!   another `eventmesh bench pub --topic T`); latency is publish to delivery.
//! * `pubsub`: both, end to end; latency is publish to delivery.
//! * `request-reply`: SYNC subscribers echo each request; latency is request to reply.
//! * `fanout`: `pubsub` with a BROADCASTING group, so every subscriber gets every event.
//!
//! # Protocols
//!
//! * **TCP**: one SDK [`eventmesh_sdk::Client`] per publisher or subscriber connection.
//! * **gRPC**: one channel (HTTP/2 connection) per publisher, `publish` or `batchPublish` (with
//!   `batch` > 1) or `requestReply`; each subscriber is a `subscribeStream` with explicit acks.
//! * **HTTP**: one keep-alive connection pool per publisher (HTTP/1.1 carries one call at a
//!   time, so a window of `w` opens up to `w` connections), request codes 104 (publish), 102
//!   (batch) or 101 (request); each subscriber is a webhook served by this process on
//!   127.0.0.1 (a free port) and subscribed with code 206; it answers each push once counted.
//!
//! # Batches
//!
//! With `batch` = N (gRPC and HTTP; not for request-reply), each publish call carries N events
//! taken from the schedule together. A batch is due when its last event is (so the N events share
//! one send time and one timestamp), every event of it is counted, and its latency (to the ack,
//! or to each delivery) is recorded once per event. `window` then counts calls, so up to
//! `window × batch` events are in flight per publisher.
//!
//! # How it measures
//!
//! * **Acked.** Every publish awaits the mesh's acknowledgement (pipelined up to `window` per
//!   publisher connection), and every push is acknowledged by the subscriber's handler.
//! * **Open loop.** With a target rate, send times are fixed in advance (ticket `i` is due at
//!   `start + i / rate`, shared by all publishers), and latency is measured from the *scheduled*
//!   time, so a stalled mesh cannot hide its stall by slowing the sender (no coordinated
//!   omission). Without a rate each ticket is sent as soon as a window slot is free, and
//!   latency is measured from that moment.
//! * **Timestamp in the event.** The data starts with the send time (nanoseconds since the Unix
//!   epoch, 20 ASCII digits), padded to `size` bytes, so a subscriber in another process on the
//!   same machine measures the same way. The data stays UTF-8, as `eventmeshmessage` requires.
//! * Latencies go into HDR histograms (3 significant digits, 1 ns to 60 s), one per task,
//!   merged at the end.
//!
//! # Invariants worth naming
//!
//! * Every channel is bounded (the SDK's); in-flight publishes are capped by `window` per
//!   publisher.
//! * Tokio's timer has a 1 ms granularity: at rates above 1,000/s several tickets fall due per
//!   tick and are sent together, and measured latencies include up to 1 ms of that pacing delay.

mod clients;
mod direct;
mod histogram;
mod pacing;
mod progress;
mod report;
mod run;

use std::time::Duration;

pub use histogram::Latency;
pub use pacing::Pacer;
pub use report::Report;
pub use run::{run, run_direct};

/// What the direct side of the latest [`run_direct`] in this process did (broker, durability,
/// acks), for the report; empty before any.
#[must_use]
pub fn direct_settings() -> String {
    run::last_direct_settings()
}

/// What the benchmark does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Publishers only (publish-to-ack latency).
    Pub,
    /// Subscribers only, on a topic published to by someone else.
    Sub,
    /// Publishers and subscribers, end to end.
    PubSub,
    /// Requests answered by SYNC subscribers.
    RequestReply,
    /// Publishers and a BROADCASTING group: each subscriber gets every event.
    Fanout,
}

impl Scenario {
    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Scenario::Pub => "pub",
            Scenario::Sub => "sub",
            Scenario::PubSub => "pubsub",
            Scenario::RequestReply => "request-reply",
            Scenario::Fanout => "fanout",
        }
    }
}

/// The client protocol to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The EventMesh TCP protocol.
    Tcp,
    /// The HTTP protocol (request codes; webhook subscribers).
    Http,
    /// The gRPC protocol (the v1 CloudEvent services; stream subscribers).
    Grpc,
}

impl Transport {
    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
    }

    /// The mesh's default address for this protocol: 127.0.0.1 with port 10000 (TCP), 10105
    /// (HTTP) or 10205 (gRPC).
    #[must_use]
    pub const fn default_addr(self) -> &'static str {
        match self {
            Transport::Tcp => "127.0.0.1:10000",
            Transport::Http => "127.0.0.1:10105",
            Transport::Grpc => "127.0.0.1:10205",
        }
    }

    /// Whether one call can publish several events (gRPC `batchPublish`, HTTP code 102).
    #[must_use]
    pub const fn can_batch(self) -> bool {
        !matches!(self, Transport::Tcp)
    }
}

/// How the subscribers' group shares the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Each event goes to one subscriber.
    Clustering,
    /// Each subscriber gets every event.
    Broadcasting,
}

impl Mode {
    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Clustering => "clustering",
            Mode::Broadcasting => "broadcasting",
        }
    }
}

/// When the publishers stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// After this many events in all.
    Count(u64),
    /// After this long.
    Duration(Duration),
}

/// The smallest event data: the 20-digit timestamp.
pub const MIN_SIZE: usize = pacing::STAMP_LEN;

/// A benchmark run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// The protocol.
    pub transport: Transport,
    /// The mesh's address for that protocol (`host:port`; for gRPC and HTTP also
    /// `http://host:port`).
    pub addr: String,
    /// Event data size in bytes (at least [`MIN_SIZE`]).
    pub size: usize,
    /// When to stop publishing (subscribers stop after the same count, or duration).
    pub limit: Limit,
    /// Publisher connections.
    pub publishers: usize,
    /// Subscriber connections.
    pub subscribers: usize,
    /// Target rate in events per second for all publishers together (`None`: as fast as the
    /// window allows).
    pub rate: Option<u64>,
    /// The subscribers' group mode.
    pub mode: Mode,
    /// Un-acknowledged publish calls (or requests) per publisher connection.
    pub window: usize,
    /// Events per publish call (1: no batching; more needs gRPC or HTTP).
    pub batch: usize,
    /// The topic (default: a fresh `bench-<random>` topic per run).
    pub topic: Option<String>,
    /// How long to wait for deliveries still in flight after the publishers stop.
    pub drain: Duration,
    /// Show progress on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// A configuration with the defaults: over TCP on 127.0.0.1:10000, 128 bytes, 10 s, one
    /// publisher and one subscriber, unlimited rate, clustering, a window of 256, no batching.
    #[must_use]
    pub fn new(scenario: Scenario) -> Self {
        BenchConfig {
            scenario,
            transport: Transport::Tcp,
            addr: "127.0.0.1:10000".into(),
            size: 128,
            limit: Limit::Duration(Duration::from_secs(10)),
            publishers: 1,
            subscribers: 1,
            rate: None,
            mode: Mode::Clustering,
            window: 256,
            batch: 1,
            topic: None,
            drain: Duration::from_secs(10),
            progress: false,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`BenchError::Config`] for a bad value or a combination that cannot run (a batch over
    /// TCP, for request-reply or for `sub`).
    pub fn validate(&self) -> Result<(), BenchError> {
        self.validate_batch()?;
        if self.size < MIN_SIZE {
            return Err(BenchError::Config(format!(
                "--size must be at least {MIN_SIZE} bytes (the send timestamp)"
            )));
        }
        let needs_pub = self.scenario != Scenario::Sub;
        let needs_sub = self.scenario != Scenario::Pub;
        if needs_pub && self.publishers == 0 {
            return Err(BenchError::Config("--publishers must be at least 1".into()));
        }
        if needs_sub && self.subscribers == 0 {
            return Err(BenchError::Config(
                "--subscribers must be at least 1".into(),
            ));
        }
        if self.window == 0 {
            return Err(BenchError::Config("--window must be at least 1".into()));
        }
        if self.rate == Some(0) {
            return Err(BenchError::Config("--rate must be at least 1".into()));
        }
        match self.limit {
            Limit::Count(0) => return Err(BenchError::Config("--count must be at least 1".into())),
            Limit::Duration(d) if d.is_zero() => {
                return Err(BenchError::Config("--duration must not be zero".into()));
            }
            _ => {}
        }
        if self.scenario == Scenario::Sub && self.topic.is_none() {
            return Err(BenchError::Config(
                "the sub scenario needs --topic (the topic another process publishes to)".into(),
            ));
        }
        Ok(())
    }

    fn validate_batch(&self) -> Result<(), BenchError> {
        if self.batch == 0 {
            return Err(BenchError::Config("--batch must be at least 1".into()));
        }
        if self.batch == 1 {
            return Ok(());
        }
        let why = match self.scenario {
            Scenario::RequestReply => Some(
                "request-reply sends one request per call and waits for its reply; use --window for more requests in flight",
            ),
            Scenario::Sub => Some("the sub scenario has no publishers"),
            _ if !self.transport.can_batch() => Some(
                "the TCP protocol publishes one event per message; use --protocol grpc or http",
            ),
            _ => None,
        };
        match why {
            Some(why) => Err(BenchError::Config(format!(
                "--batch {} cannot be used here: {why}",
                self.batch
            ))),
            None => Ok(()),
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The protocol (or scenario) is not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// A bad setting.
    #[error("invalid benchmark settings: {0}")]
    Config(String),
    /// A client could not connect or subscribe.
    #[error("{context}: {source}")]
    Client {
        /// What was being done.
        context: String,
        /// The SDK's error (of its TCP, gRPC or HTTP client).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A latency histogram could not be built or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// The broker of a `--direct` run refused something.
    #[error("direct broker: {0}")]
    Direct(String),
    /// A benchmark task failed.
    #[error("a benchmark task failed: {0}")]
    Task(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scenario: Scenario, transport: Transport, batch: usize) -> BenchConfig {
        let mut c = BenchConfig::new(scenario);
        c.transport = transport;
        c.addr = transport.default_addr().into();
        c.batch = batch;
        if scenario == Scenario::Sub {
            c.topic = Some("T".into());
        }
        c
    }

    fn refusal(c: &BenchConfig) -> String {
        match c.validate() {
            Err(BenchError::Config(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_protocol_runs_every_scenario_without_batches() {
        for transport in [Transport::Tcp, Transport::Grpc, Transport::Http] {
            for scenario in [
                Scenario::Pub,
                Scenario::Sub,
                Scenario::PubSub,
                Scenario::RequestReply,
                Scenario::Fanout,
            ] {
                let c = config(scenario, transport, 1);
                assert!(c.validate().is_ok(), "{scenario:?} over {transport:?}");
            }
        }
    }

    #[test]
    fn batches_are_for_grpc_and_http_publishers() {
        for transport in [Transport::Grpc, Transport::Http] {
            for scenario in [Scenario::Pub, Scenario::PubSub, Scenario::Fanout] {
                assert!(config(scenario, transport, 100).validate().is_ok());
            }
            let why = refusal(&config(Scenario::RequestReply, transport, 10));
            assert!(
                why.contains("--batch 10") && why.contains("request-reply"),
                "{why}"
            );
            let why = refusal(&config(Scenario::Sub, transport, 10));
            assert!(why.contains("no publishers"), "{why}");
        }
        let why = refusal(&config(Scenario::Pub, Transport::Tcp, 10));
        assert!(why.contains("TCP") && why.contains("grpc or http"), "{why}");
        let why = refusal(&config(Scenario::PubSub, Transport::Grpc, 0));
        assert!(why.contains("--batch must be at least 1"), "{why}");
    }

    #[test]
    fn each_protocol_has_its_default_port() {
        assert_eq!(Transport::Tcp.default_addr(), "127.0.0.1:10000");
        assert_eq!(Transport::Http.default_addr(), "127.0.0.1:10105");
        assert_eq!(Transport::Grpc.default_addr(), "127.0.0.1:10205");
        assert_eq!(BenchConfig::new(Scenario::Pub).addr, "127.0.0.1:10000");
    }
}
