//! gRPC server metrics.

use metrics::{counter, describe_counter, describe_gauge, gauge};

/// `eventmesh_grpc_connections`: gRPC (HTTP/2) connections open.
pub const CONNECTIONS: &str = "eventmesh_grpc_connections";
/// `eventmesh_grpc_connections_total{outcome}`: connections accepted or refused (`accepted`,
/// `over_limit`).
pub const CONNECTIONS_TOTAL: &str = "eventmesh_grpc_connections_total";
/// `eventmesh_grpc_calls_total{method, status}`: calls answered, by method and string status
/// code.
pub const CALLS: &str = "eventmesh_grpc_calls_total";
/// `eventmesh_grpc_streams`: subscriber streams open.
pub const STREAMS: &str = "eventmesh_grpc_streams";
/// `eventmesh_grpc_pushes_total{outcome}`: events pushed down streams (`sent`) and what became
/// of them (`acked`, `nacked`).
pub const PUSHES: &str = "eventmesh_grpc_pushes_total";

pub(crate) fn describe() {
    describe_gauge!(CONNECTIONS, "gRPC connections open.");
    describe_counter!(
        CONNECTIONS_TOTAL,
        "gRPC connections accepted or refused, by outcome."
    );
    describe_counter!(CALLS, "gRPC calls answered, by method and status code.");
    describe_gauge!(STREAMS, "gRPC subscriber streams open.");
    describe_counter!(PUSHES, "Events pushed down gRPC streams, by outcome.");
}

pub(crate) fn call(method: &'static str, status: &'static str) {
    counter!(CALLS, "method" => method, "status" => status).increment(1);
}

pub(crate) fn connection(outcome: &'static str) {
    counter!(CONNECTIONS_TOTAL, "outcome" => outcome).increment(1);
}

pub(crate) fn connections() -> metrics::Gauge {
    gauge!(CONNECTIONS)
}

pub(crate) fn streams() -> metrics::Gauge {
    gauge!(STREAMS)
}

pub(crate) fn pushes(outcome: &'static str, n: u64) {
    counter!(PUSHES, "outcome" => outcome).increment(n);
}
