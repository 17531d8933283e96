//! How mesh topics, groups and members become RocketMQ topic and consumer-group names.
//!
//! RocketMQ accepts only `[A-Za-z0-9_%|-]` in topic and group names (at most 127 bytes for a
//! topic, 255 for a group), while mesh names may hold almost anything. Every mesh name therefore
//! goes through one reversible encoding:
//!
//! * ASCII letters, digits and `-` stay as they are;
//! * every other byte of the UTF-8 form (including `_` and `%`) becomes `%` followed by two
//!   upper-case hex digits: `orders.created` → `orders%2Ecreated`, `a_b` → `a%5Fb`,
//!   `acme~orders/eu` (a tenant's topic) → `acme%7Eorders%2Feu`.
//!
//! An encoded name never holds `_`, so `_` separates the parts of a name, and [`decode`] gives
//! the original back. With the prefix `P` (option `prefix`, `[A-Za-z0-9-]` only):
//!
//! | mesh object | RocketMQ object |
//! | --- | --- |
//! | topic `T` | topic `P_<enc T>` (one queue: partition 0) |
//! | the cursor snapshots of `T` | topic `P-STATE_<enc T>` (one queue) |
//! | CLUSTERING group `G` on `T` | consumer group `P_<enc G>` (its offset on `P_<enc T>` is the committed position; its offset on the state topic points at its latest snapshot) |
//! | BROADCASTING member `M` of `G` | consumer group `P_<enc G>_<enc M>` |
//!
//! Names that would exceed RocketMQ's limits once encoded are refused with `Invalid` (the mesh's
//! own limits keep ordinary names far below them).

use eventmesh_core::Topic;
use eventmesh_storage::ConsumerRef;
use eventmesh_storage::names::NameEscape;

/// The longest topic name RocketMQ accepts.
pub const MAX_TOPIC: usize = 127;
/// The longest consumer-group name RocketMQ accepts.
pub const MAX_GROUP: usize = 255;

/// The escaping of mesh names: `%XX` for every byte outside `[A-Za-z0-9-]`.
const ESCAPE: NameEscape = NameEscape::new(b'%', b"-");

/// Encodes a name so that it is a valid part of a RocketMQ topic or group name.
pub fn encode(name: &str) -> String {
    ESCAPE.encode(name)
}

/// Decodes what [`encode`] produced; `None` for anything it cannot have produced.
pub fn decode(encoded: &str) -> Option<String> {
    ESCAPE.decode(encoded)
}

/// Whether `prefix` is usable (`[A-Za-z0-9-]`, 1 to 32 bytes).
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The RocketMQ names of one mesh, under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    /// Names under a prefix already checked with [`valid_prefix`].
    pub(crate) fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The data topic of a mesh topic, or `None` when it would be too long.
    pub(crate) fn topic(&self, topic: &Topic) -> Option<String> {
        let name = format!("{}_{}", self.prefix, encode(&topic.to_string()));
        (name.len() <= MAX_TOPIC).then_some(name)
    }

    /// The state topic (cursor snapshots) of a mesh topic, or `None` when it would be too long.
    pub(crate) fn state_topic(&self, topic: &Topic) -> Option<String> {
        let name = format!("{}-STATE_{}", self.prefix, encode(&topic.to_string()));
        (name.len() <= MAX_TOPIC).then_some(name)
    }

    /// The mesh topic of one of this mesh's data topics; `None` for other topics.
    pub(crate) fn topic_of(&self, name: &str) -> Option<Topic> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('_')?;
        Topic::parse(&decode(rest)?).ok()
    }

    /// The consumer group of a cursor, or `None` when it would be too long.
    pub(crate) fn group(&self, c: &ConsumerRef) -> Option<String> {
        let name = match &c.member {
            None => format!("{}_{}", self.prefix, encode(c.group.as_str())),
            Some(m) => format!("{}_{}_{}", self.prefix, encode(c.group.as_str()), encode(m)),
        };
        (name.len() <= MAX_GROUP).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::GroupName;

    #[test]
    fn encoding_is_reversible_and_uses_only_allowed_characters() {
        for name in [
            "orders",
            "orders.created",
            "a_b",
            "a%b",
            "acme~orders/eu",
            "é ü",
            "",
        ] {
            let enc = encode(name);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'%'),
                "{enc}"
            );
            assert!(!enc.contains('_'));
            assert_eq!(decode(&enc).as_deref(), Some(name));
        }
        assert_eq!(encode("orders.created"), "orders%2Ecreated");
        // Only one spelling per name, and nothing encode() cannot produce.
        for bad in ["%41", "%2", "%zz", "a_b", "a b", "%2e"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_of_topics_and_cursors() {
        let n = Names::new("EM");
        let t = Topic::parse("orders.eu").expect("topic");
        assert_eq!(n.topic(&t).as_deref(), Some("EM_orders%2Eeu"));
        assert_eq!(n.state_topic(&t).as_deref(), Some("EM-STATE_orders%2Eeu"));
        assert_eq!(n.topic_of("EM_orders%2Eeu"), Some(t.clone()));
        assert_eq!(n.topic_of("EM-STATE_orders%2Eeu"), None);
        assert_eq!(n.topic_of("OTHER_orders"), None);
        assert_eq!(n.topic_of("EM_a_b"), None);
        let g = GroupName::new("g.1").expect("group");
        let c = ConsumerRef::clustering(t.clone(), g.clone());
        assert_eq!(n.group(&c).as_deref(), Some("EM_g%2E1"));
        let b = ConsumerRef::broadcasting(t, g, "host/1");
        assert_eq!(n.group(&b).as_deref(), Some("EM_g%2E1_host%2F1"));
        assert!(valid_prefix("EVENTMESH-1"));
        assert!(!valid_prefix("a_b"));
        assert!(!valid_prefix(""));
    }

    #[test]
    fn too_long_names_are_refused() {
        let n = Names::new("EM");
        let t = Topic::parse(&"x".repeat(126)).expect("topic");
        assert_eq!(n.topic(&t), None);
    }
}
