//! The one internal error-code set and its mapping table per wire protocol.
//!
//! [`ErrorCode`] values are stable: they appear in logs, admin answers and the SDK. A code that is
//! retired is never reused. Each wire protocol has its own status vocabulary; the functions on
//! [`ErrorCode`] are the single place where a code becomes a wire status.

use std::fmt;

/// A stable error code. The numeric value never changes once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (bad header, missing field, unparsable body).
    BadRequest = 1001,
    /// The event is not a valid CloudEvent.
    InvalidEvent = 1002,
    /// The event is larger than `max_event_bytes`.
    EventTooLarge = 1003,
    /// The topic does not exist.
    UnknownTopic = 1004,
    /// The topic or group name is invalid.
    InvalidName = 1005,
    /// The command or request code is unknown.
    UnknownCommand = 1006,
    /// A rate limit or window is exceeded; retry later.
    Overloaded = 1101,
    /// The principal may not do this.
    Forbidden = 1201,
    /// Authentication failed or is missing.
    Unauthenticated = 1202,
    /// A subscription conflicts with an existing one (e.g. a different filter for the group and topic).
    SubscriptionConflict = 1301,
    /// The session is not subscribed to what it acknowledged or asked for.
    NotSubscribed = 1302,
    /// A request-reply waited past its `ttl`.
    RequestTimeout = 1401,
    /// The event store cannot be reached.
    StorageUnavailable = 1501,
    /// The event store refused or failed the operation.
    StorageFailure = 1502,
    /// The runtime is shutting down.
    ShuttingDown = 1601,
    /// An unexpected internal failure.
    Internal = 1901,
}

impl ErrorCode {
    /// The numeric code.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// A stable snake-case name for logs and JSON bodies.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::EventTooLarge => "event_too_large",
            ErrorCode::UnknownTopic => "unknown_topic",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::SubscriptionConflict => "subscription_conflict",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::StorageFailure => "storage_failure",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
        }
    }

    /// The TCP protocol's header `code` (`OPStatus`): 3 `tpsOverload` for `Overloaded`, 2
    /// `aclFail` for `Forbidden` and `Unauthenticated`, 1 `fail` for every other error. Clients
    /// only test for 0, so the finer codes are information, never a break.
    pub fn tcp_code(self) -> i32 {
        match self {
            ErrorCode::Overloaded => 3,
            ErrorCode::Forbidden | ErrorCode::Unauthenticated => 2,
            _ => 1,
        }
    }

    /// The legacy HTTP protocol's `retCode` (EventMeshRetCode, v1.3+ numbering).
    pub fn http_ret_code(self) -> i32 {
        match self {
            ErrorCode::Overloaded => 1,
            ErrorCode::UnknownCommand => 2,
            ErrorCode::RequestTimeout => 4,
            ErrorCode::BadRequest => 6,
            ErrorCode::InvalidEvent | ErrorCode::InvalidName | ErrorCode::UnknownTopic => 7,
            ErrorCode::EventTooLarge => 8,
            ErrorCode::ShuttingDown => 9,
            ErrorCode::StorageUnavailable | ErrorCode::StorageFailure => 15,
            ErrorCode::Internal => 18,
            ErrorCode::SubscriptionConflict | ErrorCode::NotSubscribed => 19,
            ErrorCode::Forbidden | ErrorCode::Unauthenticated => 22,
        }
    }

    /// The HTTP status for the REST and CloudEvents-binding paths.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidEvent | ErrorCode::InvalidName => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::UnknownTopic | ErrorCode::UnknownCommand => 404,
            ErrorCode::SubscriptionConflict => 409,
            ErrorCode::EventTooLarge => 413,
            ErrorCode::NotSubscribed => 422,
            ErrorCode::Overloaded => 429,
            ErrorCode::StorageUnavailable | ErrorCode::ShuttingDown => 503,
            ErrorCode::RequestTimeout => 504,
            ErrorCode::StorageFailure | ErrorCode::Internal => 500,
        }
    }

    /// The gRPC protocol's string `statuscode` (EventMesh StatusCode).
    pub fn grpc_status_code(self) -> &'static str {
        match self {
            ErrorCode::Overloaded => "1",
            ErrorCode::UnknownCommand => "2",
            ErrorCode::BadRequest => "6",
            ErrorCode::InvalidEvent
            | ErrorCode::InvalidName
            | ErrorCode::UnknownTopic
            | ErrorCode::EventTooLarge => "7",
            ErrorCode::ShuttingDown => "8",
            ErrorCode::StorageUnavailable | ErrorCode::StorageFailure => "14",
            ErrorCode::Internal => "16",
            ErrorCode::SubscriptionConflict | ErrorCode::NotSubscribed => "17",
            ErrorCode::Forbidden | ErrorCode::Unauthenticated => "20",
            ErrorCode::RequestTimeout => "22",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.as_u32())
    }
}

/// The domain error: a stable code and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EventMeshError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong, naming the offending value.
    pub message: String,
}

impl EventMeshError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EventMeshError {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::event::EventValidationError> for EventMeshError {
    fn from(e: crate::event::EventValidationError) -> Self {
        EventMeshError::new(ErrorCode::InvalidEvent, e.to_string())
    }
}

impl From<crate::topic::TopicError> for EventMeshError {
    fn from(e: crate::topic::TopicError) -> Self {
        EventMeshError::new(ErrorCode::InvalidName, e.to_string())
    }
}

impl From<crate::subscription::GroupNameError> for EventMeshError {
    fn from(e: crate::subscription::GroupNameError) -> Self {
        EventMeshError::new(ErrorCode::InvalidName, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        // These numbers are on the wire and in logs: changing one is a breaking change.
        assert_eq!(ErrorCode::BadRequest.as_u32(), 1001);
        assert_eq!(ErrorCode::Overloaded.as_u32(), 1101);
        assert_eq!(ErrorCode::StorageUnavailable.as_u32(), 1501);
        assert_eq!(ErrorCode::Internal.as_u32(), 1901);
    }

    #[test]
    fn wire_tables_follow_the_reference() {
        assert_eq!(ErrorCode::Overloaded.http_ret_code(), 1);
        assert_eq!(ErrorCode::EventTooLarge.http_ret_code(), 8);
        assert_eq!(ErrorCode::Overloaded.grpc_status_code(), "1");
        assert_eq!(ErrorCode::RequestTimeout.grpc_status_code(), "22");
        assert_eq!(ErrorCode::EventTooLarge.http_status(), 413);
        assert_eq!(ErrorCode::InvalidEvent.tcp_code(), 1);
        assert_eq!(ErrorCode::Overloaded.tcp_code(), 3);
        assert_eq!(ErrorCode::Forbidden.tcp_code(), 2);
    }
}
