//! The three push formats, chosen by the subscription (never by the publisher):
//!
//! * [`PushFormat::Form`]: the Java runtime's push (section 3.2): `POST` with a form body
//!   `content` (the data; base64 when it is not UTF-8, with `extFields.contentencoding=base64`),
//!   `bizseqno`, `uniqueId`, `randomNo`, `topic`, `extFields` (every extension, as a JSON map),
//!   and headers `code` (105, or 106 for a SYNC subscription), `language`, `version`,
//!   `eventmeshcluster`, `eventmeship`, `eventmeshenv`, `eventmeshidc`, `protocoltype`;
//! * [`PushFormat::FormCloudEvents`]: the same form with the whole structured CloudEvent JSON in
//!   `content` (what Java SDK consumers with `protocoltype=cloudevents` expect);
//! * [`PushFormat::Binary`]: a binary-mode CloudEvent (`ce-*` headers, the data as the body)
//!   for CloudEvents-native receivers.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Request, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use eventmesh_core::ExtensionValue;
use http_body_util::Full;
use serde_json::{Map, Value};

use crate::core::{Push, PushKind};
use crate::server::http::request_code::random_seq;

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// How a subscription wants its events.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PushFormat {
    /// The legacy form push (`eventmeshmessage`): `content` is the data.
    #[default]
    Form,
    /// The form push with the structured CloudEvent JSON in `content`. Named as `format`
    /// names it; the earlier spelling, which persisted subscriptions may hold, still reads.
    #[serde(rename = "form-cloudevents", alias = "form-cloud-events")]
    FormCloudEvents,
    /// A binary-mode CloudEvent.
    Binary,
}

impl PushFormat {
    /// Parses an explicit `format` field: `form` (or `legacy`, `eventmeshmessage`),
    /// `form-cloudevents` (or `cloudevents`), `binary` (or `cloudevents-binary`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "form" | "legacy" | "eventmeshmessage" => Some(PushFormat::Form),
            "form-cloudevents" | "cloudevents" => Some(PushFormat::FormCloudEvents),
            "binary" | "cloudevents-binary" => Some(PushFormat::Binary),
            _ => None,
        }
    }

    /// The format a subscriber's `protocoltype` implies: `cloudevents` → the form with
    /// CloudEvent JSON; anything else → the legacy form.
    pub fn from_protocol_type(protocol: Option<&str>) -> Self {
        match protocol {
            Some(p) if p.trim().eq_ignore_ascii_case("cloudevents") => PushFormat::FormCloudEvents,
            _ => PushFormat::Form,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            PushFormat::Form => "form",
            PushFormat::FormCloudEvents => "form-cloudevents",
            PushFormat::Binary => "binary",
        }
    }
}

/// The `eventmesh*` identity headers of this node.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub(crate) cluster: String,
    pub(crate) ip: String,
    pub(crate) env: String,
    pub(crate) idc: String,
}

fn ext_string(v: &ExtensionValue) -> String {
    v.to_string()
}

/// Builds the request for `push` to `uri` in `format`.
pub(crate) fn request(
    push: &Push,
    format: PushFormat,
    uri: &Uri,
    instance: &Instance,
) -> Result<Request<Full<Bytes>>, String> {
    let event = &push.record.event;
    let builder = Request::post(uri.clone());
    match format {
        PushFormat::Form | PushFormat::FormCloudEvents => {
            let mut ext: Map<String, Value> = event
                .extensions
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(ext_string(v))))
                .collect();
            let content = if format == PushFormat::FormCloudEvents {
                let bytes = eventmesh_protocol::cloudevents::encode_event(event)
                    .map_err(|e| format!("cannot encode the event as CloudEvents JSON: {e}"))?;
                String::from_utf8(bytes).map_err(|e| e.to_string())?
            } else {
                match &event.data {
                    None => String::new(),
                    Some(d) => match std::str::from_utf8(d) {
                        Ok(s) => s.to_owned(),
                        Err(_) => {
                            ext.insert("contentencoding".into(), Value::String("base64".into()));
                            STANDARD.encode(d)
                        }
                    },
                }
            };
            let bizseqno = event
                .extension_str("bizseqno")
                .map_or_else(random_seq, str::to_owned);
            let unique_id = event
                .extension_str("uniqueid")
                .map_or_else(|| push.record.id.to_string(), str::to_owned);
            let topic = push.topic.to_string();
            let random_no = random_seq();
            let ext_text = Value::Object(ext).to_string();
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("content", &content)
                .append_pair("bizseqno", &bizseqno)
                .append_pair("uniqueId", &unique_id)
                .append_pair("randomNo", &random_no)
                .append_pair("topic", &topic)
                .append_pair("extFields", &ext_text)
                .finish();
            let code = match push.kind {
                PushKind::Request { .. } => "106",
                PushKind::Async => "105",
            };
            let protocol = if format == PushFormat::FormCloudEvents {
                "cloudevents"
            } else {
                "eventmeshmessage"
            };
            let mut b = builder
                .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
                .header("code", code)
                .header("language", "RUST")
                .header("version", "1.0")
                .header("protocoltype", protocol);
            b = instance_headers(b, instance);
            b.body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())
        }
        PushFormat::Binary => {
            let mut b = builder;
            b = b
                .header("ce-specversion", event.spec_version.as_str())
                .header("ce-id", encode_value(&event.id)?)
                .header("ce-source", encode_value(&event.source)?)
                .header("ce-type", encode_value(&event.ty)?);
            if let Some(s) = &event.subject {
                b = b.header("ce-subject", encode_value(s)?);
            }
            if let Some(t) = &event.time {
                b = b.header("ce-time", t.to_rfc3339());
            }
            if let Some(s) = &event.data_schema {
                b = b.header("ce-dataschema", encode_value(s)?);
            }
            for (k, v) in &event.extensions {
                b = b.header(format!("ce-{k}"), encode_value(&ext_string(v))?);
            }
            if let Some(ct) = &event.data_content_type {
                b = b.header(CONTENT_TYPE, encode_value(ct)?);
            }
            b = instance_headers(b, instance);
            b.body(Full::new(event.data.clone().unwrap_or_default()))
                .map_err(|e| e.to_string())
        }
    }
}

fn instance_headers(
    mut b: axum::http::request::Builder,
    i: &Instance,
) -> axum::http::request::Builder {
    for (name, value) in [
        ("eventmeshcluster", &i.cluster),
        ("eventmeship", &i.ip),
        ("eventmeshenv", &i.env),
        ("eventmeshidc", &i.idc),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            b = b.header(name, v);
        }
    }
    b
}

/// Percent-encodes a binary-mode header value: space, `"`, `%`, controls and non-ASCII bytes
/// (CloudEvents HTTP binding 3.1.3.2).
fn encode_value(v: &str) -> Result<HeaderValue, String> {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b == b' ' || b == b'"' || b == b'%' || !(0x21..0x7f).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    HeaderValue::from_str(&out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(PushFormat::parse("LEGACY"), Some(PushFormat::Form));
        assert_eq!(
            PushFormat::parse("cloudevents"),
            Some(PushFormat::FormCloudEvents)
        );
        assert_eq!(PushFormat::parse("binary"), Some(PushFormat::Binary));
        assert_eq!(PushFormat::parse("xml"), None);
        assert_eq!(
            PushFormat::from_protocol_type(Some("CloudEvents")),
            PushFormat::FormCloudEvents
        );
        assert_eq!(PushFormat::from_protocol_type(None), PushFormat::Form);
    }

    #[test]
    fn header_values_are_percent_encoded() {
        assert_eq!(encode_value("a b%\"é").unwrap(), "a%20b%25%22%C3%A9");
        assert_eq!(encode_value("/plain").unwrap(), "/plain");
    }
}
