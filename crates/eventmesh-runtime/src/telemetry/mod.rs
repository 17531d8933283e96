//! Telemetry: the Prometheus recorder, the tracing subscriber, and the metrics each subsystem
//! emits.
//!
//! Metrics are emitted only through the small typed helpers in the per-subsystem modules
//! ([`node`], [`storage`], [`admin`], [`tcp`]), so names and labels stay consistent. The Prometheus
//! recorder is installed without its own HTTP listener: `/metrics` on the admin listener renders
//! it ([`recorder::install`], [`PrometheusHandle::render`]).
//!
//! [`PrometheusHandle::render`]: metrics_exporter_prometheus::PrometheusHandle::render

pub mod admin;
pub mod logging;
pub mod node;
pub mod recorder;
pub mod storage;
pub mod tcp;

pub use logging::init_logging;
pub use recorder::install as install_recorder;

/// Failures while setting up telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `log.level` is not a valid filter.
    #[error("invalid log filter `{filter}`: {reason}")]
    InvalidLogFilter {
        /// The filter given.
        filter: String,
        /// What is wrong.
        reason: String,
    },
    /// A global tracing subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    LoggerAlreadyInstalled,
    /// The Prometheus recorder could not be installed (another global metrics recorder exists).
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Recorder(String),
}
