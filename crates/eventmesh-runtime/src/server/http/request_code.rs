//! The request-code protocol (section 3.1): `POST /` (or any path not claimed by a REST handler;
//! GET with the fields in the query string works too) with a `code` header and a form body.
//!
//! | code | what |
//! |---|---|
//! | 101 | sync send: request-reply, waits for the reply up to the `ttl` field (ms, required) |
//! | 102 | batch send: `contents` = JSON array of `{bizSeqNo, topic, msg, tag, ttl}` |
//! | 104 | async send |
//! | 107 | batch send v2: one message (`bizseqno`, `topic`, `msg`, `tag`, `ttl`) |
//! | 203 | heartbeat: `clientType`, `consumerGroup`, `heartbeatEntities` = `[{topic, url, …}]` |
//! | 206 | subscribe: `url`, `consumerGroup`, `topic` = `[{topic, mode, type}]` |
//! | 207 | unsubscribe: `url`, `consumerGroup`, `topic` = `["T1", …]` |
//! | 301 | reply to a request: `origtopic`, `bizseqno`, `uniqueid`, `content`, `extFields` |
//!
//! Answers: success is 200 with retCode 0; a malformed request (missing or unknown code, bad
//! header, missing or malformed field, body or event too large, multipart) is a 4xx with the
//! retCode; any other failure is 200 with its retCode, as the Java runtime answers (the Java SDK
//! turns non-2xx answers into a bare status error and reads the retCode of 2xx ones only).
//!
//! Form keys are matched case-insensitively. Events follow the Java `eventmeshmessage` adaptor:
//! `id` = `bizseqno`, `subject` = `topic`, `type` = `eventmeshmessage`, `source` = `/`, `data` =
//! `content`, the client headers, `bizseqno`, `uniqueid`, `ttl`, `tag` and every `extFields`
//! entry as extensions; with `protocoltype: cloudevents`, `content` is the whole structured
//! CloudEvent.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eventmesh_core::{CloudEvent, ExtensionValue, GroupName, Topic};
use eventmesh_protocol::cloudevents as ce_json;
use eventmesh_protocol::convert::normalize_key;
use serde_json::{Map, Value, json};

use super::HttpContext;
use super::cloudevents_binding::format_failure;
use super::form::{FieldError, Fields, ext_fields};
use super::listener::Peer;
use super::routes::{Failure, RET_REQUESTCODE_INVALID, legacy, legacy_failure, read_body};
use super::webhook::{self, PushFormat, SubscribeRequest};
use eventmesh_protocol::multipart::{form_data_boundary, parse_form_data};

/// Client headers copied onto events as extensions (never the credentials).
const EXTENSION_HEADERS: [&str; 10] = [
    "env",
    "idc",
    "sys",
    "pid",
    "ip",
    "producergroup",
    "language",
    "protocoltype",
    "protocolversion",
    "protocoldesc",
];

/// The request codes served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    SendSync = 101,
    BatchSend = 102,
    SendAsync = 104,
    BatchSendV2 = 107,
    Heartbeat = 203,
    Subscribe = 206,
    Unsubscribe = 207,
    Reply = 301,
}

impl Code {
    fn parse(s: &str) -> Option<Code> {
        Some(match s.trim().parse::<u32>().ok()? {
            101 => Code::SendSync,
            102 => Code::BatchSend,
            104 => Code::SendAsync,
            107 => Code::BatchSendV2,
            203 => Code::Heartbeat,
            206 => Code::Subscribe,
            207 => Code::Unsubscribe,
            301 => Code::Reply,
            _ => return None,
        })
    }
}

/// A header's value, when present, UTF-8 and not blank.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks the client headers the Java runtime checks: `version` is 1.0 or 2.0, `pid` numeric.
fn check_headers(headers: &HeaderMap) -> Result<(), Failure> {
    if let Some(v) = headers.get("version") {
        let v = v.to_str().unwrap_or("").trim();
        if v != "1.0" && v != "2.0" {
            return Err(Failure::bad_header(format!(
                "header `version` is `{v}`; use 1.0 or 2.0"
            )));
        }
    }
    if let Some(v) = headers.get("pid") {
        let v = v.to_str().unwrap_or("").trim();
        if !v.is_empty() && !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::bad_header(format!(
                "header `pid` is `{v}`; it must be numeric"
            )));
        }
    }
    for (name, value) in headers {
        if EXTENSION_HEADERS.contains(&name.as_str()) && value.to_str().is_err() {
            return Err(Failure::bad_header(format!(
                "header `{name}` is not visible ASCII"
            )));
        }
    }
    Ok(())
}

/// The request's form: its body (URL-encoded, as every Apache EventMesh SDK sends it, or
/// `multipart/form-data`, which the Java runtime's decoder reads too; other multipart types are
/// refused) merged with the query string.
pub(crate) async fn read_form(
    ctx: &HttpContext,
    parts: &Parts,
    query: Option<Fields>,
    body: Body,
) -> Result<Fields, Failure> {
    let boundary = match header(&parts.headers, "content-type") {
        Some(ct)
            if ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/") =>
        {
            Some(form_data_boundary(ct).map_err(|e| {
                Failure::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    super::routes::RET_BODY_ERR,
                    format!("{e}; send application/x-www-form-urlencoded or multipart/form-data"),
                )
            })?)
        }
        _ => None,
    };
    let body = read_body(body, ctx.options.max_body_bytes).await?;
    let mut fields = match boundary {
        None => Fields::from_urlencoded(&body),
        Some(b) => Fields::from_pairs(
            parse_form_data(&body, &b)
                .map_err(|e| Failure::bad_body(e.to_string()))?
                .into_iter()
                .map(|f| (f.name, f.value)),
        ),
    };
    if let Some(q) = query {
        fields.merge(q);
    }
    Ok(fields)
}

/// Publishes the event of a form push (section 3.2: `topic`, `content`, `bizseqno`,
/// `uniqueId`, `extFields`; `content` a structured CloudEvent when the `protocoltype` header is
/// `cloudevents`), as a 104 publish would: what `/eventmesh/bridge/publish` receives from a
/// remote mesh.
pub(crate) async fn publish_pushed_form(
    ctx: &HttpContext,
    parts: &Parts,
    body: Body,
) -> Result<String, Failure> {
    let query = parts
        .uri
        .query()
        .map(|q| Fields::from_urlencoded(q.as_bytes()));
    let fields = read_form(ctx, parts, query, body).await?;
    let req = Legacy {
        ctx,
        headers: &parts.headers,
        fields,
        peer: parts.extensions.get::<Peer>().map(|p| p.0),
    };
    if !req.protocol().eq_ignore_ascii_case("cloudevents") {
        return req.send_async().await;
    }
    // The whole event is in `content`: published as it is, without the push's own fields
    // (`bizseqno`, `uniqueId`, headers) as extensions.
    let topic = parse_topic(req.fields.required("topic")?, "topic")?;
    let event = ce_json::decode_event(req.fields.required("content")?.as_bytes())
        .map_err(|e| format_failure(&e).prefixed("field `content`: "))?;
    let session = ctx.publishers.get(req.peer, req.producer_group())?;
    ctx.core.publish(&session, &topic, vec![event]).await?;
    Ok("success".to_owned())
}

pub(super) async fn handle(ctx: &HttpContext, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    let query = parts
        .uri
        .query()
        .map(|q| Fields::from_urlencoded(q.as_bytes()));
    let code_text = header(&parts.headers, "code")
        .map(str::to_owned)
        .or_else(|| {
            query
                .as_ref()
                .and_then(|q| q.get("code").map(str::to_owned))
        });
    let Some(code_text) = code_text else {
        return legacy(
            ctx,
            StatusCode::BAD_REQUEST,
            "",
            RET_REQUESTCODE_INVALID,
            "the `code` header (the request code) is missing",
        );
    };
    let Some(code) = Code::parse(&code_text) else {
        return legacy(
            ctx,
            StatusCode::BAD_REQUEST,
            &code_text,
            RET_REQUESTCODE_INVALID,
            format!(
                "request code `{code_text}` is unknown; use 101, 102, 104, 107, 203, 206, 207 or 301"
            ),
        );
    };
    let result = async {
        check_headers(&parts.headers)?;
        // The query string was parsed once already, for the code.
        let fields = read_form(ctx, &parts, query, body).await?;
        let req = Legacy {
            ctx,
            headers: &parts.headers,
            fields,
            peer,
        };
        match code {
            Code::SendAsync => req.send_async().await,
            Code::SendSync => req.send_sync().await,
            Code::BatchSend => req.batch().await,
            Code::BatchSendV2 => req.batch_v2().await,
            Code::Heartbeat => req.heartbeat(),
            Code::Subscribe => req.subscribe().await,
            Code::Unsubscribe => req.unsubscribe().await,
            Code::Reply => req.reply().await,
        }
    }
    .await;
    match result {
        Ok(msg) => legacy(ctx, StatusCode::OK, &code_text, 0, msg),
        Err(mut f) => {
            // Malformed requests get a 4xx; a request the mesh understood but could not carry
            // out (overload, storage, timeout, conflicts, ACL) gets 200 with its retCode, as
            // Java answers: the Java SDK reads the retCode of 2xx answers only.
            if !matches!(f.status.as_u16(), 400 | 401 | 413 | 415) {
                f.status = StatusCode::OK;
            }
            tracing::debug!(message = "HTTP request failed.", code = %code_text, status = f.status.as_u16(), ret_code = f.ret_code, error = %f.message, transport = "http");
            legacy_failure(ctx, &code_text, f)
        }
    }
}

struct Legacy<'a> {
    ctx: &'a HttpContext,
    headers: &'a HeaderMap,
    fields: Fields,
    peer: Option<SocketAddr>,
}

/// The fields of one message.
struct MessageFields<'a> {
    topic: &'a str,
    content: &'a str,
    bizseqno: Option<&'a str>,
    uniqueid: Option<&'a str>,
    ttl: Option<&'a str>,
    tag: Option<&'a str>,
}

pub(crate) fn parse_topic(name: &str, field: &'static str) -> Result<Topic, Failure> {
    Topic::new(name.trim()).map_err(|e| Failure::from(FieldError::invalid(field, e.to_string())))
}

pub(crate) fn parse_group(name: &str, field: &'static str) -> Result<GroupName, Failure> {
    GroupName::new(name.trim())
        .map_err(|e| Failure::from(FieldError::invalid(field, e.to_string())))
}

fn put_ext(event: &mut CloudEvent, key: &str, value: &str) {
    let key = key.to_ascii_lowercase();
    let name = if eventmesh_core::event::is_valid_extension_name(&key) {
        Some(key)
    } else {
        normalize_key(&key)
    };
    if let Some(name) = name
        && !matches!(
            name.as_str(),
            "id" | "source"
                | "specversion"
                | "type"
                | "subject"
                | "time"
                | "datacontenttype"
                | "dataschema"
                | "data"
        )
    {
        event
            .extensions
            .insert(name, ExtensionValue::String(value.to_owned()));
    }
}

/// A random 20-digit business sequence number (as the Java SDK makes them).
pub(crate) fn random_seq() -> String {
    (0..20)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect()
}

impl Legacy<'_> {
    fn protocol(&self) -> &str {
        header(self.headers, "protocoltype").unwrap_or("eventmeshmessage")
    }

    fn producer_group(&self) -> Option<&str> {
        self.fields
            .get("producergroup")
            .or_else(|| header(self.headers, "producergroup"))
    }

    /// Builds the event of one message per the request's `protocoltype`.
    fn event(
        &self,
        m: &MessageFields<'_>,
        ext: &[(String, String)],
    ) -> Result<CloudEvent, Failure> {
        let mut event = if self.protocol().eq_ignore_ascii_case("cloudevents") {
            ce_json::decode_event(m.content.as_bytes())
                .map_err(|e| format_failure(&e).prefixed("field `content`: "))?
        } else {
            let id = m.bizseqno.map_or_else(random_seq, str::to_owned);
            let mut e = CloudEvent::new(id, "/", "eventmeshmessage")
                .with_data("text/plain", m.content.to_owned());
            e.subject = Some(m.topic.to_owned());
            if let Some(pv) = header(self.headers, "protocolversion")
                && let Some(v) = eventmesh_core::SpecVersion::parse(pv)
            {
                e.spec_version = v;
            }
            e
        };
        for name in EXTENSION_HEADERS {
            if name == "ip" {
                continue;
            }
            if let Some(v) = header(self.headers, name) {
                put_ext(&mut event, name, v);
            }
        }
        if let Some(peer) = self.peer {
            put_ext(&mut event, "ip", &peer.ip().to_string());
        }
        if !event.extensions.contains_key("protocoltype") {
            put_ext(&mut event, "protocoltype", self.protocol());
        }
        for (k, v) in [
            ("bizseqno", m.bizseqno),
            ("uniqueid", m.uniqueid),
            ("ttl", m.ttl),
            ("tag", m.tag),
        ] {
            if let Some(v) = v {
                put_ext(&mut event, k, v);
            }
        }
        for (k, v) in ext {
            put_ext(&mut event, k, v);
        }
        event
            .validate()
            .map_err(|e| super::cloudevents_binding::validation_failure(&e))?;
        Ok(event)
    }

    fn message(&self) -> Result<(Topic, CloudEvent), Failure> {
        let f = &self.fields;
        let topic_name = f.required("topic")?;
        let topic = parse_topic(topic_name, "topic")?;
        let m = MessageFields {
            topic: topic_name,
            content: f.required("content")?,
            bizseqno: f.get("bizseqno"),
            uniqueid: f.get("uniqueid"),
            ttl: f.get("ttl"),
            tag: f.get("tag"),
        };
        let ext = ext_fields(f)?;
        Ok((topic, self.event(&m, &ext)?))
    }

    async fn send_async(&self) -> Result<String, Failure> {
        let (topic, event) = self.message()?;
        let session = self.ctx.publishers.get(self.peer, self.producer_group())?;
        self.ctx.core.publish(&session, &topic, vec![event]).await?;
        Ok("success".to_owned())
    }

    async fn send_sync(&self) -> Result<String, Failure> {
        let ttl_text = self.fields.required("ttl")?;
        let ttl_ms: u64 = ttl_text.trim().parse().map_err(|_| {
            FieldError::invalid(
                "ttl",
                format!("`{ttl_text}` is not a number of milliseconds"),
            )
        })?;
        if ttl_ms == 0 {
            return Err(FieldError::invalid("ttl", "must be above 0").into());
        }
        let (topic, event) = self.message()?;
        let session = self.ctx.publishers.get(self.peer, self.producer_group())?;
        let reply = self
            .ctx
            .core
            .request(&session, &topic, event, Some(Duration::from_millis(ttl_ms)))
            .await?;
        Ok(reply_message(&topic, &reply))
    }

    async fn batch(&self) -> Result<String, Failure> {
        let f = &self.fields;
        let contents = match f.json("contents")? {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(FieldError::invalid("contents", "must be a JSON array").into()),
            None => return Err(FieldError::Missing("contents").into()),
        };
        if contents.len() > self.ctx.options.max_batch_events {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                super::routes::RET_BODY_SIZE_ERR,
                format!(
                    "the batch has {} events; the limit is {}",
                    contents.len(),
                    self.ctx.options.max_batch_events
                ),
            ));
        }
        if let Some(size) = f.u64("size")?
            && size != contents.len() as u64
        {
            return Err(FieldError::invalid(
                "size",
                format!("is {size} but `contents` holds {} events", contents.len()),
            )
            .into());
        }
        let ext = ext_fields(f)?;
        // Every event is built and checked before anything is published.
        let mut by_topic: Vec<(Topic, Vec<CloudEvent>)> = Vec::new();
        for (i, item) in contents.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(FieldError::invalid(
                    "contents",
                    format!("item {i} is not a JSON object"),
                )
                .into());
            };
            let item = Fields::from_json_object(obj);
            let at = |e: FieldError| Failure::bad_body(format!("contents[{i}]: {e}"));
            let topic_name = item.required("topic").map_err(at)?;
            let topic = parse_topic(topic_name, "topic")
                .map_err(|e| Failure::bad_body(format!("contents[{i}]: {}", e.message)))?;
            let m = MessageFields {
                topic: topic_name,
                content: item.required("msg").map_err(at)?,
                bizseqno: item.get("bizseqno"),
                uniqueid: item.get("uniqueid"),
                ttl: item.get("ttl"),
                tag: item.get("tag"),
            };
            let event = self.event(&m, &ext).map_err(|mut e| {
                e.message = format!("contents[{i}]: {}", e.message);
                e
            })?;
            match by_topic.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, events)) => events.push(event),
                None => by_topic.push((topic, vec![event])),
            }
        }
        let session = self.ctx.publishers.get(self.peer, self.producer_group())?;
        let mut done = 0usize;
        for (topic, events) in by_topic {
            let n = events.len();
            if let Err(e) = self.ctx.core.publish(&session, &topic, events).await {
                let mut f = Failure::from(e);
                if done > 0 {
                    f.message = format!(
                        "{} ({done} events of earlier topics were published)",
                        f.message
                    );
                }
                return Err(f);
            }
            done += n;
        }
        Ok("success".to_owned())
    }

    async fn batch_v2(&self) -> Result<String, Failure> {
        let f = &self.fields;
        let topic_name = f.required("topic")?;
        let topic = parse_topic(topic_name, "topic")?;
        let m = MessageFields {
            topic: topic_name,
            content: f.required("msg")?,
            bizseqno: f.get("bizseqno"),
            uniqueid: f.get("uniqueid"),
            ttl: f.get("ttl"),
            tag: f.get("tag"),
        };
        let event = self.event(&m, &ext_fields(f)?)?;
        let session = self.ctx.publishers.get(self.peer, self.producer_group())?;
        self.ctx.core.publish(&session, &topic, vec![event]).await?;
        Ok("success".to_owned())
    }

    fn heartbeat(&self) -> Result<String, Failure> {
        let f = &self.fields;
        let client_type = f.required("clientType")?;
        let is_sub = match client_type.trim().to_ascii_uppercase().as_str() {
            "SUB" | "2" => true,
            "PUB" | "1" => false,
            other => {
                return Err(FieldError::invalid(
                    "clientType",
                    format!("`{other}` is not SUB or PUB"),
                )
                .into());
            }
        };
        let entities = match f.json("heartbeatEntities")? {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(
                    FieldError::invalid("heartbeatEntities", "must be a JSON array").into(),
                );
            }
            None => Vec::new(),
        };
        if !is_sub {
            return Ok("success".to_owned());
        }
        let group = parse_group(f.required("consumerGroup")?, "consumerGroup")?;
        let mut entries = Vec::with_capacity(entities.len());
        for (i, e) in entities.iter().enumerate() {
            let Value::Object(obj) = e else {
                return Err(FieldError::invalid(
                    "heartbeatEntities",
                    format!("item {i} is not a JSON object"),
                )
                .into());
            };
            let item = Fields::from_json_object(obj);
            let at = |e: FieldError| Failure::bad_body(format!("heartbeatEntities[{i}]: {e}"));
            let topic = parse_topic(item.required("topic").map_err(at)?, "topic")?;
            let url = item.required("url").map_err(at)?.trim().to_owned();
            entries.push((topic, url));
        }
        let refreshed = self.ctx.webhooks.heartbeat(&group, &entries);
        Ok(if refreshed == entries.len() {
            "success".to_owned()
        } else {
            format!(
                "success ({} of {} entries are not subscribed here; subscribe them first)",
                entries.len() - refreshed,
                entries.len()
            )
        })
    }

    async fn subscribe(&self) -> Result<String, Failure> {
        let f = &self.fields;
        for (req, filter) in subscribe_request(f, self.headers)? {
            self.ctx.webhooks.subscribe_filtered(req, filter).await?;
        }
        Ok("success".to_owned())
    }

    async fn unsubscribe(&self) -> Result<String, Failure> {
        let f = &self.fields;
        let url = f.required("url")?.trim().to_owned();
        let group = parse_group(f.required("consumerGroup")?, "consumerGroup")?;
        let topics = topic_names(f.json("topic")?)?;
        self.ctx.webhooks.unsubscribe(&group, &url, &topics).await?;
        Ok("success".to_owned())
    }

    async fn reply(&self) -> Result<String, Failure> {
        let f = &self.fields;
        let topic_name = f.required("origtopic")?;
        let m = MessageFields {
            topic: topic_name,
            content: f.required("content")?,
            bizseqno: f.get("bizseqno"),
            uniqueid: f.get("uniqueid"),
            ttl: None,
            tag: None,
        };
        let event = self.event(&m, &ext_fields(f)?)?;
        let session = self.ctx.publishers.get(self.peer, self.producer_group())?;
        self.ctx.core.reply(&session, event).await?;
        Ok("success".to_owned())
    }
}

/// The answer of a sync send: the JSON string of `{"topic","body","properties"}`.
fn reply_message(topic: &Topic, reply: &CloudEvent) -> String {
    let body = reply
        .data
        .as_ref()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let mut props = Map::new();
    for (k, v) in &reply.extensions {
        props.insert(k.clone(), json!(v.to_string()));
    }
    json!({
        "topic": reply.subject.clone().unwrap_or_else(|| topic.to_string()),
        "body": body,
        "properties": props,
    })
    .to_string()
}

/// A subscribe from its fields (form or JSON object): `url`, `consumerGroup`, `topic` (JSON array
/// of `{topic, mode, type}` or of names), and optionally `format`, `maxInFlight`, `pushRate`;
/// the push format may also come from the `protocoltype` header.
pub(crate) fn subscribe_request(
    f: &Fields,
    headers: &HeaderMap,
) -> Result<Vec<(SubscribeRequest, Option<String>)>, Failure> {
    let url = f.required("url")?.trim().to_owned();
    let group = parse_group(f.required("consumerGroup")?, "consumerGroup")?;
    let items = match f.json("topic")? {
        Some(v) => webhook::topic_items(&v, f.get("filter"))?,
        None => return Err(FieldError::Missing("topic").into()),
    };
    let format = match f.get("format") {
        Some(fmt) => PushFormat::parse(fmt).ok_or_else(|| {
            FieldError::invalid(
                "format",
                format!("`{fmt}` is unknown; use form, form-cloudevents or binary"),
            )
        })?,
        None => PushFormat::from_protocol_type(header(headers, "protocoltype")),
    };
    let max_in_flight = f
        .u64("maxInFlight")?
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let push_rate = f
        .u64("pushRate")?
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    // One subscribe per distinct filter (a filter belongs to the (group, topic)).
    let mut by_filter: Vec<(SubscribeRequest, Option<String>)> = Vec::new();
    for (item, filter) in items {
        match by_filter.iter_mut().find(|(_, f)| *f == filter) {
            Some((req, _)) => req.items.push(item),
            None => by_filter.push((
                SubscribeRequest {
                    url: url.clone(),
                    group: group.clone(),
                    items: vec![item],
                    format,
                    max_in_flight,
                    push_rate,
                },
                filter,
            )),
        }
    }
    Ok(by_filter)
}

/// Topic names of an unsubscribe: a JSON array of strings (or of `{topic}` objects).
pub(crate) fn topic_names(v: Option<Value>) -> Result<Vec<Topic>, Failure> {
    let Some(v) = v else {
        return Err(FieldError::Missing("topic").into());
    };
    let Value::Array(items) = v else {
        return Err(FieldError::invalid("topic", "must be a JSON array of topic names").into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => parse_topic(s, "topic"),
            Value::Object(o) => match o.get("topic") {
                Some(Value::String(s)) => parse_topic(s, "topic"),
                _ => Err(FieldError::invalid("topic", format!("item {i} has no `topic`")).into()),
            },
            _ => Err(FieldError::invalid("topic", format!("item {i} is not a topic name")).into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::http::routes::RET_HEADER_ERR;

    #[test]
    fn codes_parse() {
        assert_eq!(Code::parse("104"), Some(Code::SendAsync));
        assert_eq!(Code::parse(" 301 "), Some(Code::Reply));
        assert_eq!(Code::parse("105"), None);
        assert_eq!(Code::parse("x"), None);
    }

    #[test]
    fn headers_are_checked() {
        let mut h = HeaderMap::new();
        h.insert("version", "3.0".parse().unwrap());
        let f = check_headers(&h).unwrap_err();
        assert_eq!(f.ret_code, RET_HEADER_ERR);
        assert!(f.message.contains("version"), "{}", f.message);
        let mut h = HeaderMap::new();
        h.insert("pid", "12a".parse().unwrap());
        assert!(check_headers(&h).unwrap_err().message.contains("pid"));
        let mut h = HeaderMap::new();
        h.insert("pid", "123".parse().unwrap());
        h.insert("version", "1.0".parse().unwrap());
        assert!(check_headers(&h).is_ok());
    }

    #[test]
    fn random_seqs_are_twenty_digits() {
        let s = random_seq();
        assert_eq!(s.len(), 20);
        assert!(s.bytes().all(|b| b.is_ascii_digit()));
    }
}
