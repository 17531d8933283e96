//! What the runtime core knows about a connected client, whatever its transport.

use std::fmt;
use std::net::SocketAddr;

/// The transport a session arrived on. The core never branches on it for delivery decisions;
/// it is carried for logs, metrics and admin views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The EventMesh TCP protocol.
    Tcp,
    /// HTTP (request-code protocol, REST, CloudEvents binding, webhooks).
    Http,
    /// gRPC.
    Grpc,
    /// MQTT.
    Mqtt,
    /// In-process (tests, embedded use).
    InProcess,
}

impl Transport {
    /// A short lower-case name for labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Http => "http",
            Transport::Grpc => "grpc",
            Transport::Mqtt => "mqtt",
            Transport::InProcess => "inprocess",
        }
    }
}

/// A unique id of a session within one runtime process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// Who a session authenticated as. Filled by the security work; `None` means anonymous.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The authenticated subject (user name, token `sub`, SPIFFE id).
    pub subject: String,
}

/// Transport-neutral facts about one session.
#[derive(Clone, Debug)]
pub struct SessionMeta {
    /// The session's id.
    pub id: SessionId,
    /// The transport it arrived on.
    pub transport: Transport,
    /// The peer address, when there is one.
    pub peer: Option<SocketAddr>,
    /// A stable client identity for BROADCASTING positions (see `docs/ARCHITECTURE.md`), e.g.
    /// `host/pid/path` from a TCP UserAgent, or an explicit `clientid`.
    pub client_identity: String,
    /// The authenticated principal, if any.
    pub principal: Option<Principal>,
    /// W3C `traceparent` of the session's context, when the client sent one.
    pub traceparent: Option<String>,
}
