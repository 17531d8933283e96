//! The frame header (`Header.java`): a small JSON object.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Command;
use crate::ProtocolError;
use crate::json::{lenient_i32, lenient_opt_string, object_from_slice};

/// Header property naming the body's protocol: `eventmeshmessage`, `cloudevents` or `openmessage`.
pub const PROTOCOL_TYPE: &str = "protocoltype";
/// Header property naming the CloudEvents spec version of the body: `1.0` or `0.3`.
pub const PROTOCOL_VERSION: &str = "protocolversion";
/// Header property naming the transport, `tcp` for this protocol.
pub const PROTOCOL_DESC: &str = "protocoldesc";

/// The `code` values of a header (`OPStatus.java`). Clients only test for 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OpStatus {
    /// 0, `success`.
    Success = 0,
    /// 1, `fail`.
    Fail = 1,
    /// 2, `aclFail`.
    AclFail = 2,
    /// 3, `tpsOverload`.
    TpsOverload = 3,
}

impl OpStatus {
    /// The numeric code.
    #[must_use]
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The Java runtime's default description text.
    #[must_use]
    pub const fn desc(self) -> &'static str {
        match self {
            OpStatus::Success => "success",
            OpStatus::Fail => "fail",
            OpStatus::AclFail => "aclFail",
            OpStatus::TpsOverload => "tpsOverload",
        }
    }

    /// The status with this code, if known.
    #[must_use]
    pub const fn from_code(code: i32) -> Option<OpStatus> {
        match code {
            0 => Some(OpStatus::Success),
            1 => Some(OpStatus::Fail),
            2 => Some(OpStatus::AclFail),
            3 => Some(OpStatus::TpsOverload),
            _ => None,
        }
    }
}

/// The body protocol a message command carries, from the `protocoltype` header property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolType {
    /// `eventmeshmessage`: an [`EventMeshMessage`](super::EventMeshMessage) JSON body.
    EventMeshMessage,
    /// `cloudevents`: a CloudEvent in structured JSON format.
    CloudEvents,
    /// `openmessage`: an `OpenMessaging` message (legacy, not supported by the conversions).
    OpenMessage,
}

impl ProtocolType {
    /// The property value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolType::EventMeshMessage => "eventmeshmessage",
            ProtocolType::CloudEvents => "cloudevents",
            ProtocolType::OpenMessage => "openmessage",
        }
    }

    /// Parses the property value (exact, as the Java runtime compares it).
    #[must_use]
    pub fn parse(s: &str) -> Option<ProtocolType> {
        match s {
            "eventmeshmessage" => Some(ProtocolType::EventMeshMessage),
            "cloudevents" => Some(ProtocolType::CloudEvents),
            "openmessage" => Some(ProtocolType::OpenMessage),
            _ => None,
        }
    }
}

impl fmt::Display for ProtocolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame header.
///
/// On the wire (v1.2 and later) it is written as
/// `{"cmd":NAME,"code":N,"desc":…,"seq":…,"properties":{…},"command":NAME}`, with `desc` and
/// `seq` left out when absent and `command` a duplicate of `cmd` (the Java runtime emits it and
/// old clients read it). On input `cmd` may be a name or an integer code; `command` is read when
/// `cmd` is absent (v1.0–v1.2 clients), and `msg` when `desc` is absent (v1.0).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The command.
    pub command: Command,
    /// The status code (see [`OpStatus`]); 0 in requests.
    pub code: i32,
    /// Status text or error description.
    pub desc: Option<String>,
    /// The correlation id. Clients send ten random digits; responses echo the request's seq;
    /// server goodbye and redirect frames have none.
    pub seq: Option<String>,
    /// Protocol metadata (`protocoltype`, `protocolversion`, `protocoldesc`) plus trace and
    /// timestamp properties. Values are any JSON; clients mostly send strings.
    pub properties: BTreeMap<String, Value>,
}

impl Header {
    /// A header with code 0 and no properties.
    #[must_use]
    pub fn new(command: Command, seq: Option<String>) -> Self {
        Header {
            command,
            code: 0,
            desc: None,
            seq,
            properties: BTreeMap::new(),
        }
    }

    /// The header of the answer to this request: the reply command of the request's command
    /// (or the same command when it has none), the request's `seq`, and `status`.
    #[must_use]
    pub fn reply(&self, status: OpStatus, desc: Option<String>) -> Header {
        Header {
            command: self.command.reply().unwrap_or(self.command),
            code: status.code(),
            desc,
            seq: self.seq.clone(),
            properties: BTreeMap::new(),
        }
    }

    /// Sets `code` and `desc` from a status (builder style).
    #[must_use]
    pub fn with_status(mut self, status: OpStatus, desc: impl Into<String>) -> Self {
        self.code = status.code();
        self.desc = Some(desc.into());
        self
    }

    /// Sets one property (builder style).
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the three protocol properties a message command needs.
    #[must_use]
    pub fn with_protocol(self, ty: ProtocolType, version: &str) -> Self {
        self.with_property(PROTOCOL_TYPE, ty.as_str())
            .with_property(PROTOCOL_VERSION, version)
            .with_property(PROTOCOL_DESC, "tcp")
    }

    /// A property as a string, the way Java's `getStringProperty` reads it: strings as they are,
    /// other values as their JSON text, `null` as absent.
    #[must_use]
    pub fn property_string(&self, key: &str) -> Option<String> {
        match self.properties.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The `protocoltype` property, parsed. `None` if absent; `Err` with the value if unknown.
    #[must_use]
    pub fn protocol_type(&self) -> Option<Result<ProtocolType, String>> {
        let s = self.property_string(PROTOCOL_TYPE)?;
        Some(ProtocolType::parse(&s).ok_or(s))
    }

    /// Parses a header from its JSON bytes, accepting every variant clients send.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidHeader`] for bad JSON, [`ProtocolError::MissingCommand`],
    /// [`ProtocolError::UnknownCommand`] or [`ProtocolError::InvalidHeaderField`].
    pub fn from_json(bytes: &[u8]) -> Result<Header, ProtocolError> {
        let raw: RawHeader = object_from_slice(bytes).map_err(ProtocolError::InvalidHeader)?;
        raw.into_header()
    }

    /// The header's JSON in the current style.
    ///
    /// # Panics
    /// Never: serialising a header into memory cannot fail.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_json(HeaderStyle::Current, &mut out)
            .expect("serialising a header into a Vec cannot fail");
        out
    }

    pub(crate) fn write_json<W: std::io::Write>(
        &self,
        style: HeaderStyle,
        w: W,
    ) -> Result<(), serde_json::Error> {
        match style {
            HeaderStyle::Current => serde_json::to_writer(w, self),
            HeaderStyle::V10 => serde_json::to_writer(
                w,
                &V10Header {
                    command: self.command.name(),
                    code: self.code,
                    msg: self.desc.as_deref(),
                    seq: self.seq.as_deref(),
                    properties: &self.properties,
                },
            ),
        }
    }
}

/// Which header keys to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderStyle {
    /// `cmd`, `code`, `desc`, `seq`, `properties`, `command` (v1.4 and later).
    Current,
    /// `command`, `code`, `msg`, `seq` (v1.0); `properties` only when not empty.
    V10,
}

#[derive(Serialize)]
struct CurrentHeader<'a> {
    cmd: &'static str,
    code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    desc: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<&'a str>,
    properties: &'a BTreeMap<String, Value>,
    command: &'static str,
}

#[derive(Serialize)]
struct V10Header<'a> {
    command: &'static str,
    code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    properties: &'a BTreeMap<String, Value>,
}

impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CurrentHeader {
            cmd: self.command.name(),
            code: self.code,
            desc: self.desc.as_deref(),
            seq: self.seq.as_deref(),
            properties: &self.properties,
            command: self.command.name(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawHeader::deserialize(d)?
            .into_header()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default)]
    cmd: Option<Value>,
    #[serde(default)]
    command: Option<Value>,
    #[serde(default, deserialize_with = "lenient_i32")]
    code: i32,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    desc: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    msg: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    seq: Option<String>,
    #[serde(default)]
    properties: Option<BTreeMap<String, Value>>,
}

impl RawHeader {
    fn into_header(self) -> Result<Header, ProtocolError> {
        let present = |v: &Value| !v.is_null();
        let cmd = self
            .cmd
            .filter(present)
            .or_else(|| self.command.filter(present))
            .ok_or(ProtocolError::MissingCommand)?;
        Ok(Header {
            command: parse_command(&cmd)?,
            code: self.code,
            desc: self.desc.or(self.msg),
            seq: self.seq,
            properties: self.properties.unwrap_or_default(),
        })
    }
}

/// A command given as its name, as its code, or as a string of digits (Jackson reads all three).
fn parse_command(v: &Value) -> Result<Command, ProtocolError> {
    match v {
        Value::String(s) => Command::from_name(s)
            .or_else(|| {
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok().and_then(Command::from_code)
                } else {
                    None
                }
            })
            .ok_or_else(|| ProtocolError::UnknownCommand(truncate(s))),
        Value::Number(n) => n
            .as_i64()
            .and_then(Command::from_code)
            .ok_or_else(|| ProtocolError::UnknownCommand(n.to_string())),
        other => Err(ProtocolError::InvalidHeaderField {
            field: "cmd",
            reason: format!(
                "expected a command name or code, found {}",
                json_kind(other)
            ),
        }),
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_current_style_in_java_field_order() {
        let h = Header::new(Command::HeartbeatRequest, Some("1234567890".into()));
        assert_eq!(
            String::from_utf8(h.to_json()).unwrap(),
            r#"{"cmd":"HEARTBEAT_REQUEST","code":0,"seq":"1234567890","properties":{},"command":"HEARTBEAT_REQUEST"}"#
        );
        // The reference's worked example: a heartbeat header is 101 bytes.
        assert_eq!(h.to_json().len(), 101);
    }

    #[test]
    fn reads_every_variant() {
        let h = Header::from_json(br#"{"cmd":2,"code":"0","seq":1234,"properties":null}"#).unwrap();
        assert_eq!(h.command, Command::HelloRequest);
        assert_eq!(h.seq.as_deref(), Some("1234"));
        let h =
            Header::from_json(br#"{"command":"SUBSCRIBE_REQUEST","code":0,"msg":"m","seq":"1"}"#)
                .unwrap();
        assert_eq!(h.command, Command::SubscribeRequest);
        assert_eq!(h.desc.as_deref(), Some("m"));
        let h = Header::from_json(br#"{"cmd":"20","unknown":[1,2]}"#).unwrap();
        assert_eq!(h.command, Command::AsyncMessageToServer);
        assert!(matches!(
            Header::from_json(br#"{"cmd":"NOPE"}"#),
            Err(ProtocolError::UnknownCommand(s)) if s == "NOPE"
        ));
        assert!(matches!(
            Header::from_json(br#"{"cmd":37}"#),
            Err(ProtocolError::UnknownCommand(_))
        ));
        assert!(matches!(
            Header::from_json(br#"{"code":0}"#),
            Err(ProtocolError::MissingCommand)
        ));
        assert!(matches!(
            Header::from_json(br#"{"cmd":[]}"#),
            Err(ProtocolError::InvalidHeaderField { .. })
        ));
        assert!(matches!(
            Header::from_json(b"[1]"),
            Err(ProtocolError::InvalidHeader(_))
        ));
    }

    #[test]
    fn reply_echoes_seq() {
        let req = Header::new(Command::AsyncMessageToServer, Some("42".into()));
        let rep = req.reply(
            OpStatus::TpsOverload,
            Some("Tps overload, global flow control".into()),
        );
        assert_eq!(rep.command, Command::AsyncMessageToServerAck);
        assert_eq!(rep.code, 3);
        assert_eq!(rep.seq.as_deref(), Some("42"));
    }
}
