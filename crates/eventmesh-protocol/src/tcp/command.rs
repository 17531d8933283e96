//! The TCP command table (`Command.java`, unchanged from 2020 to today).
//!
//! The numeric code of each command equals its position in the Java enum, which is what Jackson
//! accepts when a header carries `cmd` as an integer. Headers are always written with the name.

use std::fmt;

/// Who sends a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    ClientToServer,
    /// Server to client.
    ServerToClient,
    /// Defined in the enum but used by nobody (log and register commands).
    Unused,
}

/// How the body of a command is typed when a frame is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// A [`UserAgent`](super::UserAgent) (`HELLO_REQUEST`, `RECOMMEND_REQUEST`).
    UserAgent,
    /// A [`Subscription`](super::Subscription) (`SUBSCRIBE_REQUEST`, `UNSUBSCRIBE_REQUEST`).
    Subscription,
    /// A [`RedirectInfo`](super::RedirectInfo) (`REDIRECT_TO_CLIENT`).
    RedirectInfo,
    /// Raw bytes, kept as received: message, ack and every other command. Message bodies are
    /// parsed later according to the header's `protocoltype`.
    Raw,
}

macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $dir:ident; )*) => {
        /// One of the 37 TCP commands, with the numeric code of the reference table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Command {
            $( $(#[$doc])* $variant = $code, )*
        }

        impl Command {
            /// Every command, in code order (`ALL[i].code() == i`).
            pub const ALL: [Command; 37] = [ $( Command::$variant, )* ];

            /// The enum name as written in the header's `cmd` field, e.g. `"HELLO_REQUEST"`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $( Command::$variant => $name, )* }
            }

            /// Who sends this command.
            #[must_use]
            pub const fn direction(self) -> Direction {
                match self { $( Command::$variant => Direction::$dir, )* }
            }

            /// Looks a command up by its exact (case-sensitive) enum name.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Command> {
                match name { $( $name => Some(Command::$variant), )* _ => None }
            }
        }
    };
}

commands! {
    /// 0: client heartbeat, every 30 s. No body.
    HeartbeatRequest = 0, "HEARTBEAT_REQUEST", ClientToServer;
    /// 1: answer to a heartbeat.
    HeartbeatResponse = 1, "HEARTBEAT_RESPONSE", ServerToClient;
    /// 2: handshake; body [`UserAgent`](super::UserAgent).
    HelloRequest = 2, "HELLO_REQUEST", ClientToServer;
    /// 3: handshake answer.
    HelloResponse = 3, "HELLO_RESPONSE", ServerToClient;
    /// 4: the client is leaving.
    ClientGoodbyeRequest = 4, "CLIENT_GOODBYE_REQUEST", ClientToServer;
    /// 5: answer to a client goodbye.
    ClientGoodbyeResponse = 5, "CLIENT_GOODBYE_RESPONSE", ServerToClient;
    /// 6: the server is closing the session (`desc` says why).
    ServerGoodbyeRequest = 6, "SERVER_GOODBYE_REQUEST", ServerToClient;
    /// 7: the client's answer to a server goodbye (only logged).
    ServerGoodbyeResponse = 7, "SERVER_GOODBYE_RESPONSE", ClientToServer;
    /// 8: subscribe; body [`Subscription`](super::Subscription).
    SubscribeRequest = 8, "SUBSCRIBE_REQUEST", ClientToServer;
    /// 9: subscribe answer.
    SubscribeResponse = 9, "SUBSCRIBE_RESPONSE", ServerToClient;
    /// 10: unsubscribe (all topics of the session); body [`Subscription`](super::Subscription).
    UnsubscribeRequest = 10, "UNSUBSCRIBE_REQUEST", ClientToServer;
    /// 11: unsubscribe answer.
    UnsubscribeResponse = 11, "UNSUBSCRIBE_RESPONSE", ServerToClient;
    /// 12: start pushing to this session.
    ListenRequest = 12, "LISTEN_REQUEST", ClientToServer;
    /// 13: listen answer (sent once per session).
    ListenResponse = 13, "LISTEN_RESPONSE", ServerToClient;
    /// 14: request-reply request from the requester.
    RequestToServer = 14, "REQUEST_TO_SERVER", ClientToServer;
    /// 15: request pushed to a SYNC subscriber.
    RequestToClient = 15, "REQUEST_TO_CLIENT", ServerToClient;
    /// 16: ack of a [`Command::RequestToClient`], by seq.
    RequestToClientAck = 16, "REQUEST_TO_CLIENT_ACK", ClientToServer;
    /// 17: the responder's reply.
    ResponseToServer = 17, "RESPONSE_TO_SERVER", ClientToServer;
    /// 18: the reply delivered to the requester (seq of the original request).
    ResponseToClient = 18, "RESPONSE_TO_CLIENT", ServerToClient;
    /// 19: ack of a [`Command::ResponseToClient`].
    ResponseToClientAck = 19, "RESPONSE_TO_CLIENT_ACK", ClientToServer;
    /// 20: asynchronous publish.
    AsyncMessageToServer = 20, "ASYNC_MESSAGE_TO_SERVER", ClientToServer;
    /// 21: publish answer (code 0 or 1).
    AsyncMessageToServerAck = 21, "ASYNC_MESSAGE_TO_SERVER_ACK", ServerToClient;
    /// 22: push to an ASYNC CLUSTERING subscriber.
    AsyncMessageToClient = 22, "ASYNC_MESSAGE_TO_CLIENT", ServerToClient;
    /// 23: ack of a [`Command::AsyncMessageToClient`].
    AsyncMessageToClientAck = 23, "ASYNC_MESSAGE_TO_CLIENT_ACK", ClientToServer;
    /// 24: broadcast publish.
    BroadcastMessageToServer = 24, "BROADCAST_MESSAGE_TO_SERVER", ClientToServer;
    /// 25: broadcast publish answer.
    BroadcastMessageToServerAck = 25, "BROADCAST_MESSAGE_TO_SERVER_ACK", ServerToClient;
    /// 26: push to a BROADCASTING subscriber.
    BroadcastMessageToClient = 26, "BROADCAST_MESSAGE_TO_CLIENT", ServerToClient;
    /// 27: ack of a [`Command::BroadcastMessageToClient`].
    BroadcastMessageToClientAck = 27, "BROADCAST_MESSAGE_TO_CLIENT_ACK", ClientToServer;
    /// 28: defined, unused.
    SysLogToLogserver = 28, "SYS_LOG_TO_LOGSERVER", Unused;
    /// 29: defined, unused.
    TraceLogToLogserver = 29, "TRACE_LOG_TO_LOGSERVER", Unused;
    /// 30: tells the client to reconnect elsewhere; body [`RedirectInfo`](super::RedirectInfo).
    RedirectToClient = 30, "REDIRECT_TO_CLIENT", ServerToClient;
    /// 31: defined, no processor.
    RegisterRequest = 31, "REGISTER_REQUEST", Unused;
    /// 32: defined, no processor.
    RegisterResponse = 32, "REGISTER_RESPONSE", Unused;
    /// 33: defined, no processor.
    UnregisterRequest = 33, "UNREGISTER_REQUEST", Unused;
    /// 34: defined, no processor.
    UnregisterResponse = 34, "UNREGISTER_RESPONSE", Unused;
    /// 35: asks which runtime to use; body [`UserAgent`](super::UserAgent). Allowed before HELLO.
    RecommendRequest = 35, "RECOMMEND_REQUEST", ClientToServer;
    /// 36: recommendation answer; body the string `"ip:port"`.
    RecommendResponse = 36, "RECOMMEND_RESPONSE", ServerToClient;
}

impl Command {
    /// The numeric code (the Java enum ordinal).
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The command with this numeric code, if any.
    #[must_use]
    pub fn from_code(code: i64) -> Option<Command> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Command::ALL.get(i).copied())
    }

    /// How the body of this command is typed on decode (the Java codec's `deserializeBody`).
    #[must_use]
    pub const fn body_kind(self) -> BodyKind {
        match self {
            Command::HelloRequest | Command::RecommendRequest => BodyKind::UserAgent,
            Command::SubscribeRequest | Command::UnsubscribeRequest => BodyKind::Subscription,
            Command::RedirectToClient => BodyKind::RedirectInfo,
            _ => BodyKind::Raw,
        }
    }

    /// The command a server answers this request with, including when the request fails
    /// (`code = 1`). `None` for commands that get no answer.
    #[must_use]
    pub const fn reply(self) -> Option<Command> {
        Some(match self {
            Command::HeartbeatRequest => Command::HeartbeatResponse,
            Command::HelloRequest => Command::HelloResponse,
            Command::ClientGoodbyeRequest => Command::ClientGoodbyeResponse,
            Command::ServerGoodbyeRequest => Command::ServerGoodbyeResponse,
            Command::SubscribeRequest => Command::SubscribeResponse,
            Command::UnsubscribeRequest => Command::UnsubscribeResponse,
            Command::ListenRequest => Command::ListenResponse,
            Command::RequestToServer => Command::ResponseToClient,
            Command::AsyncMessageToServer => Command::AsyncMessageToServerAck,
            Command::BroadcastMessageToServer => Command::BroadcastMessageToServerAck,
            Command::RegisterRequest => Command::RegisterResponse,
            Command::UnregisterRequest => Command::UnregisterResponse,
            Command::RecommendRequest => Command::RecommendResponse,
            _ => return None,
        })
    }

    /// The ack a client sends for this server push, if it is one.
    #[must_use]
    pub const fn ack(self) -> Option<Command> {
        Some(match self {
            Command::RequestToClient => Command::RequestToClientAck,
            Command::ResponseToClient => Command::ResponseToClientAck,
            Command::AsyncMessageToClient => Command::AsyncMessageToClientAck,
            Command::BroadcastMessageToClient => Command::BroadcastMessageToClientAck,
            _ => return None,
        })
    }

    /// Whether the body carries an event (publish, push, request-reply).
    #[must_use]
    pub const fn carries_event(self) -> bool {
        matches!(
            self,
            Command::RequestToServer
                | Command::RequestToClient
                | Command::ResponseToServer
                | Command::ResponseToClient
                | Command::AsyncMessageToServer
                | Command::AsyncMessageToClient
                | Command::BroadcastMessageToServer
                | Command::BroadcastMessageToClient
        )
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Command {
    type Err = crate::ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::from_name(s).ok_or_else(|| crate::ProtocolError::UnknownCommand(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_positions_and_names_are_unique() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.code()), i);
            assert_eq!(Command::from_code(i64::try_from(i).unwrap()), Some(*c));
            assert_eq!(Command::from_name(c.name()), Some(*c));
        }
        assert_eq!(Command::from_code(37), None);
        assert_eq!(Command::from_code(-1), None);
        assert_eq!(Command::from_name("hello_request"), None);
    }

    #[test]
    fn reference_table_spot_checks() {
        assert_eq!(Command::HeartbeatRequest.code(), 0);
        assert_eq!(Command::ListenResponse.code(), 13);
        assert_eq!(Command::AsyncMessageToServer.code(), 20);
        assert_eq!(Command::RedirectToClient.code(), 30);
        assert_eq!(Command::RegisterRequest.code(), 31);
        assert_eq!(Command::UnregisterResponse.code(), 34);
        assert_eq!(Command::RecommendResponse.code(), 36);
        assert_eq!(
            Command::RequestToServer.reply(),
            Some(Command::ResponseToClient)
        );
        assert_eq!(
            Command::AsyncMessageToClient.ack(),
            Some(Command::AsyncMessageToClientAck)
        );
    }
}
