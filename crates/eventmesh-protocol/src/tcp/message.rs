//! The `eventmeshmessage` body of message commands (`EventMeshMessage.java`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::json::{lenient_opt_string, lenient_string_map};

/// The `headers` key carrying the data content type.
pub const DATA_CONTENT_TYPE: &str = "datacontenttype";

/// A message in the `eventmeshmessage` protocol:
/// `{"topic":"T","properties":{"k":"v"},"headers":{"datacontenttype":"text/plain"},"body":"…"}`.
///
/// `properties` and `headers` are always written (Java initialises both maps); `topic` and
/// `body` are left out when absent. v1.0 clients' `AccessMessage` (`{topic, properties, body}`)
/// reads as the same type; non-string property values are read as strings, `null` ones dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeshMessage {
    /// The topic.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub topic: Option<String>,
    /// Message properties; they become CloudEvent extensions (`ttl`, `keys`, `msgtype`, ...).
    #[serde(default, deserialize_with = "lenient_string_map")]
    pub properties: BTreeMap<String, String>,
    /// v1.9 and later: event attributes such as `datacontenttype`.
    #[serde(default, deserialize_with = "lenient_string_map")]
    pub headers: BTreeMap<String, String>,
    /// The payload, a string.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
}

impl EventMeshMessage {
    /// Parses a message body.
    ///
    /// # Errors
    /// The JSON error if the bytes are not a message object.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        crate::json::object_from_slice(bytes)
    }

    /// The message's JSON.
    ///
    /// # Panics
    /// Never: serialising this type into memory cannot fail.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialising a message into a Vec cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shape_round_trips() {
        let json = r#"{"topic":"T","properties":{"k":"v"},"headers":{"datacontenttype":"text/plain"},"body":"hello"}"#;
        let m = EventMeshMessage::from_json(json.as_bytes()).unwrap();
        assert_eq!(m.body.as_deref(), Some("hello"));
        assert_eq!(String::from_utf8(m.to_json()).unwrap(), json);
    }

    #[test]
    fn reads_v10_access_message() {
        let m = EventMeshMessage::from_json(
            br#"{"topic":"PRX-e-10010001-01-1","properties":{"TTL":30000,"msgType":"persistent","X":null},"body":"b"}"#,
        )
        .unwrap();
        assert_eq!(m.properties.get("TTL").map(String::as_str), Some("30000"));
        assert_eq!(m.properties.len(), 2);
        assert!(m.headers.is_empty());
    }
}
