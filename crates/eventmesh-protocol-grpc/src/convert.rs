//! EventMesh gRPC messages ↔ [`eventmesh_core::CloudEvent`], done at the edge of the server and
//! the SDK, and the JSON payloads of subscriptions and heartbeats.
//!
//! # EventMesh `CloudEvent` → event
//! `id`, `source`, `type` as they are; `spec_version` parsed (empty = `1.0`). The attributes
//! `subject`, `time`, `datacontenttype` and `dataschema` become those context attributes; every
//! other attribute becomes an extension (its key normalised: lower-case letters and digits),
//! except credentials (`username`, `passwd`), answer keys (`statuscode`, `responsemessage`) and
//! stream control keys (`submessagetype`, `ackid`, `ackmode`). Data: `text_data` as UTF-8,
//! `binary_data` as is, `proto_data` as the `Any`'s value (content type `application/protobuf`
//! when none is given).
//!
//! # event → EventMesh `CloudEvent` (pushes, replies)
//! The reverse; extensions become `ce_string` / `ce_boolean` / `ce_integer` attributes, `time`
//! a `ce_timestamp`, `dataschema` a `ce_uri`. Data goes as `proto_data` for
//! `application/protobuf`, as `text_data` when it is UTF-8 and the content type is text (or
//! absent), else as `binary_data`.
//!
//! # Legacy `SimpleMessage`
//! See [`simple_to_event`] and [`event_to_simple`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventmesh_core::{CloudEvent, ExtensionValue, SpecVersion, SubscriptionMode, SubscriptionType};
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::legacy;
use crate::status::StatusCode;
use crate::v1::cloud_event::Data;
use crate::v1::cloud_event_attribute_value::Attr;
use crate::v1::{CloudEvent as PbEvent, CloudEventAttributeValue as PbValue};

/// Why a message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A client identity attribute is missing or invalid (status `6`).
    #[error("invalid client identity: {0}")]
    Header(String),
    /// The message body is missing or invalid (status `7`).
    #[error("invalid message: {0}")]
    Body(String),
}

impl ConvertError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ConvertError::Header(_) => StatusCode::HeaderErr,
            ConvertError::Body(_) => StatusCode::BodyErr,
        }
    }
}

fn body(msg: impl Into<String>) -> ConvertError {
    ConvertError::Body(msg.into())
}

/// Attribute keys that never become extensions.
const NOT_EXTENSIONS: [&str; 17] = [
    keys::UNACK,
    keys::USERNAME,
    keys::PASSWD,
    keys::STATUS_CODE,
    keys::RESPONSE_MESSAGE,
    keys::SUB_MESSAGE_TYPE,
    keys::ACK_ID,
    keys::ACK_MODE,
    keys::SUBJECT,
    keys::DATA_CONTENT_TYPE,
    keys::DATA_SCHEMA,
    keys::TIME,
    "id",
    "source",
    "specversion",
    "type",
    "data",
];

/// The text of an attribute value (integers and booleans in decimal, timestamps in RFC 3339,
/// bytes in base64).
pub fn value_string(v: &PbValue) -> Option<String> {
    Some(match v.attr.as_ref()? {
        Attr::CeBoolean(b) => b.to_string(),
        Attr::CeInteger(i) => i.to_string(),
        Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s) => s.clone(),
        Attr::CeBytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Attr::CeTimestamp(t) => timestamp_to_chrono(t)?.to_rfc3339(),
    })
}

/// The text of an attribute value, borrowed when it is a string kind.
fn value_str(v: &PbValue) -> Option<Cow<'_, str>> {
    match v.attr.as_ref()? {
        Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s) => Some(Cow::Borrowed(s)),
        _ => value_string(v).map(Cow::Owned),
    }
}

/// The text of an attribute value, taking its string instead of copying it.
fn value_into_string(v: PbValue) -> Option<String> {
    match v.attr? {
        Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s) => Some(s),
        other => value_string(&PbValue { attr: Some(other) }),
    }
}

/// `s` trimmed, or `None` when nothing is left (no copy when there is nothing to trim).
fn trimmed(s: String) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s)
    } else {
        Some(t.to_owned())
    }
}

/// The trimmed, non-empty text of attribute `key`, borrowed where it can be.
pub fn attribute_str<'a>(event: &'a PbEvent, key: &str) -> Option<Cow<'a, str>> {
    let text = value_str(event.attributes.get(key)?)?;
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Some(match text {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
    })
}

/// The trimmed, non-empty text of attribute `key`.
pub fn attribute(event: &PbEvent, key: &str) -> Option<String> {
    attribute_str(event, key).map(Cow::into_owned)
}

/// A `ce_string` attribute value.
pub fn string_value(s: impl Into<String>) -> PbValue {
    PbValue {
        attr: Some(Attr::CeString(s.into())),
    }
}

/// A `ce_integer` attribute value.
pub fn integer_value(i: i32) -> PbValue {
    PbValue {
        attr: Some(Attr::CeInteger(i)),
    }
}

/// A `ce_timestamp` attribute value.
pub fn timestamp_value(t: DateTime<Utc>) -> PbValue {
    PbValue {
        attr: Some(Attr::CeTimestamp(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        })),
    }
}

fn timestamp_to_chrono(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// Whether a content type carries text (`text/*`, JSON, XML and their `+json` / `+xml` forms).
pub fn is_text_content_type(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct == "application/xml"
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
}

/// Whether a content type names a protobuf payload.
pub fn is_proto_content_type(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct == "application/protobuf" || ct == "application/x-protobuf"
}

/// Who a client is: the identity attributes every request carries.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClientIdentity {
    /// `env`.
    pub env: String,
    /// `idc`.
    pub idc: String,
    /// `sys`.
    pub sys: String,
    /// `pid`.
    pub pid: u64,
    /// `ip`.
    pub ip: String,
    /// `username`.
    pub username: String,
    /// `language`.
    pub language: String,
}

impl ClientIdentity {
    /// The identity naming a client process: `ip/pid/sys`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.ip, self.pid, self.sys)
    }
}

fn identity_from(
    get: impl Fn(&'static str) -> Option<String>,
    password_key: &'static str,
) -> Result<ClientIdentity, ConvertError> {
    let need = |key: &'static str| {
        get(key)
            .ok_or_else(|| ConvertError::Header(format!("attribute `{key}` is missing or empty")))
    };
    let pid_text = need(keys::PID)?;
    let pid = pid_text.parse::<u64>().map_err(|_| {
        ConvertError::Header(format!("attribute `pid` must be numeric, not `{pid_text}`"))
    })?;
    let identity = ClientIdentity {
        env: need(keys::ENV)?,
        idc: need(keys::IDC)?,
        sys: need(keys::SYS)?,
        pid,
        ip: need(keys::IP)?,
        username: need(keys::USERNAME)?,
        language: need(keys::LANGUAGE)?,
    };
    need(password_key)?;
    Ok(identity)
}

/// The client identity of a v1 message: `idc`, `env`, `ip`, `pid` (numeric), `sys`, `username`,
/// `passwd` and `language`, all non-empty.
pub fn identity(event: &PbEvent) -> Result<ClientIdentity, ConvertError> {
    identity_from(|k| attribute(event, k), keys::PASSWD)
}

/// The client identity of a legacy `RequestHeader` (same rules).
pub fn legacy_identity(
    header: Option<&legacy::RequestHeader>,
) -> Result<ClientIdentity, ConvertError> {
    let h = header.ok_or_else(|| ConvertError::Header("the message has no header".to_owned()))?;
    identity_from(
        |k| {
            let v = match k {
                keys::ENV => &h.env,
                keys::IDC => &h.idc,
                keys::SYS => &h.sys,
                keys::PID => &h.pid,
                keys::IP => &h.ip,
                keys::USERNAME => &h.username,
                keys::LANGUAGE => &h.language,
                "password" => &h.password,
                _ => return None,
            };
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        },
        "password",
    )
}

/// Checks what a publish needs beyond the identity: `uniqueid`, `producergroup`, `subject` and
/// `ttl` attributes, and data of the kind the content type calls for (text types:
/// `text_data`; protobuf: `proto_data`; others: `binary_data`).
pub fn check_publish(event: &PbEvent) -> Result<(), ConvertError> {
    for key in [
        keys::UNIQUE_ID,
        keys::PRODUCER_GROUP,
        keys::SUBJECT,
        keys::TTL,
    ] {
        if attribute_str(event, key).is_none() {
            return Err(body(format!("attribute `{key}` is missing or empty")));
        }
    }
    check_data_kind(event)
}

/// Checks that the data's kind matches the content type (when one is given) and that there is
/// data.
pub fn check_data_kind(event: &PbEvent) -> Result<(), ConvertError> {
    let Some(data) = &event.data else {
        return Err(body("the event has no data"));
    };
    let Some(ct) = attribute_str(event, keys::DATA_CONTENT_TYPE) else {
        return Ok(());
    };
    let (want, ok) = if is_text_content_type(&ct) {
        ("text_data", matches!(data, Data::TextData(_)))
    } else if is_proto_content_type(&ct) {
        ("proto_data", matches!(data, Data::ProtoData(_)))
    } else {
        ("binary_data", matches!(data, Data::BinaryData(_)))
    };
    if ok {
        Ok(())
    } else {
        Err(body(format!(
            "datacontenttype `{ct}` calls for `{want}`, but the event carries {}",
            data_kind(data)
        )))
    }
}

fn data_kind(d: &Data) -> &'static str {
    match d {
        Data::BinaryData(_) => "`binary_data`",
        Data::TextData(_) => "`text_data`",
        Data::ProtoData(_) => "`proto_data`",
    }
}

/// An extension key as EventMesh-rs stores it (see `eventmesh_protocol::convert::normalize_key`).
fn extension_key(key: &str) -> Option<String> {
    eventmesh_protocol::convert::normalize_key(key)
}

/// The event a v1 message carries. Does not check the identity or publish attributes (see
/// [`identity`] and [`check_publish`]).
pub fn to_event(pb: &PbEvent) -> Result<CloudEvent, ConvertError> {
    into_event(pb.clone())
}

/// As [`to_event`], taking the message: its strings and data move into the event instead of
/// being copied (the publish path, where every event of a batch goes through here).
pub fn into_event(pb: PbEvent) -> Result<CloudEvent, ConvertError> {
    let spec_version = match pb.spec_version.trim() {
        "" => SpecVersion::V10,
        v => SpecVersion::parse(v)
            .ok_or_else(|| body(format!("spec_version `{v}` is not 1.0 or 0.3")))?,
    };
    let mut event = CloudEvent {
        id: pb.id,
        source: pb.source,
        spec_version,
        ty: pb.r#type,
        ..CloudEvent::default()
    };
    for (key, value) in pb.attributes {
        match key.as_str() {
            keys::SUBJECT => event.subject = value_into_string(value).and_then(trimmed),
            keys::DATA_CONTENT_TYPE => {
                event.data_content_type = value_into_string(value).and_then(trimmed);
            }
            keys::DATA_SCHEMA => event.data_schema = value_into_string(value).and_then(trimmed),
            keys::TIME => event.time = time_of(value)?,
            _ => {
                let Some(k) = extension_key_of(key) else {
                    continue;
                };
                if NOT_EXTENSIONS.contains(&k.as_str()) {
                    continue;
                }
                let v = match value.attr {
                    None => continue,
                    Some(Attr::CeBoolean(b)) => ExtensionValue::Boolean(b),
                    Some(Attr::CeInteger(i)) => ExtensionValue::Integer(i64::from(i)),
                    Some(other) => match value_into_string(PbValue { attr: Some(other) }) {
                        Some(s) => ExtensionValue::String(s),
                        None => continue,
                    },
                };
                event.extensions.insert(k, v);
            }
        }
    }
    match pb.data {
        None => {}
        Some(Data::TextData(t)) => event.data = Some(Bytes::from(t.into_bytes())),
        Some(Data::BinaryData(b)) => event.data = Some(Bytes::from(b)),
        Some(Data::ProtoData(any)) => {
            event.data = Some(Bytes::from(any.value));
            if event.data_content_type.is_none() {
                event.data_content_type = Some("application/protobuf".to_owned());
            }
        }
    }
    Ok(event)
}

/// The `time` attribute: a timestamp, or RFC 3339 text; empty text is no time.
fn time_of(v: PbValue) -> Result<Option<DateTime<Utc>>, ConvertError> {
    match v.attr {
        Some(Attr::CeTimestamp(t)) => Ok(Some(
            timestamp_to_chrono(&t).ok_or_else(|| body("attribute `time` is out of range"))?,
        )),
        other => match value_into_string(PbValue { attr: other }) {
            Some(s) if !s.trim().is_empty() => Ok(Some(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|e| body(format!("attribute `time` `{s}` is not RFC 3339: {e}")))?
                    .with_timezone(&Utc),
            )),
            _ => Ok(None),
        },
    }
}

/// The extension name for an attribute key, reusing the key when it already is one.
fn extension_key_of(key: String) -> Option<String> {
    let canonical = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if canonical {
        Some(key)
    } else {
        extension_key(&key)
    }
}

/// The v1 message of an event (pushes, replies, the SDK's publishes).
pub fn from_event(event: &CloudEvent) -> PbEvent {
    let mut attributes: BTreeMap<String, PbValue> = BTreeMap::new();
    for (k, v) in &event.extensions {
        let value = match v {
            ExtensionValue::String(s) => string_value(s.clone()),
            ExtensionValue::Boolean(b) => PbValue {
                attr: Some(Attr::CeBoolean(*b)),
            },
            ExtensionValue::Integer(i) => match i32::try_from(*i) {
                Ok(i) => integer_value(i),
                Err(_) => string_value(i.to_string()),
            },
        };
        attributes.insert(k.clone(), value);
    }
    if let Some(s) = &event.subject {
        attributes.insert(keys::SUBJECT.to_owned(), string_value(s.clone()));
    }
    if let Some(t) = event.time {
        attributes.insert(keys::TIME.to_owned(), timestamp_value(t));
    }
    if let Some(ct) = &event.data_content_type {
        attributes.insert(keys::DATA_CONTENT_TYPE.to_owned(), string_value(ct.clone()));
    }
    if let Some(ds) = &event.data_schema {
        attributes.insert(
            keys::DATA_SCHEMA.to_owned(),
            PbValue {
                attr: Some(Attr::CeUri(ds.clone())),
            },
        );
    }
    let ct = event.data_content_type.as_deref();
    let data = event.data.as_ref().map(|d| {
        if ct.is_some_and(is_proto_content_type) {
            Data::ProtoData(prost_types::Any {
                type_url: String::new(),
                value: d.to_vec(),
            })
        } else if ct.is_none_or(is_text_content_type) {
            match std::str::from_utf8(d) {
                Ok(s) => Data::TextData(s.to_owned()),
                Err(_) => Data::BinaryData(d.to_vec()),
            }
        } else {
            Data::BinaryData(d.to_vec())
        }
    });
    PbEvent {
        id: event.id.clone(),
        source: event.source.clone(),
        spec_version: event.spec_version.as_str().to_owned(),
        r#type: event.ty.clone(),
        attributes,
        data,
    }
}

/// The text of a message's data: `text_data`, or UTF-8 `binary_data`.
pub fn text_data(event: &PbEvent) -> Option<&str> {
    match event.data.as_ref()? {
        Data::TextData(t) => Some(t),
        Data::BinaryData(b) => std::str::from_utf8(b).ok(),
        Data::ProtoData(_) => None,
    }
}

/// One item of a subscription payload: `{"topic", "mode", "type"}` (as the Java SDK writes
/// `SubscriptionItem`), with an optional `"filter"` (an EventMesh-rs extension).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionItem {
    /// The topic.
    pub topic: String,
    /// `CLUSTERING` (default) or `BROADCASTING`.
    #[serde(default = "clustering")]
    pub mode: String,
    /// `ASYNC` (default) or `SYNC`.
    #[serde(default = "asynchronous", rename = "type")]
    pub ty: String,
    /// An EventMesh-rs extension: a CloudEvents SQL (CESQL 1.0) expression; only events it
    /// matches are pushed. Written only when set, so the payload stays what Java expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

fn clustering() -> String {
    "CLUSTERING".to_owned()
}

fn asynchronous() -> String {
    "ASYNC".to_owned()
}

impl SubscriptionItem {
    /// An item.
    pub fn new(topic: impl Into<String>, mode: SubscriptionMode, ty: SubscriptionType) -> Self {
        SubscriptionItem {
            topic: topic.into(),
            mode: mode.as_str().to_owned(),
            ty: ty.as_str().to_owned(),
            filter: None,
        }
    }

    /// The item with a filter expression.
    #[must_use]
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// The mode, if valid.
    pub fn mode(&self) -> Result<SubscriptionMode, ConvertError> {
        SubscriptionMode::parse(self.mode.trim()).ok_or_else(|| {
            body(format!(
                "subscription mode `{}` is not CLUSTERING or BROADCASTING",
                self.mode
            ))
        })
    }

    /// The type, if valid.
    pub fn ty(&self) -> Result<SubscriptionType, ConvertError> {
        SubscriptionType::parse(self.ty.trim()).ok_or_else(|| {
            body(format!(
                "subscription type `{}` is not ASYNC or SYNC",
                self.ty
            ))
        })
    }
}

/// The subscription items of a subscribe or unsubscribe message (`text_data`, a JSON list).
pub fn subscription_items(event: &PbEvent) -> Result<Vec<SubscriptionItem>, ConvertError> {
    let text = text_data(event)
        .ok_or_else(|| body("the subscription carries no text data (a JSON list of items)"))?;
    let items: Vec<SubscriptionItem> = serde_json::from_str(text).map_err(|e| {
        body(format!(
            "the subscription data is not a JSON list of {{\"topic\",\"mode\",\"type\"}}: {e}"
        ))
    })?;
    if items.is_empty() {
        return Err(body("the subscription lists no topic"));
    }
    for i in &items {
        if i.topic.trim().is_empty() {
            return Err(body("a subscription item has an empty topic"));
        }
        i.mode()?;
        i.ty()?;
    }
    Ok(items)
}

/// The `text_data` of a subscription: the items as a JSON list.
pub fn subscription_data(items: &[SubscriptionItem]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// One item of a heartbeat payload: `{"topic", "url"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatItem {
    /// The topic.
    pub topic: String,
    /// The webhook URL (empty or absent for stream subscribers).
    #[serde(default)]
    pub url: String,
}

/// The items of a heartbeat (`text_data`, a JSON list; no data is an empty list).
pub fn heartbeat_items(event: &PbEvent) -> Result<Vec<HeartbeatItem>, ConvertError> {
    let Some(text) = text_data(event) else {
        return Ok(Vec::new());
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| {
        body(format!(
            "the heartbeat data is not a JSON list of {{\"topic\",\"url\"}}: {e}"
        ))
    })
}

/// The `text_data` of a heartbeat: the items as a JSON list.
pub fn heartbeat_data(items: &[HeartbeatItem]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// The payload the Java and Rust SDKs put in a SYNC subscriber's reply (`text_data`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionReply {
    /// The responder's group.
    pub producer_group: String,
    /// The request's topic.
    pub topic: String,
    /// The reply's content.
    pub content: String,
    /// Time to live.
    pub ttl: String,
    /// Client message id.
    pub unique_id: String,
    /// Client sequence number.
    pub seq_num: String,
    /// Tag.
    pub tag: Option<String>,
    /// Properties (the request's, then the reply's).
    pub properties: HashMap<String, String>,
}

/// An answer: `statuscode`, `responsemessage` and `time` attributes (and the same as JSON in
/// `text_data`, `{"respCode","respMsg","respTime"}`, for clients that read the data).
pub fn response(status: StatusCode, message: &str) -> PbEvent {
    let now = Utc::now();
    let message = if message.is_empty() {
        status.desc().to_owned()
    } else {
        message.to_owned()
    };
    let mut attributes = BTreeMap::new();
    attributes.insert(keys::STATUS_CODE.to_owned(), string_value(status.code()));
    attributes.insert(
        keys::RESPONSE_MESSAGE.to_owned(),
        string_value(message.clone()),
    );
    attributes.insert(keys::TIME.to_owned(), timestamp_value(now));
    let json = serde_json::json!({
        "respCode": status.code(),
        "respMsg": message,
        "respTime": now.timestamp_millis().to_string(),
    });
    PbEvent {
        id: String::new(),
        source: "/".to_owned(),
        spec_version: SpecVersion::V10.as_str().to_owned(),
        r#type: "eventmesh.response".to_owned(),
        attributes,
        data: Some(Data::TextData(json.to_string())),
    }
}

/// The status and message of an answer, when the message is one.
pub fn response_status(event: &PbEvent) -> Option<(String, String)> {
    let code = attribute(event, keys::STATUS_CODE)?;
    let msg = attribute(event, keys::RESPONSE_MESSAGE).unwrap_or_default();
    Some((code, msg))
}

/// A legacy `Response`.
pub fn legacy_response(status: StatusCode, message: &str) -> legacy::Response {
    legacy::Response {
        resp_code: status.code().to_owned(),
        resp_msg: if message.is_empty() {
            status.desc().to_owned()
        } else {
            message.to_owned()
        },
        resp_time: Utc::now().timestamp_millis().to_string(),
    }
}

/// Property of a legacy message whose content had to be base64-encoded (data not UTF-8).
pub const CONTENT_ENCODING: &str = "contentencoding";

/// The event of a legacy `SimpleMessage` (checks `uniqueId`, `producerGroup`, `topic`,
/// `content` and `ttl` as the Java runtime): `id` = `uniqueId`, `source` = `/`, `type` =
/// `eventmeshmessage`, `subject` = `topic`, `data` = `content` (content type from the
/// `datacontenttype` property, else `text/plain`); extensions: every property (keys
/// normalised), then `ttl`, `seqnum`, `uniqueid`, `producergroup`, `tag`.
pub fn simple_to_event(msg: &legacy::SimpleMessage) -> Result<CloudEvent, ConvertError> {
    for (name, v) in [
        ("uniqueId", &msg.unique_id),
        ("producerGroup", &msg.producer_group),
        ("topic", &msg.topic),
        ("content", &msg.content),
        ("ttl", &msg.ttl),
    ] {
        if v.trim().is_empty() {
            return Err(body(format!("field `{name}` is missing or empty")));
        }
    }
    Ok(legacy_event(
        &msg.unique_id,
        &msg.topic,
        &msg.content,
        &msg.properties,
        [
            (keys::TTL, &msg.ttl),
            (keys::SEQ_NUM, &msg.seq_num),
            (keys::UNIQUE_ID, &msg.unique_id),
            (keys::PRODUCER_GROUP, &msg.producer_group),
            (keys::TAG, &msg.tag),
        ],
    ))
}

/// The event of one legacy batch item (checks `content`, `seqNum`, `ttl` and `uniqueId`).
pub fn batch_item_to_event(
    batch: &legacy::BatchMessage,
    item: &legacy::batch_message::MessageItem,
) -> Result<CloudEvent, ConvertError> {
    for (name, v) in [
        ("content", &item.content),
        ("seqNum", &item.seq_num),
        ("ttl", &item.ttl),
        ("uniqueId", &item.unique_id),
    ] {
        if v.trim().is_empty() {
            return Err(body(format!("item field `{name}` is missing or empty")));
        }
    }
    Ok(legacy_event(
        &item.unique_id,
        &batch.topic,
        &item.content,
        &item.properties,
        [
            (keys::TTL, &item.ttl),
            (keys::SEQ_NUM, &item.seq_num),
            (keys::UNIQUE_ID, &item.unique_id),
            (keys::PRODUCER_GROUP, &batch.producer_group),
            (keys::TAG, &item.tag),
        ],
    ))
}

/// The reply event of a legacy `Subscription.Reply`.
pub fn reply_to_event(reply: &legacy::subscription::Reply) -> CloudEvent {
    let id = if reply.unique_id.trim().is_empty() {
        format!("reply-{}", reply.seq_num)
    } else {
        reply.unique_id.clone()
    };
    legacy_event(
        &id,
        &reply.topic,
        &reply.content,
        &reply.properties,
        [
            (keys::TTL, &reply.ttl),
            (keys::SEQ_NUM, &reply.seq_num),
            (keys::UNIQUE_ID, &reply.unique_id),
            (keys::PRODUCER_GROUP, &reply.producer_group),
            (keys::TAG, &reply.tag),
        ],
    )
}

fn legacy_event(
    id: &str,
    topic: &str,
    content: &str,
    properties: &HashMap<String, String>,
    fields: [(&'static str, &String); 5],
) -> CloudEvent {
    let mut event = CloudEvent::new(id, "/", "eventmeshmessage");
    event.subject = Some(topic.trim().to_owned()).filter(|s| !s.is_empty());
    let mut ct = "text/plain".to_owned();
    let mut base64 = false;
    for (k, v) in properties {
        let Some(key) = extension_key(k) else {
            continue;
        };
        if key == keys::DATA_CONTENT_TYPE {
            ct = v.clone();
            continue;
        }
        if key == CONTENT_ENCODING {
            base64 = v.eq_ignore_ascii_case("base64");
            continue;
        }
        if NOT_EXTENSIONS.contains(&key.as_str()) {
            continue;
        }
        event
            .extensions
            .insert(key, ExtensionValue::String(v.clone()));
    }
    for (k, v) in fields {
        if !v.trim().is_empty() {
            event
                .extensions
                .insert(k.to_owned(), ExtensionValue::String(v.clone()));
        }
    }
    let data = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(content.as_bytes())
            .map_or_else(|_| Bytes::from(content.to_owned()), Bytes::from)
    } else {
        Bytes::from(content.to_owned())
    };
    event.data_content_type = Some(ct);
    event.data = Some(data);
    event
}

/// The legacy `SimpleMessage` of an event (pushes, replies): `topic` = `subject`, `content` =
/// the data (base64 with property `contentencoding=base64` when it is not UTF-8), `uniqueId`
/// the `uniqueid` extension else the event id, `seqNum` / `ttl` / `tag` / `producerGroup` from
/// their extensions, `properties` = every extension as text plus `datacontenttype`.
pub fn event_to_simple(
    event: &CloudEvent,
    header: Option<legacy::RequestHeader>,
) -> legacy::SimpleMessage {
    let ext = |k: &str| {
        event
            .extension(k)
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let mut properties: HashMap<String, String> = event
        .extensions
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    if let Some(ct) = &event.data_content_type {
        properties.insert(keys::DATA_CONTENT_TYPE.to_owned(), ct.clone());
    }
    let content = match event.data.as_deref() {
        None => String::new(),
        Some(d) => match std::str::from_utf8(d) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                properties.insert(CONTENT_ENCODING.to_owned(), "base64".to_owned());
                base64::engine::general_purpose::STANDARD.encode(d)
            }
        },
    };
    let unique_id = match ext(keys::UNIQUE_ID) {
        s if s.is_empty() => event.id.clone(),
        s => s,
    };
    legacy::SimpleMessage {
        header,
        producer_group: ext(keys::PRODUCER_GROUP),
        topic: event.subject.clone().unwrap_or_default(),
        content,
        ttl: ext(keys::TTL),
        unique_id,
        seq_num: ext(keys::SEQ_NUM),
        tag: ext(keys::TAG),
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_attrs() -> BTreeMap<String, PbValue> {
        [
            ("env", "dev"),
            ("idc", "idc1"),
            ("ip", "127.0.0.1"),
            ("pid", "42"),
            ("sys", "app"),
            ("username", "u"),
            ("passwd", "p"),
            ("language", "RUST"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), string_value(v)))
        .collect()
    }

    #[test]
    fn identity_is_checked() {
        let mut e = PbEvent {
            attributes: identity_attrs(),
            ..PbEvent::default()
        };
        assert_eq!(identity(&e).unwrap().key(), "127.0.0.1/42/app");
        e.attributes.insert("pid".into(), string_value("x"));
        assert_eq!(identity(&e).unwrap_err().status(), StatusCode::HeaderErr);
        e.attributes.remove("pid");
        assert!(identity(&e).unwrap_err().to_string().contains("pid"));
    }

    #[test]
    fn events_round_trip_and_credentials_stay_out() {
        let mut core = CloudEvent::new("id1", "/src", "t").with_data("text/plain", "hello");
        core.subject = Some("topic-a".into());
        core.extensions.insert("ttl".into(), "3000".into());
        core.extensions
            .insert("flag".into(), ExtensionValue::Boolean(true));
        core.extensions
            .insert("big".into(), ExtensionValue::Integer(1 << 40));
        let pb = from_event(&core);
        assert!(matches!(pb.data, Some(Data::TextData(ref t)) if t == "hello"));
        let mut pb2 = pb.clone();
        pb2.attributes.extend(identity_attrs());
        let back = to_event(&pb2).unwrap();
        assert_eq!(back.subject.as_deref(), Some("topic-a"));
        assert_eq!(back.extension("flag"), Some(&ExtensionValue::Boolean(true)));
        assert_eq!(back.extension_str("big"), Some("1099511627776"));
        assert!(back.extension("passwd").is_none() && back.extension("username").is_none());
        assert_eq!(back.extension_str("env"), Some("dev"));
        assert_eq!(back.data.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn data_kind_must_match_the_content_type() {
        let mut e = PbEvent {
            attributes: [
                (
                    keys::DATA_CONTENT_TYPE.to_owned(),
                    string_value("application/json"),
                ),
                (keys::UNIQUE_ID.to_owned(), string_value("u")),
                (keys::PRODUCER_GROUP.to_owned(), string_value("g")),
                (keys::SUBJECT.to_owned(), string_value("t")),
                (keys::TTL.to_owned(), string_value("1000")),
            ]
            .into_iter()
            .collect(),
            data: Some(Data::BinaryData(vec![1])),
            ..PbEvent::default()
        };
        let err = check_publish(&e).unwrap_err();
        assert_eq!(err.status(), StatusCode::BodyErr);
        assert!(err.to_string().contains("text_data"), "{err}");
        e.data = Some(Data::TextData("{}".into()));
        check_publish(&e).unwrap();
        e.attributes.remove(keys::TTL);
        assert!(check_publish(&e).unwrap_err().to_string().contains("ttl"));
    }

    #[test]
    fn binary_and_proto_data_survive() {
        let core =
            CloudEvent::new("1", "/", "t").with_data("application/octet-stream", vec![0xff, 0]);
        let pb = from_event(&core);
        assert!(matches!(pb.data, Some(Data::BinaryData(_))));
        assert_eq!(to_event(&pb).unwrap().data, core.data);
        let core = CloudEvent::new("1", "/", "t").with_data("application/protobuf", vec![8, 1]);
        let pb = from_event(&core);
        assert!(matches!(pb.data, Some(Data::ProtoData(_))));
        assert_eq!(to_event(&pb).unwrap().data, core.data);
    }

    #[test]
    fn subscription_payloads_parse() {
        let e = PbEvent {
            data: Some(Data::TextData(
                r#"[{"topic":"a","mode":"BROADCASTING","type":"SYNC"},{"topic":"b"}]"#.into(),
            )),
            ..PbEvent::default()
        };
        let items = subscription_items(&e).unwrap();
        assert_eq!(items[0].mode().unwrap(), SubscriptionMode::Broadcasting);
        assert_eq!(items[0].filter, None);
        assert_eq!(items[1].ty().unwrap(), SubscriptionType::Async);
        let bad = PbEvent {
            data: Some(Data::TextData(
                r#"[{"topic":"a","mode":"SIDEWAYS"}]"#.into(),
            )),
            ..PbEvent::default()
        };
        assert_eq!(
            subscription_items(&bad).unwrap_err().status(),
            StatusCode::BodyErr
        );
        assert!(subscription_items(&PbEvent::default()).is_err());
    }

    #[test]
    fn a_filter_is_read_and_written_only_when_set() {
        let plain =
            SubscriptionItem::new("a", SubscriptionMode::Clustering, SubscriptionType::Async);
        assert_eq!(
            subscription_data(std::slice::from_ref(&plain)),
            r#"[{"topic":"a","mode":"CLUSTERING","type":"ASYNC"}]"#
        );
        let filtered = plain.with_filter("type = 'x'");
        let e = PbEvent {
            data: Some(Data::TextData(subscription_data(&[filtered]))),
            ..PbEvent::default()
        };
        let items = subscription_items(&e).unwrap();
        assert_eq!(items[0].filter.as_deref(), Some("type = 'x'"));
    }

    #[test]
    fn legacy_messages_map_both_ways() {
        let msg = legacy::SimpleMessage {
            producer_group: "pg".into(),
            topic: "t".into(),
            content: "hi".into(),
            ttl: "4000".into(),
            unique_id: "u1".into(),
            seq_num: "7".into(),
            properties: [("REPLY_TO".to_owned(), "x".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let e = simple_to_event(&msg).unwrap();
        assert_eq!(e.subject.as_deref(), Some("t"));
        assert_eq!(e.extension_str("replyto"), Some("x"));
        let back = event_to_simple(&e, None);
        assert_eq!(
            (
                back.topic.as_str(),
                back.content.as_str(),
                back.unique_id.as_str()
            ),
            ("t", "hi", "u1")
        );
        let mut bad = msg.clone();
        bad.ttl.clear();
        assert!(
            simple_to_event(&bad)
                .unwrap_err()
                .to_string()
                .contains("ttl")
        );
        let bin = CloudEvent::new("1", "/", "t").with_data("application/octet-stream", vec![0xff]);
        let s = event_to_simple(&bin, None);
        assert_eq!(
            s.properties.get(CONTENT_ENCODING).map(String::as_str),
            Some("base64")
        );
    }

    #[test]
    fn responses_carry_code_and_message() {
        let r = response(StatusCode::ClientResubscribe, "");
        assert_eq!(
            response_status(&r),
            Some((
                "30".to_owned(),
                StatusCode::ClientResubscribe.desc().to_owned()
            ))
        );
    }
}
