//! The logic of `eventmesh bench`: load against a running mesh, in the benchmark's own process,
//! with the Rust SDK's TCP client.
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

/// What the direct side of a `--direct` run does (broker, storage, acks), for the report.
#[must_use]
pub fn direct_settings() -> &'static str {
    direct::Direct::settings()
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
    /// The HTTP protocol (not measured yet).
    Http,
    /// The gRPC protocol (not measured yet).
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
    /// The protocol (only TCP is implemented).
    pub transport: Transport,
    /// The mesh's address (`host:port`).
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
    /// Un-acknowledged publishes (or requests) per publisher connection.
    pub window: usize,
    /// The topic (default: a fresh `bench-<random>` topic per run).
    pub topic: Option<String>,
    /// How long to wait for deliveries still in flight after the publishers stop.
    pub drain: Duration,
    /// Show progress on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// A configuration with the defaults: `pubsub` over TCP on 127.0.0.1:10000, 128 bytes, 10 s,
    /// one publisher and one subscriber, unlimited rate, clustering, a window of 256.
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
            topic: None,
            drain: Duration::from_secs(10),
            progress: false,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`BenchError::Unsupported`] for a protocol not implemented yet, [`BenchError::Config`]
    /// for a bad value.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.transport != Transport::Tcp {
            return Err(BenchError::Unsupported(format!(
                "--protocol {} is not implemented yet; only tcp is",
                self.transport.as_str()
            )));
        }
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
        /// The SDK's error.
        #[source]
        source: eventmesh_sdk::Error,
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
