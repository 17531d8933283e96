//! `[storage]`: which event store the node uses, `[storage.embedded]`, the durable embedded
//! store's settings, `[storage.nats]`, the NATS JetStream store's, `[storage.redis]`, the
//! Redis Streams store's, `[storage.rabbitmq]`, the RabbitMQ store's, `[storage.kafka]`, the
//! Kafka store's, and `[storage.rocketmq]`, the RocketMQ store's.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use eventmesh_core::redact::mask_url;

/// The event-store backends compiled into this build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageKind {
    /// The durable embedded store in `node.data_dir` (the default).
    #[default]
    Embedded,
    /// A volatile in-memory store: events are lost when the process exits.
    Memory,
    /// NATS JetStream at `storage.url` (`nats://h1:4222,h2:4222`): the store for several nodes.
    Nats,
    /// Redis Streams at `storage.url` (`redis://h:6379`): one Redis primary shared by several nodes.
    Redis,
    /// RabbitMQ streams at `storage.url` (`amqp://user:pass@h:5672/vhost`).
    Rabbitmq,
    /// Kafka at `storage.url` (`kafka://h1:9092,h2:9092`): topics as Kafka topics, groups as
    /// consumer groups.
    Kafka,
    /// RocketMQ at `storage.url` (the name servers, `rocketmq://h1:9876[,h2:9876]`).
    Rocketmq,
}

impl StorageKind {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Embedded => "embedded",
            StorageKind::Memory => "memory",
            StorageKind::Nats => "nats",
            StorageKind::Redis => "redis",
            StorageKind::Rabbitmq => "rabbitmq",
            StorageKind::Kafka => "kafka",
            StorageKind::Rocketmq => "rocketmq",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The backend: `embedded` (default), `memory`, `nats`, `redis`, `rabbitmq`, `kafka` or
    /// `rocketmq`.
    #[serde(rename = "type")]
    pub kind: StorageKind,
    /// The broker URL of external backends (`nats://h1:4222,h2:4222` for `nats`,
    /// `redis://[:password@]h:6379[/db]` for `redis`, `amqp://user:pass@h:5672/vhost` for
    /// `rabbitmq`, `kafka://h1:9092,h2:9092` for `kafka`, `rocketmq://h1:9876[,h2:9876]` (the name
    /// servers) for `rocketmq`; unused by `embedded` and `memory`). Any password in it is masked
    /// in logs.
    pub url: String,
    /// `[storage.embedded]`.
    pub embedded: EmbeddedStorageConfig,
    /// `[storage.nats]`.
    pub nats: NatsStorageConfig,
    /// `[storage.redis]`.
    pub redis: RedisStorageConfig,
    /// `[storage.rabbitmq]`.
    pub rabbitmq: RabbitmqStorageConfig,
    /// `[storage.kafka]`.
    pub kafka: KafkaStorageConfig,
    /// `[storage.rocketmq]`.
    pub rocketmq: RocketmqStorageConfig,
}

/// `[storage.kafka]`: the Kafka store (with `storage.type = "kafka"`): each topic is a Kafka
/// topic, each cursor a consumer group whose committed offset is the lowest event not yet done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaStorageConfig {
    /// Prefix of every Kafka topic the mesh makes (`[A-Za-z0-9._-]`, at most 64 bytes; empty:
    /// mesh topic `orders` is Kafka topic `orders`).
    pub topic_prefix: String,
    /// Prefix of every consumer group id the mesh makes (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub group_prefix: String,
    /// Partitions of the topics the mesh creates.
    pub partitions: u32,
    /// Replication factor of the topics the mesh creates.
    pub replication_factor: u16,
    /// How long a publish may wait for the brokers' acknowledgement before it fails.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// How long a metadata, admin, offset or commit request may take before it fails.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The consumer group session timeout.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// The idempotent producer: a retried produce is stored once.
    pub idempotence: bool,
    /// The longest commit metadata written per partition (the broker's
    /// `offset.metadata.max.bytes`).
    pub metadata_max_bytes: usize,
    /// Where cursor state beyond the committed offset (acks out of order, delivery counts)
    /// survives a restart: `auto` asks the brokers at start-up, `metadata` uses the commits'
    /// metadata only, `topic` also writes a state topic per cursor.
    pub cursor_state: KafkaCursorState,
    /// Further librdkafka properties for every client, as `"key=value"` (security settings such
    /// as `"security.protocol=SASL_SSL"`). Values are never logged.
    pub properties: Vec<String>,
}

impl Default for KafkaStorageConfig {
    fn default() -> Self {
        KafkaStorageConfig {
            topic_prefix: String::new(),
            group_prefix: "eventmesh.".to_owned(),
            partitions: 1,
            replication_factor: 1,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            idempotence: true,
            metadata_max_bytes: 4000,
            cursor_state: KafkaCursorState::Auto,
            properties: Vec::new(),
        }
    }
}

/// `storage.kafka.cursor_state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCursorState {
    /// Commit metadata where the brokers give it back, state topics where they do not.
    #[default]
    Auto,
    /// Commit metadata only (Apache Kafka).
    Metadata,
    /// Commit metadata and a state topic per cursor.
    Topic,
}

/// `[storage.rocketmq]`: the RocketMQ store (with `storage.type = "rocketmq"`): each topic is a
/// RocketMQ topic with one queue, each cursor a consumer group whose state the serving node
/// keeps and writes to a state topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RocketmqStorageConfig {
    /// Prefix of every topic and consumer group the store makes (ASCII letters, digits, `-`; at
    /// most 32 bytes); meshes sharing one cluster need different prefixes.
    pub prefix: String,
    /// The cluster (`brokerClusterName`) whose first master broker holds new topics.
    pub cluster: String,
    /// How long any call to a name server or broker may take before it fails (also the bound
    /// on a publish's failure while the broker is down).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Messages one pull reads at most (1 to 1024).
    pub pull_batch: u32,
    /// The largest message the brokers take (their `maxMessageSize`).
    pub max_message_bytes: usize,
    /// How often the node serving a cursor renews the broker's lock of the cursor's queue;
    /// well under the broker's `rocketmq.broker.rebalance.lockMaxLiveTime` (60 s by default).
    #[serde(with = "humantime_serde")]
    pub lock_renew: Duration,
    /// `[storage.rocketmq.defibus]`.
    pub defibus: DefibusStorageConfig,
}

impl Default for RocketmqStorageConfig {
    fn default() -> Self {
        RocketmqStorageConfig {
            prefix: "EVENTMESH".to_owned(),
            cluster: "DefaultCluster".to_owned(),
            request_timeout: Duration::from_secs(3),
            pull_batch: 256,
            max_message_bytes: 4 * 1024 * 1024,
            lock_renew: Duration::from_secs(15),
            defibus: DefibusStorageConfig::default(),
        }
    }
}

impl KafkaStorageConfig {
    /// `properties` as (key, value) pairs; entries without `=` are left out (validation
    /// reports them).
    pub fn property_pairs(&self) -> Vec<(String, String)> {
        self.properties
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
            .collect()
    }
}

/// `[storage.rocketmq.defibus]`: what a DeFiBus broker (WeBank's RocketMQ fork) needs. Untested:
/// no DeFiBus broker was available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefibusStorageConfig {
    /// Write the DeFiBus request-reply properties (`REPLY_TO`, `RR_REQUEST_UNIQ_ID`, `TTL`,
    /// `CLUSTER`, `msgType`) and create `<cluster>-rr-reply-topic`.
    pub enabled: bool,
    /// The DeFiBus cluster name.
    pub cluster: String,
    /// The `TTL` of events without `ttl` or `expiresat`.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
}

impl Default for DefibusStorageConfig {
    fn default() -> Self {
        DefibusStorageConfig {
            enabled: false,
            cluster: "DefaultCluster".to_owned(),
            default_ttl: Duration::from_secs(4 * 3600),
        }
    }
}

/// `[storage.rabbitmq]`: the RabbitMQ store (with `storage.type = "rabbitmq"`): each topic is a
/// stream behind a fanout exchange, each cursor a state queue; leases are kept by the node that
/// serves the cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitmqStorageConfig {
    /// Prefix of every exchange and queue name (letters, digits, `-`, `_`, `.`; at most 32
    /// bytes); meshes sharing one vhost need different prefixes.
    pub prefix: String,
    /// Stream deliveries each cursor reader may hold un-acknowledged (`basic.qos`).
    pub prefetch: u16,
    /// How long a publish may wait for the broker's confirm (also the bound on a call's failure
    /// while the broker is down).
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// The longest pause between two reconnection attempts.
    #[serde(with = "humantime_serde")]
    pub max_reconnect_backoff: Duration,
    /// A BROADCASTING member's cursor is removed by the broker after this long unused.
    #[serde(with = "humantime_serde")]
    pub member_expiry: Duration,
    /// A CLUSTERING group's cursor is removed by the broker after this long unused.
    #[serde(with = "humantime_serde")]
    pub group_expiry: Duration,
    /// Topic streams drop events older than this (whole seconds); 0 = unlimited.
    #[serde(with = "humantime_serde")]
    pub retention_age: Duration,
    /// Topic streams drop their oldest events beyond this many bytes; 0 = unlimited.
    pub retention_bytes: u64,
}

impl Default for RabbitmqStorageConfig {
    fn default() -> Self {
        RabbitmqStorageConfig {
            prefix: "eventmesh".to_owned(),
            prefetch: 512,
            confirm_timeout: Duration::from_secs(5),
            max_reconnect_backoff: Duration::from_secs(2),
            member_expiry: Duration::from_secs(24 * 3600),
            group_expiry: Duration::from_secs(7 * 24 * 3600),
            retention_age: Duration::ZERO,
            retention_bytes: 0,
        }
    }
}

/// `[storage.redis]`: the Redis Streams store (with `storage.type = "redis"`). Leases are the
/// core's `delivery.crash_lease`; publishes are durable as Redis's `appendfsync` makes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisStorageConfig {
    /// Prefix of every key the store writes; meshes sharing one Redis database need different
    /// prefixes.
    pub key_prefix: String,
    /// How long a request to Redis may take before it fails (also the bound on a publish's
    /// failure while Redis is down).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The longest single blocking read of a fetch: redeliveries made due on other nodes are
    /// seen within it.
    #[serde(with = "humantime_serde")]
    pub fetch_block: Duration,
    /// A BROADCASTING member's cursor is deleted after this long unused.
    #[serde(with = "humantime_serde")]
    pub member_expiry: Duration,
}

impl Default for RedisStorageConfig {
    fn default() -> Self {
        RedisStorageConfig {
            key_prefix: "eventmesh".to_owned(),
            request_timeout: Duration::from_secs(5),
            fetch_block: Duration::from_millis(250),
            member_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[storage.nats]`: the NATS JetStream store (with `storage.type = "nats"`). The consumers'
/// `AckWait` is `delivery.crash_lease`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsStorageConfig {
    /// Copies of each topic's stream: 1, or 3 or 5 on a JetStream cluster.
    pub replicas: usize,
    /// Prefix of stream names and subjects (`[A-Za-z0-9-]`, at most 32 bytes); meshes sharing one
    /// NATS system need different prefixes.
    pub stream_prefix: String,
    /// How long a JetStream call or a publish acknowledgement may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The longest pause between two reconnection attempts.
    #[serde(with = "humantime_serde")]
    pub max_reconnect_backoff: Duration,
    /// A BROADCASTING member's consumer is removed after this long unused.
    #[serde(with = "humantime_serde")]
    pub member_expiry: Duration,
}

impl Default for NatsStorageConfig {
    fn default() -> Self {
        NatsStorageConfig {
            replicas: 1,
            stream_prefix: "EVENTMESH".to_owned(),
            request_timeout: Duration::from_secs(5),
            max_reconnect_backoff: Duration::from_secs(2),
            member_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

/// When the embedded store calls `fdatasync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every group-committed batch, before the publish is acknowledged (the default): an
    /// acknowledged event survives a crash or power cut.
    #[default]
    Batch,
    /// In the background every `fsync_interval`: a power cut can lose the last interval's
    /// acknowledged events (a process crash cannot).
    Interval,
    /// Never explicitly; the OS writes back when it likes.
    Never,
}

impl FsyncPolicy {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Batch => "batch",
            FsyncPolicy::Interval => "interval",
            FsyncPolicy::Never => "never",
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[storage.embedded]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedStorageConfig {
    /// `batch` (default), `interval` or `never`.
    pub fsync: FsyncPolicy,
    /// The period of background syncs under `fsync = "interval"`; must be above 0 then.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// The size at which a segment file is rolled (default 64 MiB); at least 4096.
    pub segment_bytes: u64,
    /// Oldest segments of a topic are deleted beyond this many bytes; 0 = unlimited.
    pub retention_bytes: u64,
    /// Segments whose newest event is older than this are deleted; 0 = unlimited.
    #[serde(with = "humantime_serde")]
    pub retention_age: Duration,
}

impl Default for EmbeddedStorageConfig {
    fn default() -> Self {
        EmbeddedStorageConfig {
            fsync: FsyncPolicy::Batch,
            fsync_interval: Duration::from_millis(100),
            segment_bytes: 64 * 1024 * 1024,
            retention_bytes: 0,
            retention_age: Duration::ZERO,
        }
    }
}

/// The smallest accepted `storage.embedded.segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
