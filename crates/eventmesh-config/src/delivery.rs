//! `[delivery]`: the delivery rules the runtime core applies on every store (windows, ack
//! timeouts, retries, dead-lettering, request-reply).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[delivery]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long a member has to ack a delivery before it is redelivered; above 0.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Deliveries of one event before it goes to the dead-letter topic; at least 1.
    pub max_attempts: u32,
    /// The first retry delay; doubles per attempt up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// The longest retry delay; at least `backoff_initial`.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Un-acked deliveries per member; at least 1.
    pub window: u32,
    /// Events a dispatcher fetches ahead from the store per (group, topic); at least 1.
    pub prefetch: u32,
    /// The store's own redelivery lease for events held by a node that died; must be longer
    /// than `ack_timeout` so the store never redelivers what the core still tracks.
    #[serde(with = "humantime_serde")]
    pub crash_lease: Duration,
    /// The dead-letter topic of a group is `<group><dead_letter_suffix>`; not empty.
    pub dead_letter_suffix: String,
    /// The default time-to-live of a request-reply request without its own `ttl`; above 0.
    #[serde(with = "humantime_serde")]
    pub request_ttl: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            ack_timeout: Duration::from_secs(30),
            max_attempts: 16,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            window: 100,
            prefetch: 256,
            crash_lease: Duration::from_secs(120),
            dead_letter_suffix: ".DLQ".to_owned(),
            request_ttl: Duration::from_secs(3),
        }
    }
}
