//! The HTTP client's configuration.

use std::time::Duration;

/// How events travel to the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HttpMode {
    /// The request-code protocol (as the Java SDK).
    #[default]
    Legacy,
    /// The CloudEvents HTTP binding on `/eventmesh/publish/{topic}`.
    CloudEvents,
}

/// Configuration of [`super::HttpPublisher`] and [`super::HttpSubscriber`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The mesh's HTTP base URL, e.g. `http://127.0.0.1:10105`.
    pub base_url: String,
    /// Wire mode of publishes.
    pub mode: HttpMode,
    /// Legacy mode: send events as structured CloudEvent JSON (`protocoltype: cloudevents`)
    /// instead of `eventmeshmessage`.
    pub cloudevents_content: bool,
    /// The producer group (`producergroup`).
    pub producer_group: String,
    /// The consumer group of a subscriber.
    pub consumer_group: String,
    /// `env` header.
    pub env: String,
    /// `idc` header.
    pub idc: String,
    /// `sys` header.
    pub sys: String,
    /// `Authorization` header value, when the mesh wants one (`Basic …` / `Bearer …`).
    pub authorization: Option<String>,
    /// How long one call may take (request-reply waits for its ttl on top).
    pub timeout: Duration,
    /// How often a subscriber heart-beats (the Java SDK: 30 s).
    pub heartbeat_interval: Duration,
}

impl HttpConfig {
    /// Defaults for the mesh at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            mode: HttpMode::Legacy,
            cloudevents_content: false,
            producer_group: "eventmesh-sdk-rust".to_owned(),
            consumer_group: "eventmesh-sdk-rust".to_owned(),
            env: "env".to_owned(),
            idc: "idc".to_owned(),
            sys: "1234".to_owned(),
            authorization: None,
            timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
        }
    }

    /// Sets the wire mode.
    #[must_use]
    pub fn mode(mut self, mode: HttpMode) -> Self {
        self.mode = mode;
        self
    }

    /// Legacy mode with CloudEvent JSON content (`protocoltype: cloudevents`).
    #[must_use]
    pub fn cloudevents(mut self) -> Self {
        self.cloudevents_content = true;
        self
    }

    /// Sets the producer group.
    #[must_use]
    pub fn producer_group(mut self, g: impl Into<String>) -> Self {
        self.producer_group = g.into();
        self
    }

    /// Sets the consumer group.
    #[must_use]
    pub fn consumer_group(mut self, g: impl Into<String>) -> Self {
        self.consumer_group = g.into();
        self
    }

    /// Sets the `Authorization` header value.
    #[must_use]
    pub fn authorization(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }

    /// Sets the call timeout.
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets the heartbeat interval.
    #[must_use]
    pub fn heartbeat_interval(mut self, t: Duration) -> Self {
        self.heartbeat_interval = t;
        self
    }
}
