//! Admin API metrics.

use metrics::{counter, describe_counter};

/// `eventmesh_admin_requests_total{route,status}`: admin API requests answered.
pub const REQUESTS_TOTAL: &str = "eventmesh_admin_requests_total";

pub(crate) fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Admin API requests answered, by route and HTTP status."
    );
}

/// An admin request was answered.
pub struct AdminRequest {
    /// The route (`/health`, `/metrics`, `other`).
    pub route: &'static str,
    /// The HTTP status code.
    pub status: u16,
}

impl AdminRequest {
    /// Records the event.
    pub fn emit(&self) {
        counter!(REQUESTS_TOTAL, "route" => self.route, "status" => self.status.to_string())
            .increment(1);
    }
}
