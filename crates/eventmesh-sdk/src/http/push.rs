//! Reading a webhook push in any of the mesh's three formats.

use bytes::Bytes;
use eventmesh_core::{CloudEvent, ExtensionValue};
use eventmesh_protocol::cloudevents as ce_json;
use hyper::HeaderMap;
use serde_json::{Map, Value};

/// One event pushed to a subscriber.
#[derive(Clone, Debug)]
pub struct PushedEvent {
    /// The topic it was published to.
    pub topic: String,
    /// The event.
    pub event: CloudEvent,
    /// Whether it is a request (code 106, a SYNC subscription): the handler's `Some(reply)` is
    /// sent back with code 301.
    pub is_request: bool,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let Some(b) = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a push (form, form with CloudEvent JSON, or binary-mode CloudEvent).
pub(crate) fn parse(headers: &HeaderMap, body: &Bytes) -> Result<PushedEvent, String> {
    if headers.contains_key("ce-specversion") {
        let mut attrs = Map::new();
        for (name, value) in headers {
            if let Some(attr) = name.as_str().strip_prefix("ce-") {
                attrs.insert(
                    attr.to_owned(),
                    Value::String(percent_decode(value.as_bytes())),
                );
            }
        }
        let mut event = ce_json::decode_event(Value::Object(attrs).to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        event.data_content_type = header(headers, "content-type").map(str::to_owned);
        event.data = (!body.is_empty()).then(|| body.clone());
        return Ok(PushedEvent {
            topic: event.subject.clone().unwrap_or_default(),
            event,
            is_request: event_is_request(headers),
        });
    }
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    let content = form.get("content").cloned().unwrap_or_default();
    let topic = form.get("topic").cloned().unwrap_or_default();
    let cloudevents =
        header(headers, "protocoltype").is_some_and(|p| p.eq_ignore_ascii_case("cloudevents"));
    let mut event = if cloudevents {
        ce_json::decode_event(content.as_bytes()).map_err(|e| e.to_string())?
    } else {
        let id = form
            .get("bizseqno")
            .cloned()
            .unwrap_or_else(crate::random_id);
        let mut e = CloudEvent::new(id, "/", "eventmeshmessage").with_data("text/plain", content);
        e.subject = Some(topic.clone());
        e
    };
    if let Some(ext) = form.get("extfields")
        && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(ext)
    {
        for (k, v) in m {
            if let Value::String(s) = v {
                event
                    .extensions
                    .entry(k)
                    .or_insert(ExtensionValue::String(s));
            }
        }
    }
    Ok(PushedEvent {
        topic,
        event,
        is_request: event_is_request(headers),
    })
}

fn event_is_request(headers: &HeaderMap) -> bool {
    header(headers, "code") == Some("106")
}
