//! The CloudEvents HTTP protocol binding 1.0 on `POST /eventmesh/publish/{topic}` and
//! `POST /eventmesh/publish/batch`:
//!
//! * a `ce-specversion` header means **binary** mode: attributes from `ce-*` headers
//!   (percent-decoded), `datacontenttype` from `Content-Type`, the body as `data`;
//! * `Content-Type: application/cloudevents+json` means **structured** mode: the body is one
//!   CloudEvent in the JSON format;
//! * `Content-Type: application/cloudevents-batch+json` means **batched** mode: a JSON array of
//!   events, published all or nothing (per topic);
//! * anything else keeps the Java runtime's behaviour (section 3.3): the request is wrapped as
//!   the data of a new event (`{"headers","body","path","method"}` for JSON bodies, the raw body
//!   otherwise). `/eventmesh/publish/batch` refuses that (415).
//!
//! The topic is the path's suffix; on `/eventmesh/publish/batch` (`batch` is a reserved topic
//! name) it is the `topic` header or query parameter, else each event's `subject`. An invalid
//! event gets 400 with a JSON body whose `attribute` names the bad attribute.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eventmesh_core::{CloudEvent, EventValidationError, ExtensionValue, Topic};
use eventmesh_protocol::cloudevents::{self as ce_json, FormatError};
use serde_json::{Map, Value, json};

use super::HttpContext;
use super::form::Fields;
use super::listener::Peer;
use super::request_code::{header, parse_topic, random_seq};
use super::routes::{Failure, RET_BODY_ERR, read_body, rest_failure, rest_ok};

/// The topic when a publish names none (the Java runtime's default).
pub(crate) const DEFAULT_TOPIC: &str = "TEST-HTTP-TOPIC";
/// The default `ttl` extension of wrapped publishes (4 hours, in ms, as the Java runtime).
const DEFAULT_TTL_MS: &str = "14400000";

/// The attribute a format error is about.
fn attribute_of(e: &FormatError) -> Option<String> {
    match e {
        FormatError::MissingAttribute(a) => Some((*a).to_owned()),
        FormatError::InvalidAttribute { name, .. } => Some(name.clone()),
        FormatError::UnsupportedSpecVersion(_) => Some("specversion".to_owned()),
        FormatError::InBatch { source, .. } => attribute_of(source),
        _ => None,
    }
}

/// A 400 naming the attribute at fault.
pub(crate) fn format_failure(e: &FormatError) -> Failure {
    let f = Failure::new(StatusCode::BAD_REQUEST, RET_BODY_ERR, e.to_string());
    match attribute_of(e) {
        Some(a) => f.with_attribute(a),
        None => f,
    }
}

/// A 400 naming the attribute at fault.
pub(crate) fn validation_failure(e: &EventValidationError) -> Failure {
    let attribute = match e {
        EventValidationError::MissingAttribute(a) => (*a).to_owned(),
        EventValidationError::BadExtensionName(n)
        | EventValidationError::ReservedExtensionName(n) => n.clone(),
        EventValidationError::AttributeTooLong { name, .. } => name.clone(),
    };
    Failure::new(StatusCode::BAD_REQUEST, RET_BODY_ERR, e.to_string()).with_attribute(attribute)
}

/// How a publish request carries its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Binary,
    Structured,
    Batch,
    Wrapped,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

pub(crate) fn mode(headers: &HeaderMap) -> Mode {
    if headers.contains_key("ce-specversion") {
        return Mode::Binary;
    }
    match media_type(headers).as_deref() {
        Some(ce_json::CONTENT_TYPE) => Mode::Structured,
        Some(ce_json::BATCH_CONTENT_TYPE) => Mode::Batch,
        _ => Mode::Wrapped,
    }
}

/// Percent-decodes a binary-mode header value (CloudEvents HTTP binding 3.1.3.2): UTF-8, or
/// Latin-1 when the bytes are not UTF-8.
fn percent_decode(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` is not followed by two hex digits".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    // Senders that do not percent-encode (the Python SDK) send raw bytes, which HTTP clients
    // write as Latin-1: read those as Latin-1 rather than refuse them.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| e.into_bytes().iter().map(|b| char::from(*b)).collect()))
}

/// A binary-mode event: `ce-*` headers are the attributes, the body the data.
fn binary_event(headers: &HeaderMap, body: &[u8]) -> Result<CloudEvent, Failure> {
    let mut attrs = Map::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let value = percent_decode(value.as_bytes()).map_err(|why| {
            Failure::bad_header(format!("header `{name}`: {why}")).with_attribute(attr)
        })?;
        if matches!(attr, "data" | "data_base64" | "datacontenttype") {
            return Err(Failure::bad_header(format!(
                "header `{name}` is not allowed in binary mode (the body is the data, Content-Type its type)"
            ))
            .with_attribute(attr));
        }
        attrs.insert(attr.to_owned(), Value::String(value));
    }
    let json = Value::Object(attrs).to_string();
    let mut event = ce_json::decode_event(json.as_bytes()).map_err(|e| format_failure(&e))?;
    event.data_content_type = header(headers, "content-type").map(str::to_owned);
    event.data = (!body.is_empty()).then(|| bytes::Bytes::copy_from_slice(body));
    event.validate().map_err(|e| validation_failure(&e))?;
    Ok(event)
}

/// The Java runtime's wrapping of a plain HTTP request as an event.
fn wrapped_event(parts: &Parts, topic: &Topic, body: &[u8]) -> Result<CloudEvent, Failure> {
    let headers = &parts.headers;
    let ct = header(headers, "content-type").map(str::to_owned);
    let is_json =
        media_type(headers).is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    let data = if is_json {
        let parsed: Value = if body.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Failure::bad_body(format!("the body is not JSON: {e}")))?
        };
        let mut hs = Map::new();
        for (name, value) in headers {
            if matches!(
                name.as_str(),
                "authorization" | "cookie" | "passwd" | "token"
            ) {
                continue;
            }
            if let Ok(v) = value.to_str() {
                hs.insert(name.as_str().to_owned(), json!(v));
            }
        }
        json!({
            "headers": hs,
            "body": parsed,
            "path": parts.uri.path(),
            "method": parts.method.as_str(),
        })
        .to_string()
        .into_bytes()
    } else {
        body.to_vec()
    };
    let id = header(headers, "bizseqno").map_or_else(random_seq, str::to_owned);
    let mut event = CloudEvent::new(
        id,
        header(headers, "source").unwrap_or("/"),
        header(headers, "type").unwrap_or("http_request"),
    );
    event.subject = Some(topic.to_string());
    event.data_content_type = if is_json {
        Some("application/json".to_owned())
    } else {
        ct
    };
    event.data = (!data.is_empty()).then(|| bytes::Bytes::from(data));
    let pid = std::process::id().to_string();
    for (name, default) in [
        ("sys", Some("1234")),
        ("idc", Some("idc")),
        ("pid", Some(pid.as_str())),
        ("producergroup", Some("em-http-producer")),
        ("ttl", Some(DEFAULT_TTL_MS)),
        ("uniqueid", None),
        ("bizseqno", None),
    ] {
        if let Some(v) = header(headers, name).or(default) {
            event
                .extensions
                .insert(name.to_owned(), ExtensionValue::String(v.to_owned()));
        }
    }
    event.extensions.insert(
        "protocoltype".to_owned(),
        ExtensionValue::String("http".to_owned()),
    );
    event.validate().map_err(|e| validation_failure(&e))?;
    Ok(event)
}

/// Serves a publish: `path_topic` is the path's topic (`None` on `/eventmesh/publish/batch`).
pub(crate) async fn publish(
    ctx: &HttpContext,
    parts: Parts,
    body: Body,
    path_topic: Option<&str>,
) -> Response {
    let uri = parts.uri.path().to_owned();
    match publish_inner(ctx, &parts, body, path_topic).await {
        Ok(ids) => {
            let mut extra = Map::new();
            extra.insert(
                "eventIds".into(),
                Value::Array(ids.into_iter().map(Value::String).collect()),
            );
            rest_ok(ctx, &uri, extra)
        }
        Err(f) => {
            tracing::debug!(message = "HTTP publish failed.", uri = %uri, status = f.status.as_u16(), error = %f.message, attribute = ?f.attribute, transport = "http");
            rest_failure(ctx, &uri, f)
        }
    }
}

async fn publish_inner(
    ctx: &HttpContext,
    parts: &Parts,
    body: Body,
    path_topic: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let headers = &parts.headers;
    let mode = mode(headers);
    let is_batch_path = path_topic.is_none();
    if is_batch_path && mode == Mode::Wrapped {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RET_BODY_ERR,
            format!(
                "/eventmesh/publish/batch takes CloudEvents: send `{}` (or `{}`, or binary mode with ce-* headers)",
                ce_json::BATCH_CONTENT_TYPE,
                ce_json::CONTENT_TYPE
            ),
        ));
    }
    let body = read_body(body, ctx.options.max_body_bytes).await?;
    // The topic every event goes to, when the request names one.
    let fixed_topic = match path_topic {
        Some(t) if !t.is_empty() => Some(parse_topic(t, "topic")?),
        Some(_) => Some(parse_topic(
            header(headers, "subject").unwrap_or(DEFAULT_TOPIC),
            "subject",
        )?),
        None => {
            let query = parts
                .uri
                .query()
                .map(|q| Fields::from_urlencoded(q.as_bytes()));
            match header(headers, "topic").or_else(|| query.as_ref().and_then(|q| q.get("topic"))) {
                Some(t) => Some(parse_topic(t, "topic")?),
                None => None,
            }
        }
    };
    let events = match mode {
        Mode::Binary => vec![binary_event(headers, &body)?],
        Mode::Structured => {
            vec![ce_json::decode_event(&body).map_err(|e| format_failure(&e))?]
        }
        Mode::Batch => ce_json::decode_batch(&body).map_err(|e| format_failure(&e))?,
        Mode::Wrapped => {
            let topic = fixed_topic
                .clone()
                .ok_or_else(|| Failure::bad_body("the publish names no topic"))?;
            vec![wrapped_event(parts, &topic, &body)?]
        }
    };
    if events.len() > ctx.options.max_batch_events {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            super::routes::RET_BODY_SIZE_ERR,
            format!(
                "the batch has {} events; the limit is {}",
                events.len(),
                ctx.options.max_batch_events
            ),
        ));
    }
    // Group by topic (in order), checking every event before anything is published.
    let mut by_topic: Vec<(Topic, Vec<CloudEvent>)> = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        event.validate().map_err(|e| {
            let f = validation_failure(&e);
            if mode == Mode::Batch {
                f.prefixed(&format!("event {i} of the batch: "))
            } else {
                f
            }
        })?;
        let topic = match &fixed_topic {
            Some(t) => t.clone(),
            None => match event.subject.as_deref() {
                Some(s) => parse_topic(s, "subject").map_err(|f| f.with_attribute("subject"))?,
                None => {
                    return Err(Failure::bad_body(format!(
                        "event {i} has no `subject` and the request names no topic (the `topic` header or query parameter)"
                    ))
                    .with_attribute("subject"));
                }
            },
        };
        match by_topic.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(event),
            None => by_topic.push((topic, vec![event])),
        }
    }
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    let session = ctx.publishers.get(peer, header(headers, "producergroup"))?;
    let mut ids = Vec::new();
    for (topic, events) in by_topic {
        let published = ctx.core.publish(&session, &topic, events).await?;
        ids.extend(published.into_iter().map(|id| id.to_string()));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_detected() {
        let mut h = HeaderMap::new();
        assert_eq!(mode(&h), Mode::Wrapped);
        h.insert(
            "content-type",
            "application/cloudevents+json; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert_eq!(mode(&h), Mode::Structured);
        h.insert(
            "content-type",
            "application/cloudevents-batch+json".parse().unwrap(),
        );
        assert_eq!(mode(&h), Mode::Batch);
        h.insert("ce-specversion", "1.0".parse().unwrap());
        assert_eq!(mode(&h), Mode::Binary);
    }

    #[test]
    fn binary_events_name_their_bad_attribute() {
        let mut h = HeaderMap::new();
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-id", "1".parse().unwrap());
        h.insert("ce-type", "t".parse().unwrap());
        let f = binary_event(&h, b"x").unwrap_err();
        assert_eq!(f.attribute.as_deref(), Some("source"), "{}", f.message);
        h.insert("ce-source", "/s%20x".parse().unwrap());
        h.insert("ce-myext", "caf%C3%A9".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        let e = binary_event(&h, b"hello").unwrap();
        assert_eq!(e.source, "/s x");
        assert_eq!(e.extension_str("myext"), Some("café"));
        assert_eq!(e.data.as_deref(), Some(&b"hello"[..]));
        h.insert("ce-time", "yesterday".parse().unwrap());
        let f = binary_event(&h, b"").unwrap_err();
        assert_eq!(f.attribute.as_deref(), Some("time"), "{}", f.message);
        h.remove("ce-time");
        h.insert("ce-specversion", "9.9".parse().unwrap());
        let f = binary_event(&h, b"").unwrap_err();
        assert_eq!(f.attribute.as_deref(), Some("specversion"));
    }
}
