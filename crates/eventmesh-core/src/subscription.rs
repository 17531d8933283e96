//! Consumer groups and subscriptions.

use std::fmt;

use crate::topic::TopicPattern;

/// The longest group name accepted, in bytes.
pub const MAX_GROUP_BYTES: usize = 255;

/// A validated consumer-group name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(Box<str>);

/// Why a group name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "group name `{0}` is invalid: use 1 to 255 bytes without whitespace, control characters or `~`"
)]
pub struct GroupNameError(pub String);

impl GroupName {
    /// Validates and wraps a group name.
    pub fn new(name: &str) -> Result<Self, GroupNameError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_GROUP_BYTES
            && !name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '~');
        if ok {
            Ok(GroupName(name.into()))
        } else {
            Err(GroupNameError(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupName({})", self.0)
    }
}

/// How a group shares a topic's events among its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SubscriptionMode {
    /// Each event goes to one member of the group (load balancing).
    #[default]
    Clustering,
    /// Each member gets every event.
    Broadcasting,
}

impl SubscriptionMode {
    /// The reference's spelling (`CLUSTERING` / `BROADCASTING`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Clustering => "CLUSTERING",
            SubscriptionMode::Broadcasting => "BROADCASTING",
        }
    }

    /// Parses the reference's spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("CLUSTERING") {
            Some(SubscriptionMode::Clustering)
        } else if s.eq_ignore_ascii_case("BROADCASTING") {
            Some(SubscriptionMode::Broadcasting)
        } else {
            None
        }
    }
}

/// Whether the subscriber answers events (request-reply) or only consumes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SubscriptionType {
    /// Fire-and-forget consumption.
    #[default]
    Async,
    /// The subscriber replies to each event (request-reply).
    Sync,
}

impl SubscriptionType {
    /// The reference's spelling (`ASYNC` / `SYNC`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Async => "ASYNC",
            SubscriptionType::Sync => "SYNC",
        }
    }

    /// Parses the reference's spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("ASYNC") {
            Some(SubscriptionType::Async)
        } else if s.eq_ignore_ascii_case("SYNC") {
            Some(SubscriptionType::Sync)
        } else {
            None
        }
    }
}

/// One subscription of a group to a topic pattern. The member endpoint that receives the events
/// is attached by the runtime core, which knows the session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The consumer group.
    pub group: GroupName,
    /// The topics selected.
    pub topic: TopicPattern,
    /// CLUSTERING or BROADCASTING.
    pub mode: SubscriptionMode,
    /// ASYNC or SYNC.
    pub ty: SubscriptionType,
    /// An optional filter expression; it belongs to the (group, topic).
    pub filter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!(
            SubscriptionMode::parse("broadcasting"),
            Some(SubscriptionMode::Broadcasting)
        );
        assert_eq!(
            SubscriptionType::parse("SYNC"),
            Some(SubscriptionType::Sync)
        );
        assert_eq!(SubscriptionType::parse("later"), None);
    }

    #[test]
    fn group_names_are_validated() {
        assert!(GroupName::new("EventMeshTest-consumerGroup").is_ok());
        assert!(GroupName::new("").is_err());
        assert!(GroupName::new("a b").is_err());
    }
}
