//! The string status codes of the EventMesh gRPC protocol (`StatusCode` in Java), sent in the
//! `statuscode` attribute of answers (v1.9+) or `Response.respCode` (legacy).

use std::fmt;

use eventmesh_core::ErrorCode;

/// A status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusCode {
    /// `0`.
    Success,
    /// `1`: over a rate limit or a bound; retry later.
    Overload,
    /// `2`: unknown request.
    RequestCodeInvalid,
    /// `3`: a synchronous send failed.
    SendSyncErr,
    /// `4`: waiting for a request's reply failed (timed out).
    WaitingRrErr,
    /// `6`: the client identity (header) attributes are missing or invalid.
    HeaderErr,
    /// `7`: the message body is missing or invalid.
    BodyErr,
    /// `8`: the runtime is stopping.
    Stop,
    /// `9`: refused.
    Reject,
    /// `10`: a batch publish failed.
    BatchPublishErr,
    /// `11`: batch speed over the limit.
    BatchSpeedErr,
    /// `12`: too large.
    PackageErr,
    /// `13`: the producer group is stopped.
    GroupProducerStopped,
    /// `14`: an asynchronous send failed (the store refused it).
    AsyncErr,
    /// `15`: a reply failed.
    ReplyErr,
    /// `16`: runtime error.
    RuntimeErr,
    /// `17`: subscribe failed.
    SubscribeErr,
    /// `18`: unsubscribe failed.
    UnsubscribeErr,
    /// `19`: heartbeat failed.
    HeartbeatErr,
    /// `20`: refused by access control.
    AclErr,
    /// `21`: send speed over the limit.
    SendSpeedOverLimit,
    /// `22`: request-reply failed.
    RequestReplyErr,
    /// `30`: the server does not know this client (it restarted): subscribe again.
    ClientResubscribe,
}

impl StatusCode {
    /// The code as sent on the wire.
    pub fn code(self) -> &'static str {
        match self {
            StatusCode::Success => "0",
            StatusCode::Overload => "1",
            StatusCode::RequestCodeInvalid => "2",
            StatusCode::SendSyncErr => "3",
            StatusCode::WaitingRrErr => "4",
            StatusCode::HeaderErr => "6",
            StatusCode::BodyErr => "7",
            StatusCode::Stop => "8",
            StatusCode::Reject => "9",
            StatusCode::BatchPublishErr => "10",
            StatusCode::BatchSpeedErr => "11",
            StatusCode::PackageErr => "12",
            StatusCode::GroupProducerStopped => "13",
            StatusCode::AsyncErr => "14",
            StatusCode::ReplyErr => "15",
            StatusCode::RuntimeErr => "16",
            StatusCode::SubscribeErr => "17",
            StatusCode::UnsubscribeErr => "18",
            StatusCode::HeartbeatErr => "19",
            StatusCode::AclErr => "20",
            StatusCode::SendSpeedOverLimit => "21",
            StatusCode::RequestReplyErr => "22",
            StatusCode::ClientResubscribe => "30",
        }
    }

    /// Parses a wire code.
    pub fn parse(code: &str) -> Option<Self> {
        ALL.iter().copied().find(|s| s.code() == code.trim())
    }

    /// A short description (the start of `responsemessage`).
    pub fn desc(self) -> &'static str {
        match self {
            StatusCode::Success => "success",
            StatusCode::Overload => "eventmesh overload, try later",
            StatusCode::RequestCodeInvalid => "request invalid",
            StatusCode::SendSyncErr => "send sync message failed",
            StatusCode::WaitingRrErr => "waiting for the reply failed",
            StatusCode::HeaderErr => "protocol header error",
            StatusCode::BodyErr => "protocol body error",
            StatusCode::Stop => "eventmesh is stopping",
            StatusCode::Reject => "rejected",
            StatusCode::BatchPublishErr => "batch publish failed",
            StatusCode::BatchSpeedErr => "batch publish speed over the limit",
            StatusCode::PackageErr => "package too large",
            StatusCode::GroupProducerStopped => "producer group stopped",
            StatusCode::AsyncErr => "send async message failed",
            StatusCode::ReplyErr => "reply failed",
            StatusCode::RuntimeErr => "runtime error",
            StatusCode::SubscribeErr => "subscribe failed",
            StatusCode::UnsubscribeErr => "unsubscribe failed",
            StatusCode::HeartbeatErr => "heartbeat failed",
            StatusCode::AclErr => "acl check failed",
            StatusCode::SendSpeedOverLimit => "send speed over the limit",
            StatusCode::RequestReplyErr => "request-reply failed",
            StatusCode::ClientResubscribe => "client must subscribe again",
        }
    }

    /// Whether this is [`StatusCode::Success`].
    pub fn is_success(self) -> bool {
        self == StatusCode::Success
    }

    /// The code of a domain error ([`ErrorCode::grpc_status_code`], the one mapping).
    pub fn of(code: ErrorCode) -> Self {
        StatusCode::parse(code.grpc_status_code()).unwrap_or(StatusCode::RuntimeErr)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.desc())
    }
}

const ALL: [StatusCode; 23] = [
    StatusCode::Success,
    StatusCode::Overload,
    StatusCode::RequestCodeInvalid,
    StatusCode::SendSyncErr,
    StatusCode::WaitingRrErr,
    StatusCode::HeaderErr,
    StatusCode::BodyErr,
    StatusCode::Stop,
    StatusCode::Reject,
    StatusCode::BatchPublishErr,
    StatusCode::BatchSpeedErr,
    StatusCode::PackageErr,
    StatusCode::GroupProducerStopped,
    StatusCode::AsyncErr,
    StatusCode::ReplyErr,
    StatusCode::RuntimeErr,
    StatusCode::SubscribeErr,
    StatusCode::UnsubscribeErr,
    StatusCode::HeartbeatErr,
    StatusCode::AclErr,
    StatusCode::SendSpeedOverLimit,
    StatusCode::RequestReplyErr,
    StatusCode::ClientResubscribe,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_domain_errors_map() {
        for s in ALL {
            assert_eq!(StatusCode::parse(s.code()), Some(s));
        }
        assert_eq!(StatusCode::of(ErrorCode::Overloaded), StatusCode::Overload);
        assert_eq!(StatusCode::of(ErrorCode::InvalidEvent), StatusCode::BodyErr);
        assert_eq!(
            StatusCode::of(ErrorCode::RequestTimeout),
            StatusCode::RequestReplyErr
        );
        assert_eq!(StatusCode::parse("5"), None);
    }
}
