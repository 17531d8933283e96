//! [`ShutdownSignal`]: the node-wide shutdown request and its reason.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Why a node shuts down.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// Asked for: an OS signal (`SIGTERM`, `SIGINT`) or a caller of
    /// [`crate::runtime::RuntimeHandle::shutdown`].
    Requested(String),
    /// A critical task failed, panicked or stopped on its own.
    TaskFailed {
        /// The task's name.
        task: String,
        /// What happened.
        error: String,
    },
}

impl ShutdownReason {
    /// Whether this is a failure (the process should exit non-zero).
    pub fn is_failure(&self) -> bool {
        matches!(self, ShutdownReason::TaskFailed { .. })
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownReason::Requested(by) => write!(f, "requested ({by})"),
            ShutdownReason::TaskFailed { task, error } => {
                write!(f, "critical task `{task}` failed: {error}")
            }
        }
    }
}

/// The shutdown request of one node; cheap to clone, all clones share it.
#[derive(Clone, Debug, Default)]
pub struct ShutdownSignal {
    token: CancellationToken,
    reason: Arc<Mutex<Option<ShutdownReason>>>,
}

impl ShutdownSignal {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests shutdown. The first reason is kept; later ones are ignored.
    pub fn trigger(&self, reason: ShutdownReason) {
        {
            let mut r = self.reason.lock();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.token.cancel();
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The first reason given, once triggered.
    pub fn reason(&self) -> Option<ShutdownReason> {
        self.reason.lock().clone()
    }

    /// Waits until shutdown is requested and returns the reason.
    pub async fn triggered(&self) -> ShutdownReason {
        self.token.cancelled().await;
        self.reason()
            .unwrap_or_else(|| ShutdownReason::Requested("unknown".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins() {
        let s = ShutdownSignal::new();
        assert!(!s.is_triggered());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.triggered().await }
        });
        s.trigger(ShutdownReason::Requested("SIGTERM".into()));
        s.trigger(ShutdownReason::TaskFailed {
            task: "x".into(),
            error: "y".into(),
        });
        assert_eq!(
            waiter.await.unwrap(),
            ShutdownReason::Requested("SIGTERM".into())
        );
        assert!(!s.reason().unwrap().is_failure());
    }
}
