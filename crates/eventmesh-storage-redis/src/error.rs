//! The store's own errors and how they map to [`StorageError`].

use std::time::Duration;

use eventmesh_storage::StorageError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The options are invalid.
    #[error("invalid redis store options: {0}")]
    Options(String),
    /// Redis did not answer in time (down, restarting, or overloaded).
    #[error("redis at {url} did not answer `{op}` within {} ms", .after.as_millis())]
    Timeout {
        url: String,
        op: &'static str,
        after: Duration,
    },
    /// A command failed.
    #[error("redis `{op}` at {url} failed: {source}")]
    Redis {
        url: String,
        op: &'static str,
        #[source]
        source: RedisError,
    },
    /// Redis answered something this store did not expect.
    #[error("unexpected reply to `{op}`: {detail}")]
    Reply { op: &'static str, detail: String },
}

impl Error {
    /// Whether the failure means "Redis cannot serve now" (retrying later may work).
    fn unavailable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Redis { source, .. } => is_unavailable(source),
            Error::Options(_) | Error::Reply { .. } => false,
        }
    }
}

/// Connection trouble, or a server that is loading, read-only, out of memory or failing to
/// persist: all "not now" conditions a client should retry.
pub(crate) fn is_unavailable(e: &RedisError) -> bool {
    if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        return true;
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::AuthenticationFailed => true,
        ErrorKind::Server(k) => matches!(
            k,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::ClusterDown
        ),
        _ => matches!(e.code(), Some("OOM" | "MISCONF" | "BUSY" | "NOREPLICAS")),
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        match e {
            Error::Options(msg) => StorageError::Invalid(msg),
            e if e.unavailable() => StorageError::Unavailable(e.to_string()),
            e => StorageError::Backend(e.to_string()),
        }
    }
}
