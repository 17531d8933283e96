//! TCP server metrics.

use eventmesh_protocol::tcp::Command;
use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

/// `eventmesh_tcp_connections`: TCP connections open.
pub const CONNECTIONS: &str = "eventmesh_tcp_connections";
/// `eventmesh_tcp_connections_total{outcome}`: connections accepted or refused (`accepted`,
/// `over_limit`).
pub const CONNECTIONS_TOTAL: &str = "eventmesh_tcp_connections_total";
/// `eventmesh_tcp_frames_received_total{command}`: frames decoded.
pub const FRAMES_RECEIVED: &str = "eventmesh_tcp_frames_received_total";
/// `eventmesh_tcp_frames_sent_total{command}`: frames encoded for sending.
pub const FRAMES_SENT: &str = "eventmesh_tcp_frames_sent_total";
/// `eventmesh_tcp_bad_input_total{reason}`: connections closed for bad input (`framing`,
/// `header`, `body`, `unknown_command`, `no_hello`, `wrong_direction`, `hello`).
pub const BAD_INPUT: &str = "eventmesh_tcp_bad_input_total";
/// `eventmesh_tcp_goodbyes_total{reason}`: connections the server said goodbye to for another
/// reason (`shutdown`, `idle`, `reject`, `redirect`).
pub const GOODBYES: &str = "eventmesh_tcp_goodbyes_total";

pub(crate) fn describe() {
    describe_gauge!(CONNECTIONS, "TCP connections open.");
    describe_counter!(
        CONNECTIONS_TOTAL,
        "TCP connections accepted or refused, by outcome."
    );
    describe_counter!(FRAMES_RECEIVED, "TCP frames received, by command.");
    describe_counter!(FRAMES_SENT, "TCP frames sent, by command.");
    describe_counter!(
        BAD_INPUT,
        "TCP connections closed with a goodbye for bad input, by reason."
    );
    describe_counter!(
        GOODBYES,
        "TCP connections the server said goodbye to, other than for bad input, by reason."
    );
}

/// Per-command frame counters, resolved once (the hot path only increments).
pub struct FrameCounters {
    received: Vec<Counter>,
    sent: Vec<Counter>,
}

impl Default for FrameCounters {
    fn default() -> Self {
        FrameCounters {
            received: Command::ALL
                .iter()
                .map(|c| counter!(FRAMES_RECEIVED, "command" => c.name()))
                .collect(),
            sent: Command::ALL
                .iter()
                .map(|c| counter!(FRAMES_SENT, "command" => c.name()))
                .collect(),
        }
    }
}

impl FrameCounters {
    /// A frame was decoded.
    pub fn received(&self, command: Command) {
        if let Some(c) = self.received.get(usize::from(command.code())) {
            c.increment(1);
        }
    }

    /// A frame was encoded for sending.
    pub fn sent(&self, command: Command) {
        if let Some(c) = self.sent.get(usize::from(command.code())) {
            c.increment(1);
        }
    }
}

/// The open-connections gauge.
pub fn connections() -> Gauge {
    gauge!(CONNECTIONS)
}

/// A connection was accepted (`accepted`) or refused (`over_limit`).
pub struct ConnectionAccepted {
    /// The outcome.
    pub outcome: &'static str,
}

impl ConnectionAccepted {
    /// Records the event.
    pub fn emit(&self) {
        counter!(CONNECTIONS_TOTAL, "outcome" => self.outcome).increment(1);
    }
}

/// A connection was closed for bad input.
pub struct BadInput {
    /// The reason label.
    pub reason: &'static str,
}

impl BadInput {
    /// Records the event.
    pub fn emit(&self) {
        counter!(BAD_INPUT, "reason" => self.reason).increment(1);
    }
}

/// The server said goodbye for a reason other than bad input.
pub struct Goodbye {
    /// The reason label.
    pub reason: &'static str,
}

impl Goodbye {
    /// Records the event.
    pub fn emit(&self) {
        counter!(GOODBYES, "reason" => self.reason).increment(1);
    }
}
