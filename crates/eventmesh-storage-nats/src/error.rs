//! The store's own failures and how they become [`StorageError`]s.

use eventmesh_storage::StorageError;

/// What can go wrong talking to NATS, before it is mapped to a [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The options are invalid.
    #[error("invalid NATS store options: {0}")]
    Config(String),
    /// The connection is down or a call got no answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// The JetStream API answered with an error.
    #[error("JetStream API error {code}/{err_code} on {op}: {description}")]
    Api {
        /// What was being done.
        op: String,
        /// The HTTP-like status code.
        code: u16,
        /// JetStream's own error code (10059: stream not found, 10014: consumer not found, …).
        err_code: u32,
        /// The server's text.
        description: String,
    },
    /// An answer could not be read.
    #[error("unexpected answer from NATS on {op}: {reason}")]
    Protocol {
        /// What was being done.
        op: String,
        /// What was wrong.
        reason: String,
    },
}

/// JetStream error code: stream not found.
pub(crate) const STREAM_NOT_FOUND: u32 = 10059;
/// JetStream error code: consumer not found.
pub(crate) const CONSUMER_NOT_FOUND: u32 = 10014;

impl NatsError {
    /// Whether the API said the stream does not exist.
    pub(crate) fn is_stream_not_found(&self) -> bool {
        matches!(self, NatsError::Api { err_code, .. } if *err_code == STREAM_NOT_FOUND)
    }

    /// Whether the API said the consumer does not exist.
    pub(crate) fn is_consumer_not_found(&self) -> bool {
        matches!(self, NatsError::Api { err_code, .. } if *err_code == CONSUMER_NOT_FOUND)
    }
}

impl From<NatsError> for StorageError {
    fn from(e: NatsError) -> Self {
        match e {
            NatsError::Config(m) => StorageError::Invalid(m),
            NatsError::Unavailable(m) => StorageError::Unavailable(m),
            // 503 from JetStream: no leader, not ready, JetStream not enabled.
            e @ NatsError::Api { code: 503, .. } => StorageError::Unavailable(e.to_string()),
            e @ (NatsError::Api { .. } | NatsError::Protocol { .. }) => {
                StorageError::Backend(e.to_string())
            }
        }
    }
}
