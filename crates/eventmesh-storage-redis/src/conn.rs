//! The store's shared state: the connections, the bound on every request, and per-cursor
//! wake-up state of this node.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventmesh_core::Topic;
use eventmesh_storage::{ConsumerRef, StorageError, StorageResult};
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Error;
use crate::fetch::Local;
use crate::keys::{self, Keys};
use crate::options::RedisOptions;
use crate::reply::{self, Status};

/// The oldest Redis this store runs on (`XAUTOCLAIM` reporting deleted entries, group lag).
const MIN_REDIS_MAJOR: u32 = 7;

pub(crate) struct Inner {
    pub(crate) opts: RedisOptions,
    pub(crate) url: String,
    pub(crate) keys: Keys,
    pub(crate) client: Client,
    pub(crate) conn: ConnectionManager,
    /// Idle connections for blocking reads (one per parked fetch while it waits).
    pub(crate) blocking: Mutex<Vec<MultiplexedConnection>>,
    pub(crate) closed: CancellationToken,
    /// The lease horizon `H` in ms (agreed with the other stores on the prefix at open).
    pub(crate) horizon_ms: AtomicU64,
    /// Per cursor: wake-ups for fetches parked on this node.
    pub(crate) locals: Mutex<HashMap<(String, String), Arc<Local>>>,
}

impl Inner {
    pub(crate) fn ensure_open(&self) -> StorageResult<()> {
        if self.closed.is_cancelled() {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs one request within `request_timeout`.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.opts.request_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(Error::Redis {
                url: self.url.clone(),
                op,
                source,
            }),
            Err(_) => Err(Error::Timeout {
                url: self.url.clone(),
                op,
                after: self.opts.request_timeout,
            }),
        }
    }

    /// Runs a script with keys and arguments; returns its status.
    pub(crate) async fn script(
        &self,
        op: &'static str,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Status, Error> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        let v: Value = self.timed(op, inv.invoke_async(&mut conn)).await?;
        reply::status(op, v)
    }

    pub(crate) async fn cmd<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        self.timed(op, cmd.query_async(&mut conn)).await
    }

    pub(crate) async fn check_server(&self) -> StorageResult<()> {
        let info: String = self.cmd("INFO", redis::cmd("INFO").arg("server")).await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major.is_none_or(|m| m < MIN_REDIS_MAJOR) {
            return Err(StorageError::Invalid(format!(
                "the redis store needs Redis {MIN_REDIS_MAJOR}.0 or newer; {} runs {version}",
                self.url
            )));
        }
        // CONFIG may be disabled (managed Redis): then only say that it could not be checked.
        let config: Result<Vec<String>, _> = self
            .cmd(
                "CONFIG GET",
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("appendonly")
                    .arg("appendfsync"),
            )
            .await;
        match config {
            Ok(kv) => {
                let get = |k: &str| {
                    kv.chunks(2)
                        .find(|c| c.first().is_some_and(|x| x == k))
                        .and_then(|c| c.get(1).cloned())
                        .unwrap_or_default()
                };
                let (aof, fsync) = (get("appendonly"), get("appendfsync"));
                if aof != "yes" || fsync != "always" {
                    warn!(
                        message = "Redis does not fsync every write: an acknowledged publish can be lost if Redis crashes (set appendonly yes, appendfsync always).",
                        url = %self.url,
                        appendonly = %aof,
                        appendfsync = %fsync,
                        redis_version = %version
                    );
                } else {
                    info!(message = "Redis persists every write before answering.", url = %self.url, redis_version = %version);
                }
            }
            Err(error) => {
                warn!(message = "Could not read Redis's persistence settings.", url = %self.url, %error);
            }
        }
        Ok(())
    }

    pub(crate) fn stream(&self, topic: &Topic) -> String {
        self.keys.stream(&topic.to_string())
    }

    /// The wake-up state of a cursor on this node.
    pub(crate) fn local(&self, c: &ConsumerRef) -> Arc<Local> {
        self.locals
            .lock()
            .entry((c.topic.to_string(), keys::group_name(c)))
            .or_default()
            .clone()
    }

    pub(crate) fn forget_local(&self, c: &ConsumerRef) {
        if let Some(l) = self
            .locals
            .lock()
            .remove(&(c.topic.to_string(), keys::group_name(c)))
        {
            l.wake();
        }
    }

    /// The blocking-read connection pool.
    pub(crate) async fn take_blocking(&self) -> Result<MultiplexedConnection, Error> {
        if let Some(c) = self.blocking.lock().pop() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.request_timeout))
            .set_response_timeout(None);
        self.timed(
            "connect",
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
    }

    pub(crate) fn put_blocking(&self, c: MultiplexedConnection) {
        let mut idle = self.blocking.lock();
        if idle.len() < 64 && !self.closed.is_cancelled() {
            idle.push(c);
        }
    }

    pub(crate) fn horizon_ms(&self) -> u64 {
        self.horizon_ms.load(Ordering::Relaxed)
    }

    /// Adopts the lease horizon of the prefix (set by the first store that opened it).
    pub(crate) async fn agree_horizon(&self) -> StorageResult<()> {
        let key = self.keys.max_lease();
        let want = self.opts.max_lease.as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(want)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key);
        let mut conn = self.conn.clone();
        let (stored,): (Option<String>,) =
            self.timed("max_lease", pipe.query_async(&mut conn)).await?;
        match stored.as_deref().map(str::parse::<u64>) {
            Some(Ok(h)) if h >= 1000 => {
                if h != want {
                    warn!(
                        message = "Using the max_lease this key prefix was set up with, not the configured one.",
                        url = %self.url,
                        key = %key,
                        configured_ms = want,
                        used_ms = h
                    );
                }
                self.horizon_ms.store(h, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(StorageError::Backend(format!(
                "redis key `{key}` holds {stored:?}, not a lease horizon in milliseconds"
            ))),
        }
    }

    /// A lease or delay in whole milliseconds (rounded up), cut to `max_lease`.
    pub(crate) fn clamp_ms(&self, d: Duration) -> u64 {
        let ms = d.as_micros().div_ceil(1000) as u64;
        ms.min(self.horizon_ms())
    }
}
