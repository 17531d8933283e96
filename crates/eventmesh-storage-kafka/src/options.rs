//! Options of the Kafka store: where the brokers are and how topics and groups are made.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::KafkaStoreError;
use crate::names::valid_prefix;

/// How to reach Kafka and how to lay the mesh out on it.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// The bootstrap brokers, `kafka://h1:9092,h2:9092`.
    pub url: String,
    /// Prefix of every Kafka topic the store makes (`[A-Za-z0-9._-]`, at most 64 bytes; may be
    /// empty, the default, so that mesh topic `orders` is Kafka topic `orders`).
    pub topic_prefix: String,
    /// Prefix of every consumer group id the store makes (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub group_prefix: String,
    /// Partitions of the topics the store creates.
    pub partitions: u32,
    /// Replication factor of the topics the store creates.
    pub replication_factor: u16,
    /// How long a publish may wait for the brokers' acknowledgement (librdkafka's
    /// `message.timeout.ms`) before it fails with `Unavailable`.
    pub publish_timeout: Duration,
    /// How long a metadata, admin, offset or commit request may take before the call fails with
    /// `Unavailable`.
    pub request_timeout: Duration,
    /// The consumer group session timeout: a node that stops heartbeating for that long loses
    /// its partitions to the other nodes of the group.
    pub session_timeout: Duration,
    /// The idempotent producer (`enable.idempotence`): a retried produce is stored once.
    pub idempotence: bool,
    /// The longest commit metadata the store writes per partition (the broker's
    /// `offset.metadata.max.bytes`, 4096 on Apache Kafka).
    pub metadata_max_bytes: usize,
    /// Where cursor state (acks above the committed offset, delivery counts) survives a
    /// restart: see [`CursorState`].
    pub cursor_state: CursorState,
    /// Further librdkafka properties for every client (security settings, for instance
    /// `security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`). Logs show the
    /// keys only.
    pub properties: BTreeMap<String, String>,
}

impl KafkaOptions {
    /// Options for `url` with every other value at its default.
    pub fn new(url: impl Into<String>) -> Self {
        KafkaOptions {
            url: url.into(),
            ..KafkaOptions::default()
        }
    }

    /// Checks the options and returns the bootstrap list (`h1:9092,h2:9092`).
    pub(crate) fn bootstrap(&self) -> Result<String, KafkaStoreError> {
        for (name, p) in [
            ("topic_prefix", &self.topic_prefix),
            ("group_prefix", &self.group_prefix),
        ] {
            if !valid_prefix(p) {
                return Err(KafkaStoreError::Config(format!(
                    "{name} `{p}` is invalid: use at most 64 ASCII letters, digits, `.`, `_` or `-`"
                )));
            }
        }
        if self.partitions == 0 || self.partitions > 10_000 {
            return Err(KafkaStoreError::Config(format!(
                "partitions is {}; use 1 to 10000",
                self.partitions
            )));
        }
        if self.replication_factor == 0 {
            return Err(KafkaStoreError::Config(
                "replication_factor must be at least 1".to_owned(),
            ));
        }
        for (name, d) in [
            ("publish_timeout", self.publish_timeout),
            ("request_timeout", self.request_timeout),
            ("session_timeout", self.session_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(KafkaStoreError::Config(format!(
                    "{name} must be at least 100ms"
                )));
            }
        }
        if self.metadata_max_bytes < 64 {
            return Err(KafkaStoreError::Config(
                "metadata_max_bytes must be at least 64".to_owned(),
            ));
        }
        if let Some(k) = self
            .properties
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return Err(KafkaStoreError::Config(format!(
                "property `{k}` is set by the store itself and cannot be given"
            )));
        }
        parse_url(&self.url)
    }
}

/// Where the store keeps a cursor's state beyond its committed offset: the events acked above it
/// and the delivery counts (see the `state` module of this crate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CursorState {
    /// Ask the brokers at start-up: commit metadata where they give it back, state topics
    /// where they do not.
    #[default]
    Auto,
    /// In the metadata of the offset commits only (Apache Kafka keeps and returns it).
    Metadata,
    /// Also in a state topic per cursor, written before each commit whose state changed
    /// (for brokers that drop commit metadata, such as tansu 0.6).
    Topic,
}

/// librdkafka properties the store sets itself.
const RESERVED: [&str; 10] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "message.timeout.ms",
    "auto.offset.reset",
    "allow.auto.create.topics",
    "enable.partition.eof",
];

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            url: "kafka://127.0.0.1:9092".to_owned(),
            topic_prefix: String::new(),
            group_prefix: "eventmesh.".to_owned(),
            partitions: 1,
            replication_factor: 1,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            idempotence: true,
            metadata_max_bytes: 4000,
            cursor_state: CursorState::Auto,
            properties: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("url", &self.url)
            .field("topic_prefix", &self.topic_prefix)
            .field("group_prefix", &self.group_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("publish_timeout", &self.publish_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("session_timeout", &self.session_timeout)
            .field("idempotence", &self.idempotence)
            .field("metadata_max_bytes", &self.metadata_max_bytes)
            .field("cursor_state", &self.cursor_state)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `kafka://h1:9092,h2:9092` (each host may repeat the scheme) → `h1:9092,h2:9092`.
fn parse_url(url: &str) -> Result<String, KafkaStoreError> {
    let bad = |why: &str| KafkaStoreError::Config(format!("Kafka URL `{url}` {why}"));
    let Some(rest) = url.strip_prefix("kafka://") else {
        return Err(bad(
            "must start with kafka:// (e.g. kafka://h1:9092,h2:9092)",
        ));
    };
    let mut hosts = Vec::new();
    for part in rest.split(',') {
        let host = part.trim();
        let host = host.strip_prefix("kafka://").unwrap_or(host);
        let host = host.trim_end_matches('/');
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if host.contains(['/', '@']) || host.contains(char::is_whitespace) || !port_ok {
            return Err(bad(
                "lists a host that is not host:port (credentials go in `properties`)",
            ));
        }
        hosts.push(host.to_owned());
    }
    Ok(hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_several_hosts() {
        assert_eq!(parse_url("kafka://h1:9092").unwrap(), "h1:9092");
        assert_eq!(
            parse_url("kafka://h1:9092, kafka://h2:9093/").unwrap(),
            "h1:9092,h2:9093"
        );
        assert_eq!(
            parse_url("kafka://[::1]:9092,h2:1").unwrap(),
            "[::1]:9092,h2:1"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "h:9092",
            "nats://h:1",
            "kafka://",
            "kafka://h",
            "kafka://h:0",
            "kafka://h:x",
            "kafka://u:p@h:1",
            "kafka://h:1,",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn options_are_checked() {
        let mut o = KafkaOptions::default();
        assert_eq!(o.bootstrap().unwrap(), "127.0.0.1:9092");
        o.topic_prefix = "a/b".into();
        assert!(o.bootstrap().is_err());
        o = KafkaOptions::default();
        o.partitions = 0;
        assert!(o.bootstrap().is_err());
        o = KafkaOptions::default();
        o.publish_timeout = Duration::ZERO;
        assert!(o.bootstrap().is_err());
        o = KafkaOptions::default();
        o.properties.insert("group.id".into(), "x".into());
        assert!(o.bootstrap().is_err());
        o = KafkaOptions::default();
        o.properties.insert("sasl.password".into(), "secret".into());
        assert!(o.bootstrap().is_ok());
        assert!(!format!("{o:?}").contains("secret"));
    }
}
