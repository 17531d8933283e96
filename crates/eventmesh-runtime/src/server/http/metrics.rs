//! HTTP server and webhook metrics, emitted only through these helpers so names and labels stay
//! consistent.

use std::time::Duration;

use metrics::{Gauge, counter, gauge, histogram};

/// `eventmesh_http_connections`: HTTP connections open.
pub const CONNECTIONS: &str = "eventmesh_http_connections";
/// `eventmesh_http_connections_total{outcome}`: connections accepted or refused.
pub const CONNECTIONS_TOTAL: &str = "eventmesh_http_connections_total";
/// `eventmesh_http_tls_handshake_failures_total`.
pub const TLS_FAILURES: &str = "eventmesh_http_tls_handshake_failures_total";
/// `eventmesh_http_requests_total{route,status}`: requests answered.
pub const REQUESTS: &str = "eventmesh_http_requests_total";
/// `eventmesh_webhook_pushes_total{outcome}`: webhook push attempts by outcome (`done`,
/// `retry`, `dead_letter`, `error`).
pub const PUSHES: &str = "eventmesh_webhook_pushes_total";
/// `eventmesh_webhook_push_seconds`: time of one push attempt.
pub const PUSH_SECONDS: &str = "eventmesh_webhook_push_seconds";
/// `eventmesh_webhook_denied_total`: connections refused by the deny list.
pub const DENIED: &str = "eventmesh_webhook_denied_total";
/// `eventmesh_webhook_urls`: subscriber URLs registered on this node.
pub const URLS: &str = "eventmesh_webhook_urls";

pub(crate) fn connection(outcome: &'static str) {
    counter!(CONNECTIONS_TOTAL, "outcome" => outcome).increment(1);
}

pub(crate) fn connections_gauge() -> Gauge {
    gauge!(CONNECTIONS)
}

pub(crate) fn tls_handshake_failed() {
    counter!(TLS_FAILURES).increment(1);
}

pub(crate) fn request(route: &'static str, status: u16) {
    counter!(REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
}

pub(crate) fn push(outcome: &'static str, elapsed: Duration) {
    counter!(PUSHES, "outcome" => outcome).increment(1);
    histogram!(PUSH_SECONDS).record(elapsed.as_secs_f64());
}

pub(crate) fn denied() {
    counter!(DENIED).increment(1);
}

pub(crate) fn urls(n: usize) {
    gauge!(URLS).set(n as f64);
}
