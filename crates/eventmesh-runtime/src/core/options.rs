//! Options of the delivery core and the identity of this node.

use std::time::Duration;

use eventmesh_core::DEFAULT_MAX_EVENT_BYTES;

use super::CoreError;

/// Tunables of the delivery core. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreOptions {
    /// Largest encoded record accepted at publish (default 4 MiB).
    pub max_event_bytes: usize,
    /// How long a member may hold a push without acking it before it is redelivered (default 30 s).
    pub ack_timeout: Duration,
    /// Deliveries of one event before it goes to the dead-letter topic (default 16).
    pub max_attempts: u32,
    /// Backoff before the first redelivery after a nack or timeout (default 1 s); doubles per attempt.
    pub backoff_initial: Duration,
    /// Cap of the redelivery backoff (default 60 s).
    pub backoff_max: Duration,
    /// Un-acked pushes per member endpoint when the adapter does not choose (default 100).
    pub window: usize,
    /// Events one dispatcher holds fetched but not yet pushed, at most (default 256).
    pub prefetch: usize,
    /// The store's crash lease given to every fetch; must exceed `ack_timeout` (default 120 s).
    pub crash_lease: Duration,
    /// Suffix of the per-group dead-letter topic `<group><suffix>` (default `.DLQ`).
    pub dead_letter_suffix: String,
    /// Request-reply `ttl` when the client gives none (default 3 s).
    pub request_ttl: Duration,
    /// Global publish rate in events per second; 0 = unlimited.
    pub publish_rate: u32,
    /// Publish rate per session in events per second; 0 = unlimited.
    pub session_publish_rate: u32,
    /// Longest wait of one long-poll fetch (default 1 s).
    pub fetch_wait: Duration,
    /// Requests waiting for a reply on this node, at most (default 10,000); more are `Overloaded`.
    pub max_pending_requests: usize,
    /// TTL of this node's registration lease in the metadata store (default 10 s).
    pub node_lease_ttl: Duration,
    /// How long `shutdown` waits for tasks to finish before aborting them (default 10 s).
    pub shutdown_timeout: Duration,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            ack_timeout: Duration::from_secs(30),
            max_attempts: 16,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            window: 100,
            prefetch: 256,
            crash_lease: Duration::from_secs(120),
            dead_letter_suffix: ".DLQ".to_owned(),
            request_ttl: Duration::from_secs(3),
            publish_rate: 0,
            session_publish_rate: 0,
            fetch_wait: Duration::from_secs(1),
            max_pending_requests: 10_000,
            node_lease_ttl: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl CoreOptions {
    /// Checks the options, naming every problem at once.
    pub fn validate(&self) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        if self.max_event_bytes == 0 {
            problems.push("max_event_bytes must be > 0".to_owned());
        }
        if self.ack_timeout.is_zero() {
            problems.push("ack_timeout must be > 0".to_owned());
        }
        if self.max_attempts == 0 {
            problems.push("max_attempts must be >= 1".to_owned());
        }
        if self.backoff_initial > self.backoff_max {
            problems.push("backoff_initial must not exceed backoff_max".to_owned());
        }
        if self.window == 0 {
            problems.push("window must be >= 1".to_owned());
        }
        if self.prefetch == 0 {
            problems.push("prefetch must be >= 1".to_owned());
        }
        if self.crash_lease <= self.ack_timeout {
            problems.push(format!(
                "crash_lease ({:?}) must exceed ack_timeout ({:?})",
                self.crash_lease, self.ack_timeout
            ));
        }
        if self.dead_letter_suffix.is_empty() {
            problems.push("dead_letter_suffix must not be empty".to_owned());
        }
        if self.request_ttl.is_zero() {
            problems.push("request_ttl must be > 0".to_owned());
        }
        if self.fetch_wait.is_zero() {
            problems.push("fetch_wait must be > 0".to_owned());
        }
        if self.max_pending_requests == 0 {
            problems.push("max_pending_requests must be >= 1".to_owned());
        }
        if self.node_lease_ttl < Duration::from_millis(100) {
            problems.push("node_lease_ttl must be at least 100ms".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CoreError::InvalidOptions(problems.join("; ")))
        }
    }

    /// The backoff before redelivering an event whose attempt number `attempt` (1-based) failed:
    /// `backoff_initial * 2^(attempt-1)`, capped at `backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        self.backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max)
    }
}

/// Who this runtime node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The stable node id (persisted in the data dir or configured). It names this node's reply
    /// inbox topic, so it must be a valid topic-name part: 1 to 200 bytes of ASCII letters, digits,
    /// `-`, `_` or `.`.
    pub node_id: String,
    /// The address other nodes and clients reach this node at (`host:port`).
    pub advertise: String,
}

impl NodeIdentity {
    /// Checks the node id.
    pub fn validate(&self) -> Result<(), CoreError> {
        let ok = !self.node_id.is_empty()
            && self.node_id.len() <= 200
            && self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(())
        } else {
            Err(CoreError::InvalidNodeId(self.node_id.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_backoff_is_capped() {
        let o = CoreOptions::default();
        o.validate().expect("defaults are valid");
        assert_eq!(o.backoff(1), Duration::from_secs(1));
        assert_eq!(o.backoff(3), Duration::from_secs(4));
        assert_eq!(o.backoff(10), Duration::from_secs(60));
        assert_eq!(o.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn crash_lease_must_exceed_ack_timeout() {
        let o = CoreOptions {
            crash_lease: Duration::from_secs(30),
            ..CoreOptions::default()
        };
        let err = o.validate().expect_err("invalid");
        assert!(err.to_string().contains("crash_lease"), "{err}");
    }

    #[test]
    fn node_ids_must_make_topic_names() {
        assert!(
            NodeIdentity {
                node_id: "node-1".into(),
                advertise: "x:1".into()
            }
            .validate()
            .is_ok()
        );
        assert!(
            NodeIdentity {
                node_id: "a b".into(),
                advertise: "x:1".into()
            }
            .validate()
            .is_err()
        );
        assert!(
            NodeIdentity {
                node_id: "".into(),
                advertise: "x:1".into()
            }
            .validate()
            .is_err()
        );
    }
}
