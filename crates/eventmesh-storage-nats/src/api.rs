//! The few JetStream API calls the store makes, as plain JSON requests on `$JS.API.>`.
//!
//! The store speaks the API directly (rather than through the client library's typed config
//! structs, whose fields follow the newest server) so that what it sends is exactly what
//! nats-server 2.9 and later understand, and every error keeps JetStream's own error code.

use std::time::Duration;

use async_nats::{Client, RequestErrorKind};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::NatsError;

/// A stream as the API describes it (only what the store reads).
#[derive(Debug, Deserialize)]
pub(crate) struct StreamInfo {
    pub(crate) config: StreamConfig,
    pub(crate) state: StreamState,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamConfig {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamState {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

#[derive(Debug, Deserialize)]
struct StreamList {
    total: usize,
    #[serde(default)]
    streams: Option<Vec<StreamInfo>>,
}

/// A consumer's state as the API describes it (only what the store reads).
#[derive(Debug, Deserialize)]
pub(crate) struct ConsumerInfo {
    pub(crate) ack_floor: SequenceInfo,
    pub(crate) num_ack_pending: u64,
    pub(crate) num_pending: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SequenceInfo {
    pub(crate) stream_seq: u64,
}

#[derive(Debug, Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

/// Where a new consumer starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    All,
    New,
    Sequence(u64),
    /// Unix milliseconds.
    Time(i64),
}

/// What a new consumer looks like.
pub(crate) struct ConsumerSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: String,
    pub(crate) start: Start,
    pub(crate) ack_wait: Duration,
    pub(crate) max_ack_pending: i64,
    /// `Some` for BROADCASTING members: removed by the server after this long unused.
    pub(crate) inactive_threshold: Option<Duration>,
}

/// What a new stream looks like.
pub(crate) struct StreamSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) description: String,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
}

/// The JetStream API over one client connection.
#[derive(Clone)]
pub(crate) struct Api {
    client: Client,
    timeout: Duration,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Api {
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Api { client, timeout }
    }

    /// One API request; `op` names it in errors.
    async fn call<T: DeserializeOwned>(
        &self,
        op: &str,
        subject: String,
        body: Value,
    ) -> Result<T, NatsError> {
        let payload = Bytes::from(body.to_string());
        let reply = tokio::time::timeout(self.timeout, self.client.request(subject, payload))
            .await
            .map_err(|_| {
                NatsError::Unavailable(format!(
                    "JetStream did not answer {op} within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|e| match e.kind() {
                RequestErrorKind::TimedOut => NatsError::Unavailable(format!(
                    "JetStream did not answer {op} within {} ms",
                    self.timeout.as_millis()
                )),
                RequestErrorKind::NoResponders => NatsError::Unavailable(format!(
                    "JetStream is not available for {op} (no responders: not enabled, or not ready)"
                )),
                _ => NatsError::Unavailable(format!("{op} failed: {e}")),
            })?;
        let value: Value =
            serde_json::from_slice(&reply.payload).map_err(|e| NatsError::Protocol {
                op: op.to_owned(),
                reason: e.to_string(),
            })?;
        if let Some(err) = value.get("error") {
            let num = |k: &str| err.get(k).and_then(Value::as_u64).unwrap_or(0);
            return Err(NatsError::Api {
                op: op.to_owned(),
                code: u16::try_from(num("code")).unwrap_or(0),
                err_code: u32::try_from(num("err_code")).unwrap_or(0),
                description: err
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        serde_json::from_value(value).map_err(|e| NatsError::Protocol {
            op: op.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Account info: answers only when JetStream is enabled and ready.
    pub(crate) async fn account_info(&self) -> Result<(), NatsError> {
        self.call::<Value>("account info", "$JS.API.INFO".to_owned(), json!({}))
            .await
            .map(drop)
    }

    pub(crate) async fn stream_info(&self, name: &str) -> Result<StreamInfo, NatsError> {
        self.call(
            &format!("stream info {name}"),
            format!("$JS.API.STREAM.INFO.{name}"),
            json!({}),
        )
        .await
    }

    pub(crate) async fn create_stream(&self, s: &StreamSpec<'_>) -> Result<StreamInfo, NatsError> {
        let body = json!({
            "name": s.name,
            "description": s.description,
            "subjects": [s.subject],
            "retention": "limits",
            "max_consumers": -1,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msgs_per_subject": -1,
            "max_msg_size": -1,
            "discard": "old",
            "storage": "file",
            "num_replicas": s.replicas,
            "duplicate_window": nanos(s.duplicate_window),
        });
        self.call(
            &format!("create stream {}", s.name),
            format!("$JS.API.STREAM.CREATE.{}", s.name),
            body,
        )
        .await
    }

    pub(crate) async fn delete_stream(&self, name: &str) -> Result<bool, NatsError> {
        let r: Success = self
            .call(
                &format!("delete stream {name}"),
                format!("$JS.API.STREAM.DELETE.{name}"),
                json!({}),
            )
            .await?;
        Ok(r.success)
    }

    /// Every stream, page by page.
    pub(crate) async fn list_streams(&self) -> Result<Vec<StreamInfo>, NatsError> {
        let mut out = Vec::new();
        loop {
            let page: StreamList = self
                .call(
                    "list streams",
                    "$JS.API.STREAM.LIST".to_owned(),
                    json!({ "offset": out.len() }),
                )
                .await?;
            let got = page.streams.unwrap_or_default();
            let empty = got.is_empty();
            out.extend(got);
            if empty || out.len() >= page.total {
                return Ok(out);
            }
        }
    }

    pub(crate) async fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<ConsumerInfo, NatsError> {
        self.call(
            &format!("consumer info {stream}/{name}"),
            format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
            json!({}),
        )
        .await
    }

    pub(crate) async fn create_consumer(
        &self,
        stream: &str,
        c: &ConsumerSpec<'_>,
    ) -> Result<ConsumerInfo, NatsError> {
        let mut config = json!({
            "durable_name": c.name,
            "description": c.description,
            "ack_policy": "explicit",
            "ack_wait": nanos(c.ack_wait),
            "max_deliver": -1,
            "max_ack_pending": c.max_ack_pending,
            "replay_policy": "instant",
        });
        let (policy, extra) = match c.start {
            Start::All => ("all", None),
            Start::New => ("new", None),
            Start::Sequence(seq) => ("by_start_sequence", Some(("opt_start_seq", json!(seq)))),
            Start::Time(ms) => (
                "by_start_time",
                Some(("opt_start_time", json!(rfc3339_from_unix_ms(ms)))),
            ),
        };
        config["deliver_policy"] = json!(policy);
        if let Some((k, v)) = extra {
            config[k] = v;
        }
        if let Some(t) = c.inactive_threshold {
            config["inactive_threshold"] = json!(nanos(t));
        }
        self.call(
            &format!("create consumer {stream}/{}", c.name),
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{}", c.name),
            json!({ "stream_name": stream, "config": config }),
        )
        .await
    }

    pub(crate) async fn delete_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<bool, NatsError> {
        let r: Success = self
            .call(
                &format!("delete consumer {stream}/{name}"),
                format!("$JS.API.CONSUMER.DELETE.{stream}.{name}"),
                json!({}),
            )
            .await?;
        Ok(r.success)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix-millisecond time (times before 1970 become 1970).
pub(crate) fn rfc3339_from_unix_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::rfc3339_from_unix_ms;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_from_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_from_unix_ms(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_from_unix_ms(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339_from_unix_ms(1_767_225_599_999),
            "2025-12-31T23:59:59.999Z"
        );
    }
}
