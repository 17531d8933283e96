//! `[limits]`: size, connection and rate limits enforced at every entry point.

use serde::{Deserialize, Serialize};

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest encoded event accepted, in bytes (default 4 MiB); must be at least 1.
    pub max_event_bytes: u64,
    /// The most client connections open at once, over all listeners; must be at least 1.
    pub max_connections: u32,
    /// Events per second accepted by this node over all sessions; 0 = unlimited.
    pub publish_rate: u32,
    /// Events per second accepted from one session; 0 = unlimited.
    pub session_publish_rate: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_event_bytes: 4 * 1024 * 1024,
            max_connections: 10_000,
            publish_rate: 0,
            session_publish_rate: 0,
        }
    }
}
