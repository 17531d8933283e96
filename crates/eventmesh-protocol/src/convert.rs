//! Conversions between the TCP wire types and the domain types of `eventmesh-core`, done at
//! the edge of the server and the SDK. They follow the Java protocol adaptors
//! (`eventmeshmessage` and `cloudevents`, TCP resolvers).
//!
//! # `eventmeshmessage` → event
//! `id` = header `seq`, `source` = `/`, `type` = `eventmeshmessage`, `subject` = `topic`,
//! `data` = the UTF-8 of `body`, `datacontenttype` = `headers.datacontenttype`,
//! `specversion` = the `protocolversion` property; extensions = every header property, then
//! every message property (which win).
//!
//! # `cloudevents` → event
//! The body is a structured-mode CloudEvent; every header property is then set as an extension
//! (header properties win, as in Java).
//!
//! # event → `eventmeshmessage` (pushes)
//! `topic` = `subject`, `body` = `data` (must be UTF-8), `properties` = every extension as a
//! string, `headers.datacontenttype` = `datacontenttype`.

use bytes::Bytes;
use eventmesh_core::event::is_valid_extension_name;
use eventmesh_core::{CloudEvent, ExtensionValue, GroupName, SpecVersion, Topic, TopicPattern};
use serde_json::Value;

use crate::ProtocolError;
use crate::cloudevents;
use crate::tcp::{
    Body, DATA_CONTENT_TYPE, EventMeshMessage, Header, PROTOCOL_DESC, PROTOCOL_TYPE,
    PROTOCOL_VERSION, Package, ProtocolType, SubscriptionItem, SubscriptionMode, SubscriptionType,
};

/// What to do with a property key that is not a valid CloudEvents extension name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum KeyPolicy {
    /// Refuse the message ([`ProtocolError::InvalidPropertyKey`]), as the Java runtime does
    /// ("Abnormal propKey").
    #[default]
    Reject,
    /// Rewrite the key with [`normalize_key`] (v1.0 clients send `TTL`, `REPLY_TO`, `msgType`);
    /// a key with nothing left is dropped.
    Normalize,
}

/// A key rewritten as an extension name: ASCII letters lower-cased, everything but letters and
/// digits removed, cut to 64 bytes. `None` if nothing is left.
#[must_use]
pub fn normalize_key(key: &str) -> Option<String> {
    let out: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(64)
        .collect();
    (!out.is_empty()).then_some(out)
}

fn put_extension(
    event: &mut CloudEvent,
    key: &str,
    value: String,
    policy: KeyPolicy,
) -> Result<(), ProtocolError> {
    if is_valid_extension_name(key) {
        event
            .extensions
            .insert(key.to_owned(), ExtensionValue::String(value));
        return Ok(());
    }
    match policy {
        KeyPolicy::Reject => Err(ProtocolError::InvalidPropertyKey(key.to_owned())),
        KeyPolicy::Normalize => {
            if let Some(k) = normalize_key(key) {
                event.extensions.insert(k, ExtensionValue::String(value));
            }
            Ok(())
        }
    }
}

fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn required_property(header: &Header, key: &'static str) -> Result<String, ProtocolError> {
    header
        .property_string(key)
        .filter(|s| !s.trim().is_empty())
        .ok_or(ProtocolError::MissingProperty(key))
}

/// The three protocol properties, checked as the Java resolvers check them.
fn protocol(header: &Header) -> Result<(ProtocolType, SpecVersion), ProtocolError> {
    let ty = required_property(header, PROTOCOL_TYPE)?;
    let version = required_property(header, PROTOCOL_VERSION)?;
    required_property(header, PROTOCOL_DESC)?;
    let ty = ProtocolType::parse(&ty).ok_or(ProtocolError::UnsupportedProtocolType(ty))?;
    let version =
        SpecVersion::parse(&version).ok_or(ProtocolError::UnsupportedProtocolVersion(version))?;
    Ok((ty, version))
}

fn validated(event: CloudEvent) -> Result<CloudEvent, ProtocolError> {
    event
        .validate()
        .map_err(|e| ProtocolError::InvalidEvent(e.to_string()))?;
    Ok(event)
}

/// The event a message command (publish, request, reply) carries, by its `protocoltype`.
///
/// # Errors
/// Missing or unsupported protocol properties, a body that does not parse, a bad property key
/// (under [`KeyPolicy::Reject`]) or an invalid event.
pub fn event_from_package(
    package: &Package,
    policy: KeyPolicy,
) -> Result<CloudEvent, ProtocolError> {
    let (ty, _) = protocol(&package.header)?;
    let body: &[u8] = match &package.body {
        Body::Raw(b) => b,
        Body::Empty => {
            return Err(ProtocolError::InvalidEvent(
                "the message body is empty".into(),
            ));
        }
        _ => {
            return Err(ProtocolError::InvalidEvent(format!(
                "{} does not carry an event",
                package.header.command
            )));
        }
    };
    match ty {
        ProtocolType::EventMeshMessage => {
            let message =
                EventMeshMessage::from_json(body).map_err(|source| ProtocolError::InvalidBody {
                    command: package.header.command,
                    source,
                })?;
            event_from_message(&package.header, &message, policy)
        }
        ProtocolType::CloudEvents => {
            let mut event = cloudevents::decode_event(body)?;
            for (key, value) in &package.header.properties {
                if let Some(v) = value_string(value) {
                    put_extension(&mut event, key, v, policy)?;
                }
            }
            validated(event)
        }
        ProtocolType::OpenMessage => Err(ProtocolError::UnsupportedProtocolType(
            ty.as_str().to_owned(),
        )),
    }
}

/// The event an `eventmeshmessage` body describes, with its header.
///
/// # Errors
/// As [`event_from_package`].
pub fn event_from_message(
    header: &Header,
    message: &EventMeshMessage,
    policy: KeyPolicy,
) -> Result<CloudEvent, ProtocolError> {
    let (ty, spec_version) = protocol(header)?;
    if ty != ProtocolType::EventMeshMessage {
        return Err(ProtocolError::UnsupportedProtocolType(
            ty.as_str().to_owned(),
        ));
    }
    let id = header
        .seq
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ProtocolError::InvalidEvent("the header has no seq, which becomes the event id".into())
        })?;
    let mut event = CloudEvent::new(id, "/", "eventmeshmessage");
    event.spec_version = spec_version;
    event.subject.clone_from(&message.topic);
    event.data = message.body.clone().map(Bytes::from);
    event.data_content_type = message.headers.get(DATA_CONTENT_TYPE).cloned();
    for (key, value) in &header.properties {
        if let Some(v) = value_string(value) {
            put_extension(&mut event, key, v, policy)?;
        }
    }
    for (key, value) in &message.properties {
        put_extension(&mut event, key, value.clone(), policy)?;
    }
    validated(event)
}

/// The `eventmeshmessage` body pushing `event` to a subscriber.
///
/// # Errors
/// [`ProtocolError::InvalidEvent`] if the data is not UTF-8 (the body is a string; such events
/// go to `cloudevents` subscribers only).
pub fn message_from_event(event: &CloudEvent) -> Result<EventMeshMessage, ProtocolError> {
    let body = match &event.data {
        None => None,
        Some(data) => Some(
            std::str::from_utf8(data)
                .map_err(|_| {
                    ProtocolError::InvalidEvent(
                        "the data is not UTF-8 and cannot be an eventmeshmessage body".into(),
                    )
                })?
                .to_owned(),
        ),
    };
    let mut message = EventMeshMessage {
        topic: event.subject.clone(),
        body,
        ..EventMeshMessage::default()
    };
    for (name, value) in &event.extensions {
        message.properties.insert(name.clone(), value.to_string());
    }
    if let Some(ct) = event
        .data_content_type
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        message
            .headers
            .insert(DATA_CONTENT_TYPE.to_owned(), ct.to_owned());
    }
    Ok(message)
}

/// The body bytes carrying `event` in `protocol`.
///
/// # Errors
/// As [`message_from_event`], a [`cloudevents::FormatError`], or
/// [`ProtocolError::UnsupportedProtocolType`] for `openmessage`.
pub fn event_body(event: &CloudEvent, protocol: ProtocolType) -> Result<Bytes, ProtocolError> {
    match protocol {
        ProtocolType::EventMeshMessage => Ok(Bytes::from(message_from_event(event)?.to_json())),
        ProtocolType::CloudEvents => Ok(Bytes::from(cloudevents::encode_event(event)?)),
        ProtocolType::OpenMessage => Err(ProtocolError::UnsupportedProtocolType(
            protocol.as_str().to_owned(),
        )),
    }
}

/// A message package carrying `event`: `header` with the three protocol properties set
/// (`protocolversion` = the event's spec version, `protocoldesc` = `tcp`), and the body.
///
/// # Errors
/// As [`event_body`].
pub fn event_package(
    header: Header,
    event: &CloudEvent,
    protocol: ProtocolType,
) -> Result<Package, ProtocolError> {
    let body = event_body(event, protocol)?;
    Ok(Package::new(
        header.with_protocol(protocol, event.spec_version.as_str()),
        Body::Raw(body),
    ))
}

/// The domain subscription of `group` to one wire item.
///
/// # Errors
/// [`ProtocolError::InvalidSubscription`] for an invalid topic or an unrecognized mode or type.
pub fn subscription_from_item(
    group: &GroupName,
    item: &SubscriptionItem,
) -> Result<eventmesh_core::Subscription, ProtocolError> {
    let invalid = |reason: String| ProtocolError::InvalidSubscription {
        topic: item.topic.clone(),
        reason,
    };
    let topic = Topic::new(&item.topic).map_err(|e| invalid(e.to_string()))?;
    let mode = match item.mode {
        SubscriptionMode::Clustering => eventmesh_core::SubscriptionMode::Clustering,
        SubscriptionMode::Broadcasting => eventmesh_core::SubscriptionMode::Broadcasting,
        SubscriptionMode::Unrecognized => {
            return Err(invalid("mode must be CLUSTERING or BROADCASTING".into()));
        }
    };
    let ty = match item.ty {
        SubscriptionType::Async => eventmesh_core::SubscriptionType::Async,
        SubscriptionType::Sync => eventmesh_core::SubscriptionType::Sync,
        SubscriptionType::Unrecognized => return Err(invalid("type must be ASYNC or SYNC".into())),
    };
    Ok(eventmesh_core::Subscription {
        group: group.clone(),
        topic: TopicPattern::Exact(topic),
        mode,
        ty,
        filter: item.filter.clone(),
    })
}

/// The wire item of a domain subscription (the topic in its canonical string form).
#[must_use]
pub fn item_from_subscription(subscription: &eventmesh_core::Subscription) -> SubscriptionItem {
    SubscriptionItem {
        topic: subscription.topic.to_string(),
        mode: match subscription.mode {
            eventmesh_core::SubscriptionMode::Clustering => SubscriptionMode::Clustering,
            eventmesh_core::SubscriptionMode::Broadcasting => SubscriptionMode::Broadcasting,
        },
        ty: match subscription.ty {
            eventmesh_core::SubscriptionType::Async => SubscriptionType::Async,
            eventmesh_core::SubscriptionType::Sync => SubscriptionType::Sync,
        },
        filter: subscription.filter.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::Command;

    fn publish_header() -> Header {
        Header::new(Command::AsyncMessageToServer, Some("0123456781".into()))
            .with_protocol(ProtocolType::EventMeshMessage, "1.0")
    }

    #[test]
    fn eventmeshmessage_maps_as_java_does() {
        let msg = EventMeshMessage::from_json(
            br#"{"topic":"T","properties":{"ttl":"3000","keys":"k"},"headers":{"datacontenttype":"text/plain"},"body":"hi"}"#,
        )
        .unwrap();
        let e = event_from_message(&publish_header(), &msg, KeyPolicy::Reject).unwrap();
        assert_eq!(e.id, "0123456781");
        assert_eq!(e.source, "/");
        assert_eq!(e.ty, "eventmeshmessage");
        assert_eq!(e.subject.as_deref(), Some("T"));
        assert_eq!(e.data.as_deref(), Some(&b"hi"[..]));
        assert_eq!(e.data_content_type.as_deref(), Some("text/plain"));
        assert_eq!(e.extension_str("protocoltype"), Some("eventmeshmessage"));
        assert_eq!(e.extension_str("ttl"), Some("3000"));

        let back = message_from_event(&e).unwrap();
        assert_eq!(back.topic.as_deref(), Some("T"));
        assert_eq!(back.body.as_deref(), Some("hi"));
        assert_eq!(back.properties.get("keys").map(String::as_str), Some("k"));
        assert_eq!(
            back.headers.get(DATA_CONTENT_TYPE).map(String::as_str),
            Some("text/plain")
        );
    }

    #[test]
    fn bad_keys_and_missing_properties() {
        let msg = EventMeshMessage::from_json(
            br#"{"topic":"T","properties":{"REPLY_TO":"x"},"body":"b"}"#,
        )
        .unwrap();
        assert!(matches!(
            event_from_message(&publish_header(), &msg, KeyPolicy::Reject),
            Err(ProtocolError::InvalidPropertyKey(k)) if k == "REPLY_TO"
        ));
        let e = event_from_message(&publish_header(), &msg, KeyPolicy::Normalize).unwrap();
        assert_eq!(e.extension_str("replyto"), Some("x"));

        let bare = Header::new(Command::AsyncMessageToServer, Some("1".into()));
        assert!(matches!(
            event_from_message(&bare, &msg, KeyPolicy::Reject),
            Err(ProtocolError::MissingProperty("protocoltype"))
        ));
        let v2 = publish_header().with_property(PROTOCOL_VERSION, "2.0");
        assert!(matches!(
            event_from_message(&v2, &msg, KeyPolicy::Reject),
            Err(ProtocolError::UnsupportedProtocolVersion(_))
        ));
    }

    #[test]
    fn cloudevents_package_round_trip_with_header_properties() {
        let event = CloudEvent::new("id-1", "/src", "com.example")
            .with_data("application/json", r#"{"a":1}"#);
        let pkg = event_package(
            Header::new(Command::AsyncMessageToServer, Some("5".into())),
            &event,
            ProtocolType::CloudEvents,
        )
        .unwrap();
        assert_eq!(
            pkg.header.property_string(PROTOCOL_TYPE).as_deref(),
            Some("cloudevents")
        );
        let back = event_from_package(&pkg, KeyPolicy::Reject).unwrap();
        assert_eq!(back.id, "id-1");
        assert_eq!(back.data, event.data);
        assert_eq!(back.extension_str("protocoldesc"), Some("tcp"));
    }

    #[test]
    fn binary_data_is_not_an_eventmeshmessage() {
        let e =
            CloudEvent::new("1", "/", "t").with_data("application/octet-stream", vec![0xff, 0xfe]);
        assert!(matches!(
            message_from_event(&e),
            Err(ProtocolError::InvalidEvent(_))
        ));
        assert!(event_body(&e, ProtocolType::CloudEvents).is_ok());
    }

    #[test]
    fn subscriptions_convert_both_ways() {
        let group = GroupName::new("g").unwrap();
        let item =
            SubscriptionItem::new("T", SubscriptionMode::Broadcasting, SubscriptionType::Sync);
        let sub = subscription_from_item(&group, &item).unwrap();
        assert_eq!(sub.mode, eventmesh_core::SubscriptionMode::Broadcasting);
        assert_eq!(item_from_subscription(&sub), item);
        let bad =
            SubscriptionItem::new("T", SubscriptionMode::Unrecognized, SubscriptionType::Sync);
        assert!(matches!(
            subscription_from_item(&group, &bad),
            Err(ProtocolError::InvalidSubscription { .. })
        ));
        let empty =
            SubscriptionItem::new("", SubscriptionMode::Clustering, SubscriptionType::Async);
        assert!(subscription_from_item(&group, &empty).is_err());
    }
}
