//! The process-wide Prometheus recorder.

use std::sync::Mutex;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::TelemetryError;

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process; later
/// calls return the same handle) and describes this crate's metrics. No HTTP listener is started:
/// render through [`PrometheusHandle::render`].
pub fn install() -> Result<PrometheusHandle, TelemetryError> {
    let mut slot = HANDLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
    super::node::describe();
    super::storage::describe();
    super::admin::describe();
    super::tcp::describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Renders every metric in the Prometheus text format (after the recorder's periodic upkeep).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}
