//! How topics, groups and members become exchange and queue names.
//!
//! With the prefix `P` (option `prefix`, default `eventmesh`):
//!
//! | mesh object | RabbitMQ objects |
//! | --- | --- |
//! | topic `T` | fanout exchange `P.topic.T`, bound to the stream queue `P.topic.T` (`x-queue-type=stream`) holding the events |
//! | CLUSTERING group `G` on `T` | classic durable state queue `P.group.<h>.T/G` (the cursor's position, `x-expires` = `group_expiry`) and, while a store serves it, the exclusive lock queue `P.lock.<h>` |
//! | BROADCASTING member `M` of `G` on `T` | state queue `P.member.<h>.T/G/M` (`x-expires` = `member_expiry`) and lock queue `P.lock.<h>` |
//! | the list of topics and cursors | the stream `P.catalog` |
//!
//! `<h>` is a 128-bit FNV-1a hash (32 hex digits) of the length-prefixed topic, group and member,
//! so two cursors never share a queue however their names look; the readable tail after it is
//! only for people and is cut to keep the name within AMQP's 255 bytes. A topic name that does
//! not fit (long tenant and name) becomes `P.topic.#<hash>`: `#` is not allowed in mesh topic
//! names, so the two forms cannot collide. The catalog keeps every topic's real name.

use eventmesh_core::Topic;
use eventmesh_storage::ConsumerRef;
use eventmesh_storage::names::Fnv1a128;

/// The longest name AMQP allows (a short string), in bytes.
pub const MAX_NAME: usize = 255;

/// 128-bit FNV-1a of the length-prefixed parts.
fn fnv1a128(parts: &[&str]) -> u128 {
    let mut h = Fnv1a128::new();
    for part in parts {
        h.write(&(part.len() as u64).to_be_bytes())
            .write(part.as_bytes());
    }
    h.finish()
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The names of one deployment (one prefix).
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The topic's exchange and its stream queue (one name, two namespaces).
    pub(crate) fn topic(&self, topic: &Topic) -> String {
        let name = format!("{}.topic.{topic}", self.prefix);
        if name.len() <= MAX_NAME {
            name
        } else {
            format!(
                "{}.topic.#{:032x}",
                self.prefix,
                fnv1a128(&[&topic.to_string()])
            )
        }
    }

    /// The stream listing topics and cursors.
    pub(crate) fn catalog(&self) -> String {
        format!("{}.catalog", self.prefix)
    }

    fn cursor_hash(c: &ConsumerRef) -> u128 {
        let topic = c.topic.to_string();
        match &c.member {
            Some(m) => fnv1a128(&[&topic, c.group.as_str(), m]),
            None => fnv1a128(&[&topic, c.group.as_str()]),
        }
    }

    /// The durable queue holding the cursor's state.
    pub(crate) fn state(&self, c: &ConsumerRef) -> String {
        let h = Self::cursor_hash(c);
        let (kind, readable) = match &c.member {
            Some(m) => ("member", format!("{}/{}/{m}", c.topic, c.group.as_str())),
            None => ("group", format!("{}/{}", c.topic, c.group.as_str())),
        };
        let head = format!("{}.{kind}.{h:032x}.", self.prefix);
        let room = MAX_NAME.saturating_sub(head.len());
        format!("{head}{}", cut(&readable, room))
    }

    /// The exclusive queue whose holder serves the cursor.
    pub(crate) fn lock(&self, c: &ConsumerRef) -> String {
        format!("{}.lock.{:032x}", self.prefix, Self::cursor_hash(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::GroupName;

    fn t(s: &str) -> Topic {
        Topic::new(s).expect("valid topic")
    }

    fn g(s: &str) -> GroupName {
        GroupName::new(s).expect("valid group")
    }

    #[test]
    fn names_fit_and_do_not_collide() {
        let n = Names::new("em");
        assert_eq!(n.topic(&t("orders")), "em.topic.orders");
        let long = "x".repeat(250);
        let name = n.topic(&t(&long));
        assert!(
            name.len() <= MAX_NAME && name.starts_with("em.topic.#"),
            "{name}"
        );
        let a = ConsumerRef::clustering(t("a.b"), g("c"));
        let b = ConsumerRef::clustering(t("a"), g("b.c"));
        assert_ne!(n.state(&a), n.state(&b));
        assert_ne!(n.lock(&a), n.lock(&b));
        let m = ConsumerRef::broadcasting(t(&long), g(&"g".repeat(200)), "member é".repeat(40));
        let s = n.state(&m);
        assert!(s.len() <= MAX_NAME && s.starts_with("em.member."), "{s}");
        assert_ne!(
            n.state(&m),
            n.state(&ConsumerRef::clustering(t(&long), g("x")))
        );
    }
}
