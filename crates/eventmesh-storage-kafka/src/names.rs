//! How topics, groups and members become Kafka topic names and consumer group ids.
//!
//! Kafka topic names may only hold `[A-Za-z0-9._-]` (at most 249 bytes), while mesh topics may
//! hold almost anything. Mesh names therefore go through one reversible encoding:
//!
//! * ASCII letters, digits, `.` and `-` stay as they are;
//! * every other byte of the UTF-8 form (including `_` itself) becomes `_` followed by two
//!   upper-case hex digits: `orders.created` stays `orders.created`, `a_b` → `a_5Fb`,
//!   `acme~orders/eu` (a tenant's topic) → `acme_7Eorders_2Feu`.
//!
//! With the topic prefix `T` and the group prefix `G` (options `topic_prefix`, default empty,
//! and `group_prefix`, default `eventmesh.`):
//!
//! | mesh object | Kafka object |
//! | --- | --- |
//! | topic `X` | topic `T<enc X>` |
//! | CLUSTERING group `N` on `X` | consumer group `G<enc N>@T<enc X>` |
//! | BROADCASTING member `M` of `N` on `X` | consumer group `G<enc N>+<enc M>@T<enc X>` |
//!
//! Each mesh cursor is its own Kafka consumer group, so seeking, unsubscribing or rebalancing
//! one cursor never disturbs another. `@` and `+` never occur in an encoded name or a Kafka
//! topic, so a group id names its cursor unambiguously, and the store finds the groups of a
//! topic it deletes by their `@T<enc X>` ending. Topics whose encoded name is longer than 249
//! bytes, or is `.` or `..`, are refused with `Invalid`.

use eventmesh_core::Topic;
use eventmesh_storage::ConsumerRef;
use eventmesh_storage::names::NameEscape;

use crate::error::KafkaStoreError;

/// The longest Kafka topic name.
pub const MAX_TOPIC_NAME: usize = 249;

/// The escaping of mesh names: `_XX` for every byte outside `[A-Za-z0-9.-]`.
const ESCAPE: NameEscape = NameEscape::new(b'_', b"-.");

/// Encodes a name so that it is a valid part of a Kafka topic name.
pub fn encode(name: &str) -> String {
    ESCAPE.encode(name)
}

/// Decodes what [`encode`] produced; `None` for anything it cannot have produced.
pub fn decode(encoded: &str) -> Option<String> {
    ESCAPE.decode(encoded)
}

/// Whether `prefix` is usable as a topic or group prefix (`[A-Za-z0-9._-]`, at most 64 bytes).
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The Kafka names of one mesh.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    topic_prefix: String,
    group_prefix: String,
}

impl Names {
    /// Names under prefixes already checked with [`valid_prefix`].
    pub(crate) fn new(topic_prefix: &str, group_prefix: &str) -> Self {
        Names {
            topic_prefix: topic_prefix.to_owned(),
            group_prefix: group_prefix.to_owned(),
        }
    }

    /// The Kafka topic of a mesh topic.
    pub(crate) fn topic(&self, topic: &Topic) -> Result<String, KafkaStoreError> {
        let name = format!("{}{}", self.topic_prefix, encode(&topic.to_string()));
        if name.len() > MAX_TOPIC_NAME || name == "." || name == ".." {
            return Err(KafkaStoreError::Config(format!(
                "topic `{topic}` becomes the Kafka topic name `{name}`, which Kafka refuses \
                 (at most {MAX_TOPIC_NAME} bytes, not `.` or `..`)"
            )));
        }
        Ok(name)
    }

    /// The mesh topic of a Kafka topic; `None` for topics this mesh did not make.
    pub(crate) fn topic_of(&self, kafka_topic: &str) -> Option<Topic> {
        if kafka_topic.starts_with("__") {
            return None;
        }
        let rest = kafka_topic.strip_prefix(&self.topic_prefix)?;
        Topic::parse(&decode(rest)?).ok()
    }

    /// The consumer group id of a cursor on `kafka_topic`.
    pub(crate) fn group(&self, c: &ConsumerRef, kafka_topic: &str) -> String {
        match &c.member {
            None => format!(
                "{}{}@{kafka_topic}",
                self.group_prefix,
                encode(c.group.as_str())
            ),
            Some(m) => format!(
                "{}{}+{}@{kafka_topic}",
                self.group_prefix,
                encode(c.group.as_str()),
                encode(m)
            ),
        }
    }

    /// Whether a group id names a cursor of `kafka_topic` made by this mesh.
    pub(crate) fn is_group_of(&self, group_id: &str, kafka_topic: &str) -> bool {
        group_id
            .strip_prefix(&self.group_prefix)
            .and_then(|rest| rest.rsplit_once('@'))
            .is_some_and(|(_, t)| t == kafka_topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::GroupName;

    #[test]
    fn encoding_round_trips_and_is_kafka_legal() {
        for name in [
            "orders",
            "orders.created",
            "a_b",
            "acme~orders/eu",
            "é ü",
            "x@y+z",
        ] {
            let e = encode(name);
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'),
                "{e}"
            );
            assert_eq!(decode(&e).as_deref(), Some(name));
        }
        assert_eq!(encode("orders.created"), "orders.created");
        assert_eq!(encode("a_b"), "a_5Fb");
        assert_eq!(decode("a_2Eb"), None, "a kept byte escaped");
        assert_eq!(decode("a_5"), None);
        assert_eq!(decode("a b"), None);
    }

    #[test]
    fn topics_and_groups() {
        let n = Names::new("mesh.", "eventmesh.");
        let t = Topic::new("orders/eu").unwrap();
        let k = n.topic(&t).unwrap();
        assert_eq!(k, "mesh.orders_2Feu");
        assert_eq!(n.topic_of(&k), Some(t.clone()));
        assert_eq!(n.topic_of("other"), None);
        assert_eq!(n.topic_of("__consumer_offsets"), None);
        let g = GroupName::new("g_1").unwrap();
        let c = ConsumerRef::clustering(t.clone(), g.clone());
        assert_eq!(n.group(&c, &k), "eventmesh.g_5F1@mesh.orders_2Feu");
        let b = ConsumerRef::broadcasting(t, g, "host@1");
        let bg = n.group(&b, &k);
        assert_eq!(bg, "eventmesh.g_5F1+host_401@mesh.orders_2Feu");
        assert!(n.is_group_of(&bg, &k));
        assert!(!n.is_group_of(&bg, "mesh.orders"));
        assert!(!n.is_group_of("other@mesh.orders_2Feu", &k));
        let long = Topic::new(&"x".repeat(250)).unwrap();
        assert!(n.topic(&long).is_err());
        let empty = Names::new("", "g.");
        assert!(empty.topic(&Topic::new(".").unwrap()).is_err());
    }
}
