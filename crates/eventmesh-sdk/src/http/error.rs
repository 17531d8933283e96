//! Errors of the HTTP client.

use std::time::Duration;

/// What went wrong with an HTTP client operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The configuration or an argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The mesh could not be reached, or the connection failed.
    #[error("cannot reach the mesh: {0}")]
    Connect(String),
    /// The mesh refused: its HTTP status, `retCode` and `retMsg`.
    #[error("the mesh refused (HTTP {status}, retCode {ret_code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `retCode` (-1 when the answer had none).
        ret_code: i64,
        /// The `retMsg`.
        message: String,
    },
    /// The mesh answered something that is not an EventMesh answer.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// No answer came in time.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The subscriber's webhook server could not start.
    #[error("cannot start the webhook server: {0}")]
    Server(#[source] std::io::Error),
}

impl HttpError {
    /// Whether the mesh refused because of a rate limit (retCode 1, HTTP 429); retry later.
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            HttpError::Refused { ret_code: 1, .. } | HttpError::Refused { status: 429, .. }
        )
    }
}
