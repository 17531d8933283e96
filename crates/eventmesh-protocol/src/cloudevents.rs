//! The CloudEvents JSON event format (structured mode), versions 1.0 and 0.3, and the JSON batch
//! format, to and from [`eventmesh_core::CloudEvent`].
//!
//! Used by the TCP `cloudevents` protocol type, and by the HTTP server for
//! `application/cloudevents+json` and `application/cloudevents-batch+json`.
//!
//! # Data
//! * On input, `data_base64` (1.0) or `data` with `datacontentencoding: "base64"` (0.3) is
//!   base64-decoded. Otherwise, when the content type is JSON (absent, `application/json`,
//!   `text/json` or `*/*+json`), the data is the exact JSON text of `data`; for other content
//!   types a JSON string `data` is its characters, any other value its JSON text.
//! * On output, JSON data whose bytes are exactly one JSON value is embedded as `data`; data of a
//!   text content type (`text/*`, `*/xml`, `*+xml`) that is UTF-8 is written as a string `data`;
//!   everything else goes to `data_base64` (0.3: base64 `data` plus `datacontentencoding`).
//!   So `decode_event(encode_event(e)) == e` for every valid event.
//!
//! # Extensions
//! Every other member is an extension: strings, booleans and integers keep their type; other
//! numbers, objects and arrays are kept as their JSON text; `null` means absent. Names must be
//! lower-case ASCII letters and digits.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use bytes::Bytes;
use eventmesh_core::event::{EventValidationError, is_valid_extension_name};
use eventmesh_core::{CloudEvent, ExtensionValue, SpecVersion};
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

/// The media type of one structured-mode event.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// The media type of a batch.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// Why a CloudEvents JSON document was refused. Errors name the attribute at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes are not JSON.
    #[error("not a CloudEvents JSON document: {0}")]
    Json(#[source] serde_json::Error),
    /// The document is JSON but not an object (an event) or an array (a batch).
    #[error("a CloudEvents JSON {expected} must be a JSON {shape}")]
    WrongShape {
        /// `"event"` or `"batch"`.
        expected: &'static str,
        /// `"object"` or `"array"`.
        shape: &'static str,
    },
    /// A required attribute is missing, `null` or empty.
    #[error("required attribute `{0}` is missing or empty")]
    MissingAttribute(&'static str),
    /// `specversion` is not `1.0` or `0.3`.
    #[error("unsupported specversion {0:?}: use \"1.0\" or \"0.3\"")]
    UnsupportedSpecVersion(String),
    /// An attribute has the wrong type or an invalid value.
    #[error("invalid attribute `{name}`: {reason}")]
    InvalidAttribute {
        /// The attribute.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An event of a batch is invalid.
    #[error("event {index} of the batch: {source}")]
    InBatch {
        /// The event's position, from 0.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<FormatError>,
    },
}

impl FormatError {
    fn invalid(name: &str, reason: impl Into<String>) -> Self {
        FormatError::InvalidAttribute {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<EventValidationError> for FormatError {
    fn from(e: EventValidationError) -> Self {
        match e {
            EventValidationError::MissingAttribute(name) => FormatError::MissingAttribute(name),
            EventValidationError::BadExtensionName(ref name)
            | EventValidationError::ReservedExtensionName(ref name)
            | EventValidationError::AttributeTooLong { ref name, .. } => {
                FormatError::invalid(name, e.to_string())
            }
        }
    }
}

/// Base64 as CloudEvents writes it (standard alphabet, padded), read with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether a `datacontenttype` is JSON for the JSON format (absent counts as JSON).
#[must_use]
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let media = media_type(ct);
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// Whether a `datacontenttype` is textual (`text/*`, `application/xml`, `*+xml`).
#[must_use]
pub fn is_text_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let media = media_type(ct);
    media.starts_with("text/") || media == "application/xml" || media.ends_with("+xml")
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

// ------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------

/// Decodes one event in structured JSON format.
///
/// # Errors
/// A [`FormatError`] naming the attribute at fault.
pub fn decode_event(bytes: &[u8]) -> Result<CloudEvent, FormatError> {
    if first_byte(bytes) != Some(b'{') {
        // Give serde's message for non-JSON, ours for JSON of the wrong shape.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(FormatError::Json)?;
        return Err(FormatError::WrongShape {
            expected: "event",
            shape: "object",
        });
    }
    let members: BTreeMap<String, &RawValue> =
        serde_json::from_slice(bytes).map_err(FormatError::Json)?;
    from_members(members)
}

/// Decodes a batch (a JSON array of structured events).
///
/// # Errors
/// A [`FormatError`]; for a bad event, [`FormatError::InBatch`] with its index.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<CloudEvent>, FormatError> {
    if first_byte(bytes) != Some(b'[') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(FormatError::Json)?;
        return Err(FormatError::WrongShape {
            expected: "batch",
            shape: "array",
        });
    }
    let items: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(FormatError::Json)?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            decode_event(raw.get().as_bytes()).map_err(|e| FormatError::InBatch {
                index,
                source: Box::new(e),
            })
        })
        .collect()
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.trim_ascii_start().first().copied()
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A string attribute; `Ok(None)` when absent or `null`.
fn opt_string(
    members: &mut BTreeMap<String, &RawValue>,
    name: &str,
) -> Result<Option<String>, FormatError> {
    match members.remove(name) {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| {
                FormatError::invalid(name, format!("expected a string, found {}", kind(raw)))
            }),
    }
}

fn required(
    members: &mut BTreeMap<String, &RawValue>,
    name: &'static str,
) -> Result<String, FormatError> {
    match opt_string(members, name)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(FormatError::MissingAttribute(name)),
    }
}

fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn from_members(mut m: BTreeMap<String, &RawValue>) -> Result<CloudEvent, FormatError> {
    let spec = required(&mut m, "specversion")?;
    let spec_version =
        SpecVersion::parse(&spec).ok_or(FormatError::UnsupportedSpecVersion(spec))?;
    let v03 = spec_version == SpecVersion::V03;

    let mut event = CloudEvent {
        id: required(&mut m, "id")?,
        source: required(&mut m, "source")?,
        spec_version,
        ty: required(&mut m, "type")?,
        subject: opt_string(&mut m, "subject")?,
        time: None,
        data_content_type: opt_string(&mut m, "datacontenttype")?,
        data_schema: None,
        data: None,
        extensions: BTreeMap::new(),
    };
    event.data_schema = if v03 {
        let schemaurl = opt_string(&mut m, "schemaurl")?;
        // Lenient: some 0.3 producers write the 1.0 name.
        let dataschema = opt_string(&mut m, "dataschema")?;
        schemaurl.or(dataschema)
    } else {
        opt_string(&mut m, "dataschema")?
    };
    if let Some(t) = opt_string(&mut m, "time")? {
        event.time = Some(t.parse().map_err(|e| {
            FormatError::invalid("time", format!("{t:?} is not an RFC 3339 timestamp ({e})"))
        })?);
    }

    let encoding = if v03 {
        opt_string(&mut m, "datacontentencoding")?
    } else {
        None
    };
    let data = m.remove("data").filter(|r| !is_null(r));
    let data_base64 = m.remove("data_base64").filter(|r| !is_null(r));
    event.data = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(FormatError::invalid(
                "data_base64",
                "an event cannot carry both `data` and `data_base64`",
            ));
        }
        (None, Some(b64)) => Some(base64_data("data_base64", b64)?),
        (Some(d), None) => Some(match encoding.as_deref() {
            Some(enc) if enc.eq_ignore_ascii_case("base64") => base64_data("data", d)?,
            Some(other) => {
                return Err(FormatError::invalid(
                    "datacontentencoding",
                    format!("{other:?} is not supported; only \"base64\" is"),
                ));
            }
            None => inline_data(event.data_content_type.as_deref(), d),
        }),
        (None, None) => None,
    };

    for (name, raw) in m {
        if is_null(raw) {
            continue;
        }
        if !is_valid_extension_name(&name) {
            return Err(FormatError::invalid(
                &name,
                "extension names are 1 to 64 lower-case ASCII letters or digits",
            ));
        }
        let value = serde_json::from_str::<serde_json::Value>(raw.get())
            .map_err(|e| FormatError::invalid(&name, e.to_string()))?;
        let value = match value {
            serde_json::Value::String(s) => ExtensionValue::String(s),
            serde_json::Value::Bool(b) => ExtensionValue::Boolean(b),
            serde_json::Value::Number(n) if n.as_i64().is_some() => {
                ExtensionValue::Integer(n.as_i64().unwrap_or_default())
            }
            _ => ExtensionValue::String(raw.get().to_owned()),
        };
        event.extensions.insert(name, value);
    }
    event.validate()?;
    Ok(event)
}

fn base64_data(name: &str, raw: &RawValue) -> Result<Bytes, FormatError> {
    let s: String = serde_json::from_str(raw.get()).map_err(|_| {
        FormatError::invalid(
            name,
            format!("expected a base64 string, found {}", kind(raw)),
        )
    })?;
    BASE64
        .decode(s.as_bytes())
        .map(Bytes::from)
        .map_err(|e| FormatError::invalid(name, format!("invalid base64: {e}")))
}

fn inline_data(content_type: Option<&str>, raw: &RawValue) -> Bytes {
    let text = raw.get();
    if !is_json_content_type(content_type)
        && text.starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(text)
    {
        return Bytes::from(s);
    }
    Bytes::copy_from_slice(text.as_bytes())
}

// ------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------

/// Encodes one event in structured JSON format.
///
/// # Errors
/// [`FormatError`] if the event is not valid (see [`CloudEvent::validate`]), or if a 0.3 event
/// has an extension named like a 0.3 attribute (`schemaurl`, `datacontentencoding`).
pub fn encode_event(event: &CloudEvent) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(256 + event.data.as_ref().map_or(0, Bytes::len));
    write_event(event, &mut out)?;
    Ok(out)
}

/// Encodes events as a batch (a JSON array).
///
/// # Errors
/// As [`encode_event`], wrapped in [`FormatError::InBatch`].
pub fn encode_batch(events: &[CloudEvent]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(256 * events.len() + 2);
    out.push(b'[');
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_event(event, &mut out).map_err(|e| FormatError::InBatch {
            index,
            source: Box::new(e),
        })?;
    }
    out.push(b']');
    Ok(out)
}

/// Encodes one event at the end of `out`.
///
/// # Errors
/// As [`encode_event`].
pub fn write_event(event: &CloudEvent, out: &mut Vec<u8>) -> Result<(), FormatError> {
    event.validate()?;
    if event.spec_version == SpecVersion::V03 {
        for name in ["schemaurl", "datacontentencoding"] {
            if event.extensions.contains_key(name) {
                return Err(FormatError::invalid(
                    name,
                    "is a 0.3 context attribute and cannot be an extension of a 0.3 event",
                ));
            }
        }
    }
    let mut ser = serde_json::Serializer::new(out);
    EventOut(event)
        .serialize(&mut ser)
        .map_err(|e| FormatError::invalid("data", e.to_string()))
}

struct EventOut<'a>(&'a CloudEvent);

enum DataOut<'a> {
    Json(&'a RawValue),
    Text(&'a str),
    Base64(String),
}

impl EventOut<'_> {
    fn data(&self) -> Option<DataOut<'_>> {
        let e = self.0;
        let data = e.data.as_ref()?;
        let ct = e.data_content_type.as_deref();
        if is_json_content_type(ct) {
            if let Ok(raw) = serde_json::from_slice::<&RawValue>(data)
                && raw.get().len() == data.len()
            {
                return Some(DataOut::Json(raw));
            }
        } else if is_text_content_type(ct)
            && let Ok(s) = std::str::from_utf8(data)
        {
            return Some(DataOut::Text(s));
        }
        Some(DataOut::Base64(general_purpose::STANDARD.encode(data)))
    }

    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let v03 = e.spec_version == SpecVersion::V03;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("specversion", e.spec_version.as_str())?;
        map.serialize_entry("id", &e.id)?;
        map.serialize_entry("source", &e.source)?;
        map.serialize_entry("type", &e.ty)?;
        if let Some(ct) = &e.data_content_type {
            map.serialize_entry("datacontenttype", ct)?;
        }
        if let Some(schema) = &e.data_schema {
            map.serialize_entry(if v03 { "schemaurl" } else { "dataschema" }, schema)?;
        }
        if let Some(subject) = &e.subject {
            map.serialize_entry("subject", subject)?;
        }
        if let Some(time) = &e.time {
            map.serialize_entry("time", &time.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())?;
        }
        for (name, value) in &e.extensions {
            match value {
                ExtensionValue::String(v) => map.serialize_entry(name, v)?,
                ExtensionValue::Boolean(v) => map.serialize_entry(name, v)?,
                ExtensionValue::Integer(v) => map.serialize_entry(name, v)?,
            }
        }
        match self.data() {
            None => {}
            Some(DataOut::Json(raw)) => map.serialize_entry("data", raw)?,
            Some(DataOut::Text(text)) => map.serialize_entry("data", text)?,
            Some(DataOut::Base64(b64)) if v03 => {
                map.serialize_entry("datacontentencoding", "base64")?;
                map.serialize_entry("data", &b64)?;
            }
            Some(DataOut::Base64(b64)) => map.serialize_entry("data_base64", &b64)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(e: &CloudEvent) -> CloudEvent {
        decode_event(&encode_event(e).unwrap()).unwrap()
    }

    #[test]
    fn spec_example_decodes() {
        let json = br#"{
            "specversion" : "1.0",
            "type" : "com.example.someevent",
            "source" : "/mycontext",
            "subject": null,
            "id" : "C234-1234-1234",
            "time" : "2018-04-05T17:31:00Z",
            "comexampleextension1" : "value",
            "comexampleothervalue" : 5,
            "unsetextension": null,
            "datacontenttype" : "application/json",
            "data" : {"appinfoA" : "abc", "appinfoB" : 123}
        }"#;
        let e = decode_event(json).unwrap();
        assert_eq!(e.id, "C234-1234-1234");
        assert_eq!(e.subject, None);
        assert_eq!(
            e.data.as_deref(),
            Some(&br#"{"appinfoA" : "abc", "appinfoB" : 123}"#[..])
        );
        assert_eq!(
            e.extension("comexampleothervalue"),
            Some(&ExtensionValue::Integer(5))
        );
        assert!(!e.extensions.contains_key("unsetextension"));
        assert_eq!(
            e.time.unwrap().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
            "2018-04-05T17:31:00Z"
        );
        assert_eq!(roundtrip(&e), e);
    }

    #[test]
    fn data_representations() {
        let base = CloudEvent::new("1", "/s", "t");
        let text = base.clone().with_data("text/plain", "hello");
        let out = String::from_utf8(encode_event(&text).unwrap()).unwrap();
        assert!(out.ends_with(r#""data":"hello"}"#), "{out}");
        assert_eq!(roundtrip(&text), text);

        let bin = base
            .clone()
            .with_data("application/octet-stream", vec![0u8, 159, 146, 150]);
        let out = String::from_utf8(encode_event(&bin).unwrap()).unwrap();
        assert!(out.contains(r#""data_base64":"AJ+Slg==""#), "{out}");
        assert_eq!(roundtrip(&bin), bin);

        let bad_json = base.clone().with_data("application/json", "not json");
        assert!(
            String::from_utf8(encode_event(&bad_json).unwrap())
                .unwrap()
                .contains("data_base64")
        );
        assert_eq!(roundtrip(&bad_json), bad_json);

        let mut v03 = bin.clone();
        v03.spec_version = SpecVersion::V03;
        v03.data_schema = Some("http://schema".into());
        let out = String::from_utf8(encode_event(&v03).unwrap()).unwrap();
        assert!(out.contains(r#""datacontentencoding":"base64""#), "{out}");
        assert!(out.contains(r#""schemaurl":"http://schema""#), "{out}");
        assert_eq!(roundtrip(&v03), v03);
    }

    #[test]
    fn errors_name_the_attribute() {
        let err = |j: &str| decode_event(j.as_bytes()).unwrap_err().to_string();
        assert!(err(r#"{"specversion":"1.0","source":"/s","type":"t"}"#).contains("`id`"));
        assert!(err(r#"{"specversion":"2.0","id":"1","source":"/s","type":"t"}"#).contains("2.0"));
        assert!(err(r#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#).contains("`id`"));
        assert!(
            err(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}"#)
                .contains("`time`")
        );
        assert!(
            err(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"!!"}"#)
                .contains("`data_base64`")
        );
        assert!(
            err(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}"#)
                .contains("`Bad`")
        );
        assert!(err(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#)
            .contains("both"));
        assert!(err("[1]").contains("object"));
        assert!(err("nope").contains("not a CloudEvents JSON document"));
    }

    #[test]
    fn batch_round_trips_and_names_the_index() {
        let events = vec![
            CloudEvent::new("1", "/s", "t").with_data("text/plain", "a"),
            CloudEvent::new("2", "/s", "t").with_extension("partitionkey", "k"),
        ];
        let bytes = encode_batch(&events).unwrap();
        assert_eq!(decode_batch(&bytes).unwrap(), events);
        assert!(decode_batch(b"[]").unwrap().is_empty());
        let e = decode_batch(
            br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0"}]"#,
        )
        .unwrap_err();
        assert!(matches!(e, FormatError::InBatch { index: 1, .. }), "{e}");
        assert!(
            decode_batch(b"{}")
                .unwrap_err()
                .to_string()
                .contains("array")
        );
    }
}
