//! The `SUBSCRIBE_REQUEST` / `UNSUBSCRIBE_REQUEST` body (`Subscription.java`,
//! `SubscriptionItem.java`).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::json::lenient_opt_string;

/// How a group shares a topic, as written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionMode {
    /// `CLUSTERING`: one member of the group gets each event.
    Clustering,
    /// `BROADCASTING`: every member gets each event.
    Broadcasting,
    /// `UNRECOGNIZED`: the sentinel, also what a missing or unknown value reads as.
    Unrecognized,
}

/// Whether the subscriber answers events, as written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionType {
    /// `ASYNC`: events are pushed with `ASYNC_MESSAGE_TO_CLIENT` / `BROADCAST_MESSAGE_TO_CLIENT`.
    Async,
    /// `SYNC`: request-reply; events are pushed with `REQUEST_TO_CLIENT`.
    Sync,
    /// `UNRECOGNIZED`: the sentinel, also what a missing or unknown value reads as.
    Unrecognized,
}

impl SubscriptionMode {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Clustering => "CLUSTERING",
            SubscriptionMode::Broadcasting => "BROADCASTING",
            SubscriptionMode::Unrecognized => "UNRECOGNIZED",
        }
    }

    /// Parses a value the way the Java converter does: trimmed, case-insensitive; anything
    /// else is [`SubscriptionMode::Unrecognized`].
    #[must_use]
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.eq_ignore_ascii_case("CLUSTERING") {
            SubscriptionMode::Clustering
        } else if s.eq_ignore_ascii_case("BROADCASTING") {
            SubscriptionMode::Broadcasting
        } else {
            SubscriptionMode::Unrecognized
        }
    }
}

impl SubscriptionType {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Async => "ASYNC",
            SubscriptionType::Sync => "SYNC",
            SubscriptionType::Unrecognized => "UNRECOGNIZED",
        }
    }

    /// Parses a value: trimmed, case-insensitive; anything else is
    /// [`SubscriptionType::Unrecognized`].
    #[must_use]
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ASYNC") {
            SubscriptionType::Async
        } else if s.eq_ignore_ascii_case("SYNC") {
            SubscriptionType::Sync
        } else {
            SubscriptionType::Unrecognized
        }
    }
}

macro_rules! string_enum_serde {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(lenient_opt_string(d)?.map_or($ty::Unrecognized, |s| $ty::parse(&s)))
            }
        }
    };
}

string_enum_serde!(SubscriptionMode);
string_enum_serde!(SubscriptionType);

/// One topic of a subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SubscriptionItem {
    /// The topic.
    pub topic: String,
    /// CLUSTERING or BROADCASTING.
    pub mode: SubscriptionMode,
    /// ASYNC or SYNC.
    #[serde(rename = "type")]
    pub ty: SubscriptionType,
    /// An EventMesh-rs extension: a CloudEvents SQL (CESQL 1.0) expression; only events it
    /// matches are pushed, the others are done for the group without delivery. Written only when
    /// set, so the body stays what Java clients and servers expect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl SubscriptionItem {
    /// An item.
    #[must_use]
    pub fn new(topic: impl Into<String>, mode: SubscriptionMode, ty: SubscriptionType) -> Self {
        SubscriptionItem {
            topic: topic.into(),
            mode,
            ty,
            filter: None,
        }
    }

    /// The item with a filter expression.
    #[must_use]
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// The item a v1.0 client means by a bare topic string. v1.0 derived delivery from the
    /// topic name (the RMB convention `<dcn>-<s|e>-<8-digit service id>-<pid>-<n>`): the 4th
    /// character of the service id `'0'` means request-reply (SYNC), `'3'` or `'4'` broadcast,
    /// anything else (and any name not in that shape) asynchronous clustering.
    #[must_use]
    pub fn from_v10_topic(topic: impl Into<String>) -> Self {
        let topic = topic.into();
        let (mode, ty) = match rmb_service_kind(&topic) {
            Some(b'0') => (SubscriptionMode::Clustering, SubscriptionType::Sync),
            Some(b'3' | b'4') => (SubscriptionMode::Broadcasting, SubscriptionType::Async),
            _ => (SubscriptionMode::Clustering, SubscriptionType::Async),
        };
        SubscriptionItem {
            topic,
            mode,
            ty,
            filter: None,
        }
    }
}

/// The 4th character of the service id of a valid RMB topic name.
fn rmb_service_kind(topic: &str) -> Option<u8> {
    let parts: Vec<&str> = topic.split('-').collect();
    if parts.len() != 5 || parts.iter().any(|p| p.is_empty()) || !matches!(parts[1], "s" | "e") {
        return None;
    }
    let service = parts[2].as_bytes();
    if service.len() != 8 || !service.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(service[3])
}

impl<'de> Deserialize<'de> for SubscriptionItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SubscriptionItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a subscription item object or a topic string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SubscriptionItem::from_v10_topic(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                #[derive(Deserialize)]
                struct Obj {
                    #[serde(default, deserialize_with = "lenient_opt_string")]
                    topic: Option<String>,
                    #[serde(default = "unrecognized_mode")]
                    mode: SubscriptionMode,
                    #[serde(default = "unrecognized_type", rename = "type")]
                    ty: SubscriptionType,
                    #[serde(default, deserialize_with = "lenient_opt_string")]
                    filter: Option<String>,
                }
                let o = Obj::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SubscriptionItem {
                    topic: o.topic.unwrap_or_default(),
                    mode: o.mode,
                    ty: o.ty,
                    filter: o.filter,
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn unrecognized_mode() -> SubscriptionMode {
    SubscriptionMode::Unrecognized
}

fn unrecognized_type() -> SubscriptionType {
    SubscriptionType::Unrecognized
}

/// The body of `SUBSCRIBE_REQUEST` and `UNSUBSCRIBE_REQUEST`:
/// `{"topicList":[{"topic":"T","mode":"CLUSTERING","type":"ASYNC"}]}`.
///
/// v1.0 clients send `{"topicList":["T1","T2"]}`; those items read through
/// [`SubscriptionItem::from_v10_topic`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The topics.
    #[serde(rename = "topicList", default, deserialize_with = "null_as_empty")]
    pub topic_list: Vec<SubscriptionItem>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SubscriptionItem>, D::Error> {
    Ok(Option::<Vec<SubscriptionItem>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shape_round_trips() {
        let json = r#"{"topicList":[{"topic":"TEST-TOPIC-TCP-ASYNC","mode":"CLUSTERING","type":"ASYNC"}]}"#;
        let s: Subscription = serde_json::from_str(json).unwrap();
        assert_eq!(
            s.topic_list,
            vec![SubscriptionItem::new(
                "TEST-TOPIC-TCP-ASYNC",
                SubscriptionMode::Clustering,
                SubscriptionType::Async
            )]
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), json);
    }

    #[test]
    fn filters_round_trip_and_are_omitted_when_unset() {
        let json = r#"{"topicList":[{"topic":"T","mode":"CLUSTERING","type":"ASYNC","filter":"type = 'x'"}]}"#;
        let s: Subscription = serde_json::from_str(json).unwrap();
        assert_eq!(
            s.topic_list,
            vec![
                SubscriptionItem::new("T", SubscriptionMode::Clustering, SubscriptionType::Async)
                    .with_filter("type = 'x'")
            ]
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), json);
        let plain =
            SubscriptionItem::new("T", SubscriptionMode::Clustering, SubscriptionType::Async);
        assert!(!serde_json::to_string(&plain).unwrap().contains("filter"));
        let null: SubscriptionItem = serde_json::from_str(
            r#"{"topic":"T","mode":"CLUSTERING","type":"ASYNC","filter":null}"#,
        )
        .unwrap();
        assert_eq!(null.filter, None);
    }

    #[test]
    fn accepts_lenient_and_v10_items() {
        let s: Subscription = serde_json::from_str(
            r#"{"topicList":[{"topic":"a","mode":" broadcasting ","type":"sync"},{"topic":"b","mode":"x"},"PRX-e-10030002-05-3","PRX-s-10000001-01-1","plain"]}"#,
        )
        .unwrap();
        let got: Vec<_> = s
            .topic_list
            .iter()
            .map(|i| (i.topic.as_str(), i.mode, i.ty))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", SubscriptionMode::Broadcasting, SubscriptionType::Sync),
                (
                    "b",
                    SubscriptionMode::Unrecognized,
                    SubscriptionType::Unrecognized
                ),
                (
                    "PRX-e-10030002-05-3",
                    SubscriptionMode::Broadcasting,
                    SubscriptionType::Async
                ),
                (
                    "PRX-s-10000001-01-1",
                    SubscriptionMode::Clustering,
                    SubscriptionType::Sync
                ),
                (
                    "plain",
                    SubscriptionMode::Clustering,
                    SubscriptionType::Async
                ),
            ]
        );
        let empty: Subscription = serde_json::from_str(r#"{"topicList":null}"#).unwrap();
        assert!(empty.topic_list.is_empty());
        assert!(serde_json::from_str::<Subscription>(r#"{"topicList":[1]}"#).is_err());
    }
}
