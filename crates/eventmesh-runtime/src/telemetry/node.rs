//! Node-level metrics: build info, readiness and uptime.

use metrics::{Unit, describe_gauge, gauge};

/// `eventmesh_build_info{version,node_id,store}`: always 1.
pub const BUILD_INFO: &str = "eventmesh_build_info";
/// `eventmesh_ready`: 1 while `/health` would answer 200, else 0.
pub const READY: &str = "eventmesh_ready";
/// `eventmesh_uptime_seconds`: seconds since the runtime started.
pub const UPTIME_SECONDS: &str = "eventmesh_uptime_seconds";

pub(crate) fn describe() {
    describe_gauge!(BUILD_INFO, "Build and identity of this node (always 1).");
    describe_gauge!(
        READY,
        "1 when the node is ready (store healthy, core ready), else 0."
    );
    describe_gauge!(
        UPTIME_SECONDS,
        Unit::Seconds,
        "Seconds since the runtime started."
    );
}

/// The node started.
pub struct NodeStarted<'a> {
    /// The node id.
    pub node_id: &'a str,
    /// The event store kind.
    pub store: &'static str,
}

impl NodeStarted<'_> {
    /// Records the event.
    pub fn emit(&self) {
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "node_id" => self.node_id.to_owned(), "store" => self.store)
            .set(1.0);
    }
}

/// The readiness observed by a health check.
pub struct Readiness {
    /// Whether the node is ready.
    pub ready: bool,
}

impl Readiness {
    /// Records the event.
    pub fn emit(&self) {
        gauge!(READY).set(if self.ready { 1.0 } else { 0.0 });
    }
}

/// The uptime, refreshed when metrics are rendered.
pub struct Uptime {
    /// Seconds since start.
    pub seconds: f64,
}

impl Uptime {
    /// Records the event.
    pub fn emit(&self) {
        gauge!(UPTIME_SECONDS).set(self.seconds);
    }
}
