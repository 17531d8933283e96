//! The store's own failures and how they become [`StorageError`]s.

use eventmesh_storage::StorageError;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// What can go wrong talking to RabbitMQ, before it is mapped to a [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    /// The options are invalid.
    #[error("invalid RabbitMQ store options: {0}")]
    Config(String),
    /// The connection is down, or the broker did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// An AMQP operation failed.
    #[error("RabbitMQ {op} failed: {source}")]
    Amqp {
        /// What was being done.
        op: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused a publish (a publisher nack) or returned it as unroutable.
    #[error("RabbitMQ did not accept the publish to `{0}`")]
    Refused(String),
    /// Something the store reads back from the broker is not what it wrote.
    #[error("unexpected data in `{queue}`: {reason}")]
    Protocol {
        /// The queue or stream.
        queue: String,
        /// What was wrong.
        reason: String,
    },
}

impl RabbitError {
    /// Wraps a lapin error with the operation it came from.
    pub(crate) fn amqp(op: impl Into<String>, source: lapin::Error) -> Self {
        RabbitError::Amqp {
            op: op.into(),
            source,
        }
    }

    /// The AMQP soft error (channel-level reply code) this is, if any.
    fn soft(&self) -> Option<&AMQPSoftError> {
        match self {
            RabbitError::Amqp { source, .. } => match source.kind() {
                lapin::ErrorKind::ProtocolError(e) => match e.kind() {
                    AMQPErrorKind::Soft(s) => Some(s),
                    AMQPErrorKind::Hard(_) => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    /// The broker's reply text, for AMQP errors.
    fn reply_text(&self) -> Option<&str> {
        match self {
            RabbitError::Amqp { source, .. } => match source.kind() {
                lapin::ErrorKind::ProtocolError(e) => Some(e.get_message().as_str()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the broker said 404 NOT_FOUND (no such queue or exchange). A queue that exists
    /// but whose process is not running (a stream still recovering after a broker restart) is
    /// also reported as 404 by RabbitMQ; that is [`is_queue_down`](Self::is_queue_down), not
    /// this.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self.soft(), Some(AMQPSoftError::NOTFOUND)) && !self.is_queue_down()
    }

    /// Whether the broker said the queue exists but cannot serve now: "home node … is down or
    /// inaccessible" (404) or, while a stream recovers, "does not have a replica on the local
    /// node" (406).
    pub(crate) fn is_queue_down(&self) -> bool {
        self.reply_text().is_some_and(|t| {
            t.contains("down or inaccessible")
                || t.contains("does not have a replica on the local node")
        })
    }

    /// Whether the broker said 405 RESOURCE_LOCKED (an exclusive queue of another connection).
    pub(crate) fn is_locked(&self) -> bool {
        matches!(self.soft(), Some(AMQPSoftError::RESOURCELOCKED))
    }

    /// Whether this is a connection problem rather than a refusal by the broker.
    pub(crate) fn is_connection(&self) -> bool {
        if self.is_queue_down() {
            return true;
        }
        match self {
            RabbitError::Unavailable(_) => true,
            RabbitError::Amqp { source, .. } => {
                matches!(
                    source.kind(),
                    lapin::ErrorKind::IOError(_)
                        | lapin::ErrorKind::InvalidConnectionState(_)
                        | lapin::ErrorKind::InvalidChannelState(..)
                        | lapin::ErrorKind::MissingHeartbeatError
                        | lapin::ErrorKind::RuntimeShutdownError(_)
                        | lapin::ErrorKind::InvalidChannel(_)
                ) || matches!(
                    source.kind(),
                    lapin::ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Hard(_))
                )
            }
            _ => false,
        }
    }
}

impl From<RabbitError> for StorageError {
    fn from(e: RabbitError) -> Self {
        match e {
            RabbitError::Config(m) => StorageError::Invalid(m),
            e if e.is_connection() => StorageError::Unavailable(e.to_string()),
            e => StorageError::Backend(e.to_string()),
        }
    }
}
