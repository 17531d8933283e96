//! Redis Streams (`redis://host:port[/db]`, the `redis` crate): a fresh stream per run (the key
//! is deleted first); every publish is one `XADD` awaited (with `--batch N`, a pipeline of N
//! `XADD`s awaited together); each subscriber reads its group with
//! `XREADGROUP … COUNT 256 BLOCK 100` on its own connection and acks every message it read with
//! one `XACK` carrying their ids (one shared group for a CLUSTERING run, one per subscriber for
//! BROADCASTING). The stream, and its groups with it, is deleted afterwards. Durability is the
//! server's: the report says what `CONFIG GET appendonly appendfsync` answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Value};
use bytes::Bytes;
use eventmesh_core::redact::mask_url;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{OnEvent, sanitize};
use crate::BenchError;

/// Entries one `XREADGROUP` returns at most.
const READ_COUNT: usize = 256;
/// How long one `XREADGROUP` blocks, in milliseconds.
const BLOCK_MS: u64 = 100;

/// A Redis server.
pub(crate) struct Redis {
    client: Client,
    conn: MultiplexedConnection,
    url: String,
    settings: String,
}

/// Connections that answer slow requests on a loaded machine rather than time out at the
/// crate's default 500 ms.
fn conn_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

async fn connection(client: &Client, url: &str) -> Result<MultiplexedConnection, BenchError> {
    client
        .get_multiplexed_async_connection_with_config(&conn_config())
        .await
        .map_err(|e| BenchError::Direct(format!("cannot connect to {}: {e}", mask_url(url))))
}

impl Redis {
    /// Connects to `url` and reads the server's version and persistence settings.
    pub(crate) async fn connect(url: &str) -> Result<Redis, BenchError> {
        let client = Client::open(url)
            .map_err(|e| BenchError::Config(format!("--direct {}: {e}", mask_url(url))))?;
        let mut conn = connection(&client, url).await?;
        let info: String = ::redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(|e| BenchError::Direct(format!("INFO server: {e}")))?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("(unknown version)")
            .trim()
            .to_owned();
        // CONFIG may be disabled (managed Redis): then the report says so.
        let config: Result<Vec<String>, _> = ::redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .arg("appendfsync")
            .query_async(&mut conn)
            .await;
        let persistence = match config {
            Ok(kv) => {
                let get = |k: &str| {
                    kv.chunks(2)
                        .find(|c| c.first().is_some_and(|x| x == k))
                        .and_then(|c| c.get(1).cloned())
                        .unwrap_or_else(|| "?".to_owned())
                };
                format!(
                    "appendonly {}, appendfsync {} (CONFIG GET)",
                    get("appendonly"),
                    get("appendfsync")
                )
            }
            Err(e) => format!("persistence unknown (CONFIG GET failed: {e})"),
        };
        let settings = format!(
            "Redis {version} streams via the redis crate: {persistence}; every XADD awaited \
             (--batch N: a pipeline of N); XREADGROUP COUNT {READ_COUNT} BLOCK {BLOCK_MS} per \
             subscriber connection, every message XACKed (one XACK per read)"
        );
        Ok(Redis {
            client,
            conn,
            url: url.to_owned(),
            settings,
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// What the direct side does, for the report.
    pub(crate) fn settings(&self) -> String {
        self.settings.clone()
    }

    /// Starts the run's stream for `topic` afresh (deleting any left over).
    pub(crate) async fn prepare(&self, topic: &str) -> Result<RedisTopic, BenchError> {
        let key = format!("eventmesh-bench:{}", sanitize(topic));
        let mut conn = self.conn.clone();
        let _: i64 = ::redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| BenchError::Direct(format!("cannot delete {key}: {e}")))?;
        Ok(RedisTopic {
            inner: Arc::new(Inner {
                client: self.client.clone(),
                conn: self.conn.clone(),
                url: self.url.clone(),
                key,
                consumers: AtomicUsize::new(0),
            }),
        })
    }
}

struct Inner {
    client: Client,
    /// Shared by every publisher (no blocking command runs on it).
    conn: MultiplexedConnection,
    url: String,
    key: String,
    /// Subscribers started, for unique consumer names.
    consumers: AtomicUsize,
}

/// The run's stream.
#[derive(Clone)]
pub(crate) struct RedisTopic {
    inner: Arc<Inner>,
}

impl RedisTopic {
    /// `XADD`s `data` `count` times (a pipeline when more than one) and awaits the replies.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        let mut conn = self.inner.conn.clone();
        if count == 1 {
            let _: Value = xadd(&self.inner.key, &data)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for _ in 0..count {
            pipe.add_command(xadd(&self.inner.key, &data));
        }
        let _: Value = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Creates the consumer group `group` (if the run has none of that name yet) and starts a
    /// consumer in it on its own connection, calling `on_event` with each entry's data and
    /// acking what it read, until `stop` is cancelled.
    pub(crate) async fn subscribe(
        &self,
        group: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        let inner = &self.inner;
        let mut conn = connection(&inner.client, &inner.url).await?;
        let created: Result<Value, _> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&inner.key)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(BenchError::Direct(format!(
                "cannot create group {group} on {}: {e}",
                inner.key
            )));
        }
        let consumer = format!("c{}", inner.consumers.fetch_add(1, Ordering::Relaxed));
        let (key, group) = (inner.key.clone(), group.to_owned());
        Ok(tokio::spawn(async move {
            let mut read = ::redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(&group)
                .arg(&consumer)
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&key)
                .arg(">");
            loop {
                let reply: Result<Value, _> = tokio::select! {
                    () = stop.cancelled() => return,
                    reply = read.query_async(&mut conn) => reply,
                };
                let entries = match reply {
                    Ok(v) => entries(v),
                    Err(error) => {
                        warn!(message = "Direct XREADGROUP failed.", %error);
                        // Not a busy loop when the server is gone.
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(BLOCK_MS)) => continue,
                        }
                    }
                };
                if entries.is_empty() {
                    continue;
                }
                let mut ack = ::redis::cmd("XACK");
                ack.arg(&key).arg(&group);
                for (id, data) in &entries {
                    on_event(data);
                    ack.arg(id);
                }
                if let Err(error) = ack.query_async::<Value>(&mut conn).await {
                    warn!(message = "Direct XACK failed.", %error);
                }
            }
        }))
    }

    /// Deletes the run's stream and its groups.
    pub(crate) async fn remove(&self) {
        let mut conn = self.inner.conn.clone();
        let deleted: Result<Value, _> = ::redis::cmd("DEL")
            .arg(&self.inner.key)
            .query_async(&mut conn)
            .await;
        if let Err(error) = deleted {
            warn!(message = "Could not delete the benchmark stream.", key = %self.inner.key, %error);
        }
    }
}

/// `XADD key * d data`.
fn xadd(key: &str, data: &[u8]) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("XADD");
    cmd.arg(key).arg("*").arg("d").arg(data);
    cmd
}

/// The `(id, data)` entries of an `XREADGROUP` reply (RESP2 arrays or RESP3 maps; nil when the
/// read timed out).
fn entries(reply: Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    // One stream: [[key, [entry…]]] or {key: [entry…]}.
    let per_stream: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    for stream in per_stream {
        let Value::Array(list) = stream else { continue };
        for entry in list {
            let Value::Array(mut parts) = entry else {
                continue;
            };
            if parts.len() != 2 {
                continue;
            }
            let fields = parts.pop();
            let id = bytes_of(parts.pop());
            let data = match fields {
                Some(Value::Array(fields)) => {
                    fields.into_iter().nth(1).and_then(|v| bytes_of(Some(v)))
                }
                Some(Value::Map(fields)) => fields
                    .into_iter()
                    .next()
                    .and_then(|(_, v)| bytes_of(Some(v))),
                _ => None,
            };
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, data));
            }
        }
    }
    out
}

fn bytes_of(v: Option<Value>) -> Option<Vec<u8>> {
    match v? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use ::redis::Value;

    use super::entries;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xreadgroup_replies_yield_ids_and_data() {
        let entry = |id: &str, data: &str| {
            Value::Array(vec![bulk(id), Value::Array(vec![bulk("d"), bulk(data)])])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("k"),
            Value::Array(vec![entry("1-0", "a"), entry("1-1", "b")]),
        ])]);
        assert_eq!(
            entries(reply),
            vec![
                (b"1-0".to_vec(), b"a".to_vec()),
                (b"1-1".to_vec(), b"b".to_vec())
            ]
        );
        assert!(entries(Value::Nil).is_empty());
    }
}
