//! Typed configuration of EventMesh-rs and its loader.
//!
//! One section per module, each a `#[serde(default, deny_unknown_fields)]` struct:
//! [`node`], [`server`] (`tcp`, `http`, `grpc`, `mqtt`), [`admin`], [`limits`], [`storage`],
//! [`delivery`], [`log`], [`shutdown`]. Durations are written human-style (`"30s"`).
//!
//! The committed, commented `config/eventmesh.toml` at the repository root holds every key with
//! its default; it is embedded as [`DEFAULT_TOML`] and is the loader's bottom layer (a test keeps
//! it equal to [`Config::default`]).
//!
//! Layers, each overriding the one before ([`Loader`]): the defaults, a TOML file
//! (`--config PATH`), `EVENTMESH_<SECTION>__<KEY>` environment variables (double underscore
//! between levels, e.g. `EVENTMESH_STORAGE__EMBEDDED__FSYNC=never`), then command-line flags.
//!
//! Invariants worth naming:
//! * no key is optional: "unset" is a documented sentinel (`""`, `0`), so the default tree names
//!   every key and anything else is refused as unknown;
//! * unknown keys, type errors and semantic problems are all reported at once
//!   ([`ConfigError::problems`]), each with the key and the file, variable or flag it came from;
//! * a [`Config`] returned by the loader has passed [`Config::validate`].

pub mod admin;
pub mod delivery;
pub mod error;
pub mod limits;
pub mod loader;
pub mod log;
pub mod node;
pub mod server;
pub mod shutdown;
pub mod storage;
mod validate;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub use admin::AdminConfig;
pub use delivery::DeliveryConfig;
pub use error::{ConfigError, Origin, Problem};
pub use limits::LimitsConfig;
pub use loader::{CONFIG_PATH_ENV, ENV_PREFIX, Loaded, Loader, env_var_for};
pub use log::{LogConfig, LogFormat};
pub use node::NodeConfig;
pub use server::{
    GrpcServerConfig, HttpServerConfig, MqttServerConfig, ServerConfig, TcpServerConfig,
};
pub use shutdown::ShutdownConfig;
pub use storage::{
    DefibusStorageConfig, EmbeddedStorageConfig, FsyncPolicy, KafkaCursorState, KafkaStorageConfig,
    NatsStorageConfig, RabbitmqStorageConfig, RedisStorageConfig, RocketmqStorageConfig,
    StorageConfig, StorageKind,
};
pub use validate::MAX_EVENT_BYTES_LIMIT;

/// The committed defaults (`config/eventmesh.toml`), every key with a comment.
pub const DEFAULT_TOML: &str = include_str!("../../../config/eventmesh.toml");

/// The whole configuration of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[node]`.
    pub node: NodeConfig,
    /// `[server.*]`.
    pub server: ServerConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[delivery]`.
    pub delivery: DeliveryConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
}

/// The defaults as a TOML tree. Falls back to serializing [`Config::default`] if the embedded
/// file cannot be read (a test forbids that).
pub(crate) fn default_table() -> Table {
    DEFAULT_TOML
        .parse::<Table>()
        .unwrap_or_else(|_| Config::default().to_table())
}

impl Config {
    /// Loads the defaults, then the file (if any), then the process's `EVENTMESH_*` variables.
    /// For flags, use a [`Loader`].
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut loader = Loader::new();
        if let Some(f) = file {
            loader = loader.file(f);
        }
        loader.env_from_process().load()
    }

    /// Runs the semantic checks on a configuration built in code (the loader runs them itself),
    /// reporting every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems: Vec<Problem> = validate::check(self)
            .into_iter()
            .map(|i| Problem::new(None, Some(i.key.to_owned()), i.message))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(problems))
        }
    }

    /// The configuration as a TOML tree.
    pub fn to_table(&self) -> Table {
        match Value::try_from(self) {
            Ok(Value::Table(t)) => t,
            // Every field serializes to TOML (no maps with non-string keys, no `None`).
            _ => Table::new(),
        }
    }

    /// A copy with secrets masked (the password in `storage.url`, the HTTP auth password and
    /// token), for logs.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        c.storage.url = storage::mask_url(&c.storage.url);
        for secret in [
            &mut c.server.http.auth.password,
            &mut c.server.http.auth.token,
        ] {
            if !secret.is_empty() {
                *secret = "****".to_owned();
            }
        }
        c
    }

    /// Every key and its value as `(dotted.key, value)` pairs sorted by key, secrets masked: the
    /// effective configuration for a startup log line.
    pub fn summary(&self) -> Vec<(String, String)> {
        fn walk(prefix: &str, t: &Table, out: &mut Vec<(String, String)>) {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Table(sub) => walk(&key, sub, out),
                    Value::String(s) => out.push((key, format!("{s:?}"))),
                    other => out.push((key, other.to_string())),
                }
            }
        }
        let mut out = Vec::new();
        walk("", &self.redacted().to_table(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests;
