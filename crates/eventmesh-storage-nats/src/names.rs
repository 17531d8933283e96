//! How topics, groups and members become JetStream stream, subject and consumer names.
//!
//! NATS refuses `.`, `*`, `>`, whitespace and path separators in stream and consumer names, and
//! `.`, `*`, `>` and whitespace inside a subject token, while mesh topics and groups may hold
//! almost anything. Every mesh name therefore goes through one reversible encoding:
//!
//! * ASCII letters, digits and `-` stay as they are;
//! * every other byte of the UTF-8 form (including `_` itself) becomes `_` followed by two
//!   upper-case hex digits: `orders.created` → `orders_2Ecreated`, `a_b` → `a_5Fb`,
//!   `acme~orders/eu` (a tenant's topic) → `acme_7Eorders_2Feu`.
//!
//! An encoded name only ever holds `[A-Za-z0-9-]` and `_XX` escapes, so it is a valid stream
//! name, consumer name and subject token, `__` never occurs inside one (it separates the parts
//! of a consumer name), and [`decode`] gives the original back.
//!
//! With the stream prefix `P` (option `stream_prefix`, `[A-Za-z0-9-]` only):
//!
//! | mesh object | JetStream object |
//! | --- | --- |
//! | topic `T` | stream `P_<enc T>` holding the one subject `P.<enc T>` |
//! | CLUSTERING group `G` on `T` | durable pull consumer `C__<enc G>` on that stream |
//! | BROADCASTING member `M` of `G` on `T` | durable pull consumer `B__<enc G>__<enc M>`, removed by the server after `member_expiry` unused |
//!
//! Names longer than [`MAX_NAME`] bytes once encoded (NATS keeps streams and consumers in
//! directories named after them) are replaced by `P_~<hash>` (`C~<hash>`, `B~<hash>` for
//! consumers) with a 128-bit FNV-1a hash of the full encoded name; `~` never occurs in an encoded
//! name, so the two forms cannot collide. The stream's description always holds the topic's
//! canonical name, which is how [`list_topics`](eventmesh_storage::EventStore::list_topics) finds
//! the topic of a hashed stream.

use eventmesh_core::{GroupName, Topic};
use eventmesh_storage::ConsumerRef;
use eventmesh_storage::names::{Fnv1a128, NameEscape};

/// The longest stream or consumer name this crate generates, in bytes.
pub const MAX_NAME: usize = 200;

/// The prefix of the description of every stream this crate creates.
pub(crate) const DESCRIPTION_PREFIX: &str = "eventmesh topic ";

/// The escaping of mesh names: `_XX` for every byte outside `[A-Za-z0-9-]`.
const ESCAPE: NameEscape = NameEscape::new(b'_', b"-");

/// Encodes a name so that it is a valid NATS stream name, consumer name and subject token.
pub fn encode(name: &str) -> String {
    ESCAPE.encode(name)
}

/// Decodes what [`encode`] produced; `None` for anything it cannot have produced.
pub fn decode(encoded: &str) -> Option<String> {
    ESCAPE.decode(encoded)
}

/// A 128-bit FNV-1a hash, as 32 lower-case hex digits (stable across versions and platforms).
pub(crate) fn hash_hex(s: &str) -> String {
    Fnv1a128::hex_of(s)
}

/// Whether `prefix` is usable as a stream prefix (`[A-Za-z0-9-]`, 1 to 32 bytes).
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The JetStream names of one mesh, under one stream prefix.
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

    /// The encoded topic, or its hashed form when too long.
    fn topic_token(&self, topic: &Topic) -> String {
        let enc = encode(&topic.to_string());
        if self.prefix.len() + 1 + enc.len() > MAX_NAME {
            format!("~{}", hash_hex(&enc))
        } else {
            enc
        }
    }

    /// The stream of a topic.
    pub(crate) fn stream(&self, topic: &Topic) -> String {
        format!("{}_{}", self.prefix, self.topic_token(topic))
    }

    /// The one subject of a topic's stream.
    pub(crate) fn subject(&self, topic: &Topic) -> String {
        format!("{}.{}", self.prefix, self.topic_token(topic))
    }

    /// The description a topic's stream carries.
    pub(crate) fn description(topic: &Topic) -> String {
        format!("{DESCRIPTION_PREFIX}{topic}")
    }

    /// The topic of one of this mesh's streams: from its name, or (hashed names) from its
    /// description. `None` for streams that are not this mesh's.
    pub(crate) fn topic_of(&self, stream: &str, description: Option<&str>) -> Option<Topic> {
        let rest = stream.strip_prefix(&self.prefix)?.strip_prefix('_')?;
        let from_description = || {
            description
                .and_then(|d| d.strip_prefix(DESCRIPTION_PREFIX))
                .and_then(|t| Topic::parse(t).ok())
        };
        if rest.starts_with('~') {
            let topic = from_description()?;
            // The description must name the topic that hashes to this stream.
            return (self.stream(&topic) == stream).then_some(topic);
        }
        Topic::parse(&decode(rest)?).ok()
    }

    /// The durable consumer of a cursor.
    pub(crate) fn consumer(&self, c: &ConsumerRef) -> String {
        consumer_name(&c.group, c.member.as_deref())
    }
}

fn consumer_name(group: &GroupName, member: Option<&str>) -> String {
    let (kind, full) = match member {
        None => ("C", format!("C__{}", encode(group.as_str()))),
        Some(m) => ("B", format!("B__{}__{}", encode(group.as_str()), encode(m))),
    };
    if full.len() > MAX_NAME {
        format!("{kind}~{}", hash_hex(&full))
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn encoding_round_trips_and_uses_only_safe_bytes() {
        for name in [
            "orders",
            "orders.created",
            "a_b",
            "_",
            "__",
            "x/y\\z*>",
            "ünïcødé.😀",
            "acme~orders/eu",
            "-",
            "A-Z_0-9",
        ] {
            let enc = encode(name);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{name} -> {enc}"
            );
            assert!(!enc.contains("__"), "{name} -> {enc}");
            assert_eq!(decode(&enc).as_deref(), Some(name), "{enc}");
        }
        assert_eq!(encode("orders.created"), "orders_2Ecreated");
        assert_eq!(encode("a_b"), "a_5Fb");
    }

    #[test]
    fn decode_refuses_what_encode_cannot_produce() {
        for bad in ["a.b", "a_", "a_2", "a_zz", "a_41", "a b", "a~b", "_2e"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn streams_and_subjects_map_back_to_topics() {
        let names = Names::new("EM");
        for t in ["orders.created", "acme~orders/eu", "a_b", "x"] {
            let t = topic(t);
            let stream = names.stream(&t);
            assert!(!stream.contains('.'), "{stream}");
            assert_eq!(names.subject(&t).matches('.').count(), 1);
            assert_eq!(names.topic_of(&stream, None), Some(t));
        }
        assert_eq!(names.topic_of("OTHER_abc", None), None);
        assert_eq!(names.topic_of("EMX_abc", None), None);
        assert_eq!(names.topic_of("EM_a.b", None), None);
    }

    #[test]
    fn long_names_are_hashed_and_found_through_the_description() {
        let names = Names::new("EM");
        let long = topic(&"ü".repeat(120));
        let stream = names.stream(&long);
        assert!(
            stream.len() <= MAX_NAME && stream.starts_with("EM_~"),
            "{stream}"
        );
        assert!(names.subject(&long).starts_with("EM.~"));
        let desc = Names::description(&long);
        assert_eq!(names.topic_of(&stream, Some(&desc)), Some(long.clone()));
        assert_eq!(names.topic_of(&stream, None), None);
        // A description naming another topic is not believed.
        let other = Names::description(&topic("other"));
        assert_eq!(names.topic_of(&stream, Some(&other)), None);
    }

    #[test]
    fn consumer_names_are_distinct_per_group_and_member() {
        let names = Names::new("EM");
        let t = topic("t");
        let g = GroupName::new("g.1").unwrap_or_else(|e| panic!("{e}"));
        let c = ConsumerRef::clustering(t.clone(), g.clone());
        let m1 = ConsumerRef::broadcasting(t.clone(), g.clone(), "host/1");
        let m2 = ConsumerRef::broadcasting(t.clone(), g.clone(), "host/2");
        let all = [names.consumer(&c), names.consumer(&m1), names.consumer(&m2)];
        assert_eq!(all[0], "C__g_2E1");
        assert_eq!(all[1], "B__g_2E1__host_2F1");
        assert_ne!(all[1], all[2]);
        let long = ConsumerRef::broadcasting(t, g, "m".repeat(250));
        let n = names.consumer(&long);
        assert!(n.starts_with("B~") && n.len() <= MAX_NAME, "{n}");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("EVENTMESH"));
        assert!(valid_prefix("mesh-2"));
        for bad in ["", "a_b", "a.b", "a b", "a~b", &"x".repeat(33)] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}
