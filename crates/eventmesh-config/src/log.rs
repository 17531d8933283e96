//! `[log]`: logging to stderr.

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable `key=value` lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or a comma-separated filter
    /// like `info,eventmesh_storage_embedded=debug`.
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `log.level` filter: every comma-separated directive is `LEVEL` or `TARGET=LEVEL`.
pub fn check_level_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("must not be empty (use \"off\" to disable logging)".to_owned());
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, directive),
        };
        let level_ok = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level));
        let target_ok = target.is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        });
        if !level_ok || !target_ok {
            return Err(format!(
                "invalid directive `{directive}`: expected LEVEL or TARGET=LEVEL with LEVEL one of {}",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}
