//! `[shutdown]`: graceful shutdown.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[shutdown]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// The longest a graceful shutdown (stop listeners, drain and flush the core, close the store)
    /// may take before the remaining tasks are abandoned, each logged by name; above 0.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            timeout: Duration::from_secs(30),
        }
    }
}
