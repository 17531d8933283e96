//! Client configuration and its builder.

use std::time::Duration;

use eventmesh_core::GroupName;
use eventmesh_protocol::tcp::{DEFAULT_MAX_FRAME_BYTES, ProtocolType, UserAgent};

use crate::error::Error;
use crate::reconnect::ReconnectPolicy;

/// The default server address (the runtime's TCP port).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:10000";
/// The default heartbeat interval (the Java SDK's, 30 s).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// The default time to wait for the server's answer to a request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed to open the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The `version` a client reports in its HELLO.
pub const SDK_VERSION: &str = concat!("eventmesh-sdk-rust/", env!("CARGO_PKG_VERSION"));

/// What the client connects for (the HELLO `purpose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Purpose {
    /// Publishes (and requests) only.
    #[default]
    Pub,
    /// Subscribes, and may publish as well. Only these clients may subscribe.
    Sub,
}

impl Purpose {
    /// The wire value, `pub` or `sub`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Purpose::Pub => "pub",
            Purpose::Sub => "sub",
        }
    }
}

/// The body format of events on the wire (the `protocoltype` header property).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// `eventmeshmessage`: `{"topic","properties","headers","body"}`; the data must be UTF-8.
    #[default]
    EventMeshMessage,
    /// `cloudevents`: the event in structured CloudEvents JSON.
    CloudEvents,
}

impl Protocol {
    /// The wire protocol type.
    #[must_use]
    pub const fn wire(self) -> ProtocolType {
        match self {
            Protocol::EventMeshMessage => ProtocolType::EventMeshMessage,
            Protocol::CloudEvents => ProtocolType::CloudEvents,
        }
    }

    /// Parses `eventmeshmessage` or `cloudevents` (case-insensitive).
    #[must_use]
    pub fn parse(s: &str) -> Option<Protocol> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("eventmeshmessage") {
            Some(Protocol::EventMeshMessage)
        } else if s.eq_ignore_ascii_case("cloudevents") {
            Some(Protocol::CloudEvents)
        } else {
            None
        }
    }
}

/// A validated client configuration. Build it with [`ClientConfig::builder`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) address: String,
    pub(crate) user_agent: UserAgent,
    pub(crate) purpose: Purpose,
    pub(crate) protocol: Protocol,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) subscriber_buffer: usize,
    pub(crate) client_id: Option<String>,
}

impl ClientConfig {
    /// A builder for a client of `group` at `address` (`host:port`).
    pub fn builder(address: impl Into<String>, group: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder::new(address.into(), group.into())
    }

    /// The server address.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The client's group.
    #[must_use]
    pub fn group(&self) -> &str {
        self.user_agent.group.as_deref().unwrap_or_default()
    }

    /// What the client connects for.
    #[must_use]
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The body format of published events.
    #[must_use]
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The HELLO body this client sends.
    #[must_use]
    pub fn user_agent(&self) -> &UserAgent {
        &self.user_agent
    }

    /// How long requests wait for the server's answer.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// Builds a [`ClientConfig`]; every setter has a sensible default except the address and group.
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

impl ClientConfigBuilder {
    fn new(address: String, group: String) -> Self {
        let user_agent = UserAgent {
            env: Some("dev".into()),
            subsystem: Some("5023".into()),
            path: std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string()),
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            host: Some("127.0.0.1".into()),
            version: Some(SDK_VERSION.into()),
            idc: Some("default".into()),
            group: Some(group),
            purpose: Some(Purpose::Pub.as_str().into()),
            ..UserAgent::default()
        };
        ClientConfigBuilder {
            config: ClientConfig {
                address,
                user_agent,
                purpose: Purpose::Pub,
                protocol: Protocol::EventMeshMessage,
                heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                reconnect: ReconnectPolicy::default(),
                max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                max_in_flight: 1024,
                subscriber_buffer: 1024,
                client_id: None,
            },
        }
    }

    /// The environment name (HELLO `env`).
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.config.user_agent.env = Some(env.into());
        self
    }

    /// The data-centre name (HELLO `idc`).
    pub fn idc(mut self, idc: impl Into<String>) -> Self {
        self.config.user_agent.idc = Some(idc.into());
        self
    }

    /// The subsystem (application) id (HELLO `subsystem`).
    pub fn subsystem(mut self, subsystem: impl Into<String>) -> Self {
        self.config.user_agent.subsystem = Some(subsystem.into());
        self
    }

    /// The process id reported (default: this process's).
    pub fn pid(mut self, pid: i32) -> Self {
        self.config.user_agent.pid = pid;
        self
    }

    /// The host reported (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.user_agent.host = Some(host.into());
        self
    }

    /// The program path reported (default: this executable's).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.user_agent.path = Some(path.into());
        self
    }

    /// The credentials (HELLO `username` and `password`).
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.user_agent.username = Some(username.into());
        self.config.user_agent.password = Some(password.into());
        self
    }

    /// An access token (HELLO `token`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.user_agent.token = Some(token.into());
        self
    }

    /// What the client connects for (default [`Purpose::Pub`]; subscribing needs
    /// [`Purpose::Sub`]).
    pub fn purpose(mut self, purpose: Purpose) -> Self {
        self.config.purpose = purpose;
        self.config.user_agent.purpose = Some(purpose.as_str().into());
        self
    }

    /// The un-acknowledged window this client asks the server for (HELLO `unack`; 0 = the
    /// server's default).
    pub fn unack_window(mut self, unack: u16) -> Self {
        self.config.user_agent.unack = i32::from(unack);
        self
    }

    /// The body format of published events and replies (default `eventmeshmessage`).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// How often a heartbeat is sent (default 30 s). A heartbeat left unanswered for a whole
    /// interval counts as a lost connection.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// How long a request waits for the server's answer (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How long opening the TCP connection may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The reconnect policy (default: forever, 100 ms doubling to 5 s, with jitter).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// The largest frame sent or accepted (default 4 MiB).
    pub fn max_frame_bytes(mut self, max: usize) -> Self {
        self.config.max_frame_bytes = max;
        self
    }

    /// Requests (publishes, request-replies, subscribes) waiting for an answer at once (default
    /// 1024); further calls wait for a slot.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.config.max_in_flight = max;
        self
    }

    /// Pushed events buffered per subscription while its handler is busy (default 1024). A push
    /// that finds the buffer full is not acknowledged, so the server delivers it again.
    pub fn subscriber_buffer(mut self, size: usize) -> Self {
        self.config.subscriber_buffer = size;
        self
    }

    /// The client's identity, sent as the HELLO `clientid` property (default: random per
    /// [`Client`](crate::Client), kept across its reconnects). A BROADCASTING member that comes
    /// back with the same identity resumes where it left off, so set a stable one to resume
    /// across process restarts; two live clients must not share one.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = Some(id.into());
        self
    }

    /// Checks the settings and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming every problem.
    pub fn build(self) -> Result<ClientConfig, Error> {
        let c = self.config;
        let mut problems = Vec::new();
        if c.address.trim().is_empty() || !c.address.contains(':') {
            problems.push(format!("address {:?} is not host:port", c.address));
        }
        if let Err(e) = GroupName::new(c.group()) {
            problems.push(format!("group: {e}"));
        }
        for (name, d) in [
            ("heartbeat_interval", c.heartbeat_interval),
            ("request_timeout", c.request_timeout),
            ("connect_timeout", c.connect_timeout),
        ] {
            if d.is_zero() {
                problems.push(format!("{name} must be greater than zero"));
            }
        }
        for (name, n) in [
            ("max_in_flight", c.max_in_flight),
            ("subscriber_buffer", c.subscriber_buffer),
        ] {
            if n == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if c.max_frame_bytes < 1024 {
            problems.push("max_frame_bytes must be at least 1024".into());
        }
        if c.client_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            problems.push("client_id must not be blank".into());
        }
        if let Err(e) = c.reconnect.validate() {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_the_user_agent() {
        let c = ClientConfig::builder("127.0.0.1:10000", "g")
            .purpose(Purpose::Sub)
            .credentials("u", "p")
            .unack_window(7)
            .build()
            .unwrap();
        let ua = c.user_agent();
        assert_eq!(ua.group.as_deref(), Some("g"));
        assert_eq!(ua.purpose.as_deref(), Some("sub"));
        assert_eq!(ua.username.as_deref(), Some("u"));
        assert_eq!(ua.unack, 7);
        assert!(ua.version.is_some());
        assert_eq!(c.group(), "g");
    }

    #[test]
    fn every_problem_is_reported() {
        let err = ClientConfig::builder("nowhere", "")
            .request_timeout(Duration::ZERO)
            .max_in_flight(0)
            .build()
            .unwrap_err();
        let text = err.to_string();
        for needle in ["address", "group", "request_timeout", "max_in_flight"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::parse("CloudEvents"), Some(Protocol::CloudEvents));
        assert_eq!(
            Protocol::parse("eventmeshmessage"),
            Some(Protocol::EventMeshMessage)
        );
        assert_eq!(Protocol::parse("openmessage"), None);
        assert_eq!(Protocol::CloudEvents.wire().as_str(), "cloudevents");
    }
}
