//! Topics and topic matching.
//!
//! A [`Topic`] is a validated name with an optional tenant prefix. Its canonical string form is
//! `name` without a tenant and `tenant~name` with one (`~` is not allowed in names), so stores can
//! keep one key per topic and later tenancy needs no format change.
//!
//! Subscriptions select topics with a [`TopicPattern`]; [`TopicPattern::matches`] is the one
//! function every part of the mesh uses to decide whether a topic is selected. Today a pattern is
//! an exact name; MQTT-style wildcards (`+`, `#`) will be added behind the same function.

use std::fmt;

/// The longest topic name accepted, in bytes.
pub const MAX_TOPIC_BYTES: usize = 255;
/// The longest tenant name accepted, in bytes.
pub const MAX_TENANT_BYTES: usize = 64;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// The name is too long.
    #[error("topic name is {0} bytes long; the limit is {MAX_TOPIC_BYTES}")]
    TooLong(usize),
    /// The name holds a character that is not allowed.
    #[error(
        "topic name holds the character {0:?}, which is not allowed (no whitespace, control characters, `~`, `+`, `#` or NUL)"
    )]
    BadChar(char),
    /// The tenant is invalid.
    #[error("tenant `{0}` is invalid: use 1 to 64 ASCII letters, digits, `-` or `_`")]
    BadTenant(String),
}

/// A validated topic, optionally owned by a tenant.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic {
    tenant: Option<Box<str>>,
    name: Box<str>,
}

fn check_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong(name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '~' | '+' | '#'))
    {
        return Err(TopicError::BadChar(c));
    }
    Ok(())
}

fn check_tenant(tenant: &str) -> Result<(), TopicError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_BYTES
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TopicError::BadTenant(tenant.to_owned()))
    }
}

impl Topic {
    /// A topic without a tenant.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        check_name(name)?;
        Ok(Topic {
            tenant: None,
            name: name.into(),
        })
    }

    /// A topic owned by `tenant`.
    pub fn with_tenant(tenant: &str, name: &str) -> Result<Self, TopicError> {
        check_tenant(tenant)?;
        check_name(name)?;
        Ok(Topic {
            tenant: Some(tenant.into()),
            name: name.into(),
        })
    }

    /// Parses the canonical form written by `Display` (`name` or `tenant~name`).
    pub fn parse(canonical: &str) -> Result<Self, TopicError> {
        match canonical.split_once('~') {
            Some((tenant, name)) => Topic::with_tenant(tenant, name),
            None => Topic::new(canonical),
        }
    }

    /// The name without the tenant.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(t) => write!(f, "{t}~{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({self})")
    }
}

/// What a subscription selects. Today: one exact topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    /// Exactly this topic.
    Exact(Topic),
}

impl TopicPattern {
    /// Whether `topic` is selected by this pattern. Every part of the mesh decides matching here.
    pub fn matches(&self, topic: &Topic) -> bool {
        match self {
            TopicPattern::Exact(t) => t == topic,
        }
    }

    /// The single topic this pattern names, when it names exactly one.
    pub fn exact(&self) -> Option<&Topic> {
        match self {
            TopicPattern::Exact(t) => Some(t),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::Exact(t) => t.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips() {
        let t = Topic::with_tenant("acme", "orders/created").unwrap();
        assert_eq!(t.to_string(), "acme~orders/created");
        assert_eq!(Topic::parse("acme~orders/created").unwrap(), t);
        assert_eq!(Topic::parse("TEST-TOPIC").unwrap().tenant(), None);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert_eq!(Topic::new("a b"), Err(TopicError::BadChar(' ')));
        assert_eq!(Topic::new("a/#"), Err(TopicError::BadChar('#')));
        assert!(matches!(
            Topic::new(&"x".repeat(256)),
            Err(TopicError::TooLong(256))
        ));
        assert!(Topic::with_tenant("a b", "t").is_err());
    }

    #[test]
    fn exact_pattern_matches_only_its_topic() {
        let p = TopicPattern::Exact(Topic::new("a").unwrap());
        assert!(p.matches(&Topic::new("a").unwrap()));
        assert!(!p.matches(&Topic::new("b").unwrap()));
        assert!(!p.matches(&Topic::with_tenant("t", "a").unwrap()));
    }
}
