//! The SDK's error type.

use std::fmt;
use std::time::Duration;

use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::tcp::{Command, OpStatus};

/// What went wrong with a client operation.
///
/// Match on the variant to tell the cases apart; [`Error::server`] gives the server's own code
/// and description whenever the server answered with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument of the call is invalid (a topic name, a subscription on a `pub` client, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The TCP connection could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed while it was in use.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes could not be encoded, or what the server sent could not be decoded.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server answered with a non-zero code.
    #[error("{0}")]
    Server(ServerError),
    /// The server refused because a rate limit or window is exceeded (`tpsOverload`); retry
    /// later.
    #[error("rate limited: {0}")]
    RateLimited(ServerError),
    /// No answer came in time.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection was lost before the answer arrived; the operation may or may not have
    /// taken effect on the server.
    #[error("the connection was lost before the answer arrived")]
    Disconnected,
    /// The client is closed (closed explicitly, or it gave up reconnecting).
    #[error("the client is closed")]
    Closed,
    /// This client already has a handler for the topic.
    #[error("already subscribed to topic {0:?}")]
    AlreadySubscribed(String),
}

impl Error {
    /// The server's answer, when the server refused the operation.
    #[must_use]
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(s) | Error::RateLimited(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the server refused because of a rate limit.
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited(_))
    }

    /// Whether the operation timed out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// The error for an answer with a non-zero code: [`Error::RateLimited`] for code 3
    /// (`tpsOverload`) or a description naming an overload (what the Java runtime answers with
    /// code 1), else [`Error::Server`].
    pub(crate) fn from_answer(command: Command, code: i32, desc: Option<String>) -> Error {
        let overloaded = code == OpStatus::TpsOverload.code()
            || desc.as_deref().is_some_and(|d| {
                let d = d.to_ascii_lowercase();
                d.contains("overload") || d.contains("too fast") || d.contains("rate limit")
            });
        let server = ServerError {
            command,
            code,
            desc,
        };
        if overloaded {
            Error::RateLimited(server)
        } else {
            Error::Server(server)
        }
    }
}

/// The server's answer to a refused operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The command of the answer (e.g. `ASYNC_MESSAGE_TO_SERVER_ACK`).
    pub command: Command,
    /// The header `code` (`OPStatus`: 1 fail, 2 aclFail, 3 tpsOverload).
    pub code: i32,
    /// The header `desc`, the server's explanation.
    pub desc: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = OpStatus::from_code(self.code).map_or("unknown", OpStatus::desc);
        write!(
            f,
            "the server answered {} with code {} ({status})",
            self.command, self.code
        )?;
        if let Some(desc) = &self.desc {
            write!(f, ": {desc}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_answers_are_rate_limits() {
        let e = Error::from_answer(
            Command::AsyncMessageToServerAck,
            3,
            Some("tpsOverload".into()),
        );
        assert!(e.is_rate_limited());
        assert_eq!(e.server().map(|s| s.code), Some(3));
        let e = Error::from_answer(
            Command::AsyncMessageToServerAck,
            1,
            Some("Tps overload, global flow control".into()),
        );
        assert!(e.is_rate_limited());
        let e = Error::from_answer(Command::SubscribeResponse, 1, Some("bad topic".into()));
        assert!(matches!(&e, Error::Server(s) if s.code == 1));
        assert_eq!(
            e.to_string(),
            "the server answered SUBSCRIBE_RESPONSE with code 1 (fail): bad topic"
        );
    }
}
