//! [`HttpPublisher`]: async send, batch, request-reply; and the transport the subscriber shares.

use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, ExtensionValue};
use eventmesh_protocol::cloudevents as ce_json;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use super::config::{HttpConfig, HttpMode};
use super::error::HttpError;

/// The largest answer body read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One HTTP connection pool to the mesh and the identity headers.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) config: HttpConfig,
}

/// A form, as ordered pairs.
pub(crate) type Form<'a> = Vec<(&'a str, String)>;

impl Transport {
    pub(crate) fn new(config: HttpConfig) -> Result<Self, HttpError> {
        let uri: hyper::Uri = config.base_url.parse().map_err(|_| {
            HttpError::InvalidArgument(format!("`{}` is not a URL", config.base_url))
        })?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(HttpError::InvalidArgument(format!(
                "`{}` is not an http://host:port URL",
                config.base_url
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        Ok(Transport {
            client: Client::builder(TokioExecutor::new()).build(connector),
            config,
        })
    }

    /// POSTs `body` to `path` and returns the answer's JSON object (retCode 0) or the refusal.
    pub(crate) async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Value, HttpError> {
        let mut b = Request::post(format!("{}{path}", self.config.base_url));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(auth) = &self.config.authorization {
            b = b.header("authorization", auth);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::InvalidArgument(e.to_string()))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpError::Connect(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::Protocol(format!("cannot read the answer: {e}")))?
                .to_bytes();
            Ok::<_, HttpError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| HttpError::Timeout(timeout))??;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            HttpError::Protocol(format!(
                "HTTP {status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        let ret_code = value
            .get("retCode")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(-1);
        if (200..300).contains(&status) && ret_code == 0 {
            Ok(value)
        } else {
            Err(HttpError::Refused {
                status,
                ret_code,
                message: value
                    .get("retMsg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
    }

    /// A request-code call with a form body.
    pub(crate) async fn code(
        &self,
        code: &str,
        form: Form<'_>,
        cloudevents: bool,
        timeout: Duration,
    ) -> Result<Value, HttpError> {
        let body = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &form {
                s.append_pair(k, v);
            }
            s.finish().into_bytes()
        };
        let pid = std::process::id().to_string();
        let c = &self.config;
        let protocol = if cloudevents {
            "cloudevents"
        } else {
            "eventmeshmessage"
        };
        let headers = [
            ("code", code),
            ("content-type", "application/x-www-form-urlencoded"),
            ("env", c.env.as_str()),
            ("idc", c.idc.as_str()),
            ("sys", c.sys.as_str()),
            ("pid", pid.as_str()),
            ("ip", "127.0.0.1"),
            ("language", "RUST"),
            ("version", "1.0"),
            ("producergroup", c.producer_group.as_str()),
            ("consumergroup", c.consumer_group.as_str()),
            ("protocoltype", protocol),
            ("protocolversion", "1.0"),
            ("protocoldesc", "http"),
        ];
        self.post("/", &headers, body, timeout).await
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The `content` of a legacy send: the data (eventmeshmessage) or the CloudEvent JSON.
pub(crate) fn content_of(event: &CloudEvent, cloudevents: bool) -> Result<String, HttpError> {
    if cloudevents {
        let bytes = ce_json::encode_event(event)
            .map_err(|e| HttpError::InvalidArgument(format!("the event: {e}")))?;
        String::from_utf8(bytes).map_err(|e| HttpError::InvalidArgument(e.to_string()))
    } else {
        match &event.data {
            None => Ok(String::new()),
            Some(d) => String::from_utf8(d.to_vec()).map_err(|_| {
                HttpError::InvalidArgument(
                    "eventmeshmessage content must be UTF-8; use HttpConfig::cloudevents() for binary data"
                        .to_owned(),
                )
            }),
        }
    }
}

/// The `extFields` of a legacy send: every extension as a string.
pub(crate) fn ext_fields(event: &CloudEvent) -> String {
    let m: Map<String, Value> = event
        .extensions
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
        .collect();
    Value::Object(m).to_string()
}

/// Publishes events over HTTP. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HttpPublisher {
    t: Transport,
}

impl HttpPublisher {
    /// A publisher for `config` (no connection is made until the first call).
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        Ok(HttpPublisher {
            t: Transport::new(config)?,
        })
    }

    fn legacy_form<'a>(&self, topic: &str, event: &CloudEvent) -> Result<Form<'a>, HttpError> {
        let cloudevents = self.t.config.cloudevents_content;
        let mut form: Form<'a> = vec![
            ("topic", topic.to_owned()),
            ("content", content_of(event, cloudevents)?),
            ("bizseqno", event.id.clone()),
            (
                "uniqueid",
                event
                    .extension_str("uniqueid")
                    .map_or_else(crate::random_id, str::to_owned),
            ),
            ("producergroup", self.t.config.producer_group.clone()),
        ];
        if !event.extensions.is_empty() {
            form.push(("extFields", ext_fields(event)));
        }
        if let Some(ExtensionValue::String(ttl)) = event.extension("ttl") {
            form.push(("ttl", ttl.clone()));
        }
        Ok(form)
    }

    /// Publishes one event to `topic`; returns once the mesh stored it.
    pub async fn publish(&self, topic: &str, event: CloudEvent) -> Result<(), HttpError> {
        let timeout = self.t.config.timeout;
        match self.t.config.mode {
            HttpMode::Legacy => {
                let form = self.legacy_form(topic, &event)?;
                self.t
                    .code("104", form, self.t.config.cloudevents_content, timeout)
                    .await?;
            }
            HttpMode::CloudEvents => {
                let body = ce_json::encode_event(&event)
                    .map_err(|e| HttpError::InvalidArgument(format!("the event: {e}")))?;
                self.t
                    .post(
                        &format!("/eventmesh/publish/{}", path_segment(topic)?),
                        &[("content-type", ce_json::CONTENT_TYPE)],
                        body,
                        timeout,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes events to `topic` as one batch (all or nothing): code 102 in legacy mode, a
    /// batched CloudEvents request otherwise.
    pub async fn publish_batch(
        &self,
        topic: &str,
        events: Vec<CloudEvent>,
    ) -> Result<(), HttpError> {
        let timeout = self.t.config.timeout;
        match self.t.config.mode {
            HttpMode::Legacy => {
                let cloudevents = self.t.config.cloudevents_content;
                let contents: Result<Vec<Value>, HttpError> = events
                    .iter()
                    .map(|e| {
                        Ok(json!({
                            "bizSeqNo": e.id,
                            "topic": topic,
                            "msg": content_of(e, cloudevents)?,
                            "ttl": e.extension_str("ttl").unwrap_or(""),
                        }))
                    })
                    .collect();
                let contents = contents?;
                let form = vec![
                    ("batchId", crate::random_id()),
                    ("size", contents.len().to_string()),
                    ("producerGroup", self.t.config.producer_group.clone()),
                    ("contents", Value::Array(contents).to_string()),
                ];
                self.t.code("102", form, cloudevents, timeout).await?;
            }
            HttpMode::CloudEvents => {
                let body = ce_json::encode_batch(&events)
                    .map_err(|e| HttpError::InvalidArgument(format!("the batch: {e}")))?;
                self.t
                    .post(
                        &format!("/eventmesh/publish/{}", path_segment(topic)?),
                        &[("content-type", ce_json::BATCH_CONTENT_TYPE)],
                        body,
                        timeout,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends a request to `topic` and waits up to `ttl` for the reply (code 101). The reply
    /// comes back as an event: `data` = the reply's body, `subject` = its topic, extensions =
    /// its properties.
    pub async fn request(
        &self,
        topic: &str,
        event: CloudEvent,
        ttl: Duration,
    ) -> Result<CloudEvent, HttpError> {
        let mut form = self.legacy_form(topic, &event)?;
        form.retain(|(k, _)| *k != "ttl");
        form.push(("ttl", ttl.as_millis().to_string()));
        let answer = self
            .t
            .code(
                "101",
                form,
                self.t.config.cloudevents_content,
                self.t.config.timeout + ttl,
            )
            .await?;
        let msg = answer
            .get("retMsg")
            .and_then(Value::as_str)
            .ok_or_else(|| HttpError::Protocol("the answer has no retMsg".to_owned()))?;
        let reply: Value = serde_json::from_str(msg)
            .map_err(|e| HttpError::Protocol(format!("the reply is not JSON: {e}")))?;
        let mut out = CloudEvent::new(crate::random_id(), "/", "eventmeshmessage").with_data(
            "text/plain",
            reply["body"].as_str().unwrap_or_default().to_owned(),
        );
        out.subject = reply["topic"].as_str().map(str::to_owned);
        if let Some(props) = reply["properties"].as_object() {
            for (k, v) in props {
                if let Some(s) = v.as_str() {
                    out.extensions
                        .insert(k.clone(), ExtensionValue::String(s.to_owned()));
                }
            }
        }
        Ok(out)
    }
}

/// A topic as one URL path segment.
fn path_segment(topic: &str) -> Result<String, HttpError> {
    if topic.is_empty() || topic.contains('/') || topic.contains('?') || topic.contains('#') {
        return Err(HttpError::InvalidArgument(format!(
            "topic `{topic}` cannot be a URL path segment"
        )));
    }
    Ok(topic
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect())
}
