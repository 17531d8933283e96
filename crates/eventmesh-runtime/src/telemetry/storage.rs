//! Event-store metrics (health checks; the stores emit their own operation metrics).

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// `eventmesh_storage_healthy{store}`: 1 when the last health check passed, else 0.
pub const HEALTHY: &str = "eventmesh_storage_healthy";
/// `eventmesh_storage_health_checks_total{store,result}`: health checks run.
pub const HEALTH_CHECKS_TOTAL: &str = "eventmesh_storage_health_checks_total";
/// `eventmesh_storage_health_check_duration_seconds{store}`: how long health checks take.
pub const HEALTH_CHECK_DURATION_SECONDS: &str = "eventmesh_storage_health_check_duration_seconds";

pub(crate) fn describe() {
    describe_gauge!(
        HEALTHY,
        "1 when the event store's last health check passed, else 0."
    );
    describe_counter!(
        HEALTH_CHECKS_TOTAL,
        "Event-store health checks, by result (ok, error, timeout)."
    );
    describe_histogram!(
        HEALTH_CHECK_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of event-store health checks."
    );
}

/// The outcome of one store health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthResult {
    /// Passed.
    Ok,
    /// The store reported an error.
    Error,
    /// The check did not answer in time.
    Timeout,
}

impl HealthResult {
    fn as_str(self) -> &'static str {
        match self {
            HealthResult::Ok => "ok",
            HealthResult::Error => "error",
            HealthResult::Timeout => "timeout",
        }
    }
}

/// A store health check finished.
pub struct HealthChecked {
    /// The store kind.
    pub store: &'static str,
    /// The outcome.
    pub result: HealthResult,
    /// How long it took.
    pub elapsed: Duration,
}

impl HealthChecked {
    /// Records the event.
    pub fn emit(&self) {
        gauge!(HEALTHY, "store" => self.store).set(if self.result == HealthResult::Ok {
            1.0
        } else {
            0.0
        });
        counter!(HEALTH_CHECKS_TOTAL, "store" => self.store, "result" => self.result.as_str())
            .increment(1);
        histogram!(HEALTH_CHECK_DURATION_SECONDS, "store" => self.store)
            .record(self.elapsed.as_secs_f64());
    }
}
