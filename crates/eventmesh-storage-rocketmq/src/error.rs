//! The store's own failures and how they become [`StorageError`]s.

use eventmesh_storage::StorageError;

/// What can go wrong talking to RocketMQ, before it is mapped to a [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub enum RocketError {
    /// The options are invalid.
    #[error("invalid RocketMQ store options: {0}")]
    Config(String),
    /// The name server or broker cannot be reached, or a call got no answer in time.
    #[error("RocketMQ unavailable: {0}")]
    Unavailable(String),
    /// The topic does not exist on the brokers.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// The broker or the client refused or failed an operation.
    #[error("RocketMQ error on {op}: {reason}")]
    Broker {
        /// What was being done.
        op: String,
        /// The client's or broker's text.
        reason: String,
    },
    /// Data read back could not be understood.
    #[error("unexpected data from RocketMQ on {op}: {reason}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        reason: String,
    },
}

impl RocketError {
    /// A client error, classified: connection and timeout failures are `Unavailable`.
    pub(crate) fn from_client(op: &str, e: &rocketmq_client_rust::ClientError) -> Self {
        let reason = match e.broker_response_code() {
            Some(code) => format!("{e} (response code {code})"),
            None => format!("{e}"),
        };
        let debug = format!("{e:?}");
        if is_unavailable(&reason) || is_unavailable(&debug) {
            RocketError::Unavailable(format!("{op}: {reason}"))
        } else {
            RocketError::Broker {
                op: op.to_owned(),
                reason,
            }
        }
    }
}

/// Whether a client error's text says the broker or name server could not be reached in time.
fn is_unavailable(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "connect",
        "timeout",
        "timed out",
        "unavailable",
        "refused",
        "closed",
        "broken pipe",
        "reset",
        "not exist",
        "no route",
        "route info",
        "no name server",
        "not started",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}

impl From<RocketError> for StorageError {
    fn from(e: RocketError) -> Self {
        match e {
            RocketError::Config(m) => StorageError::Invalid(m),
            RocketError::UnknownTopic(t) => StorageError::UnknownTopic(t),
            e @ RocketError::Unavailable(_) => StorageError::Unavailable(e.to_string()),
            e @ (RocketError::Broker { .. } | RocketError::Protocol { .. }) => {
                StorageError::Backend(e.to_string())
            }
        }
    }
}
