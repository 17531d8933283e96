//! The tracing subscriber: `key=value` text or JSON lines on stderr, filtered by `log.level`.

use std::io::IsTerminal;

use eventmesh_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

use super::TelemetryError;

/// Builds the filter of `log.level`.
pub fn filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(level)
        .map_err(|e| TelemetryError::InvalidLogFilter {
            filter: level.to_owned(),
            reason: e.to_string(),
        })
}

/// Installs the global tracing subscriber for `config` (once per process). Colors are used only
/// when stderr is a terminal, so piped output stays parseable.
pub fn init_logging(config: &LogConfig) -> Result<(), TelemetryError> {
    let filter = filter(&config.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|_| TelemetryError::LoggerAlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(filter("info").is_ok());
        assert!(filter("info,eventmesh_runtime=debug").is_ok());
        assert!(filter("info,x=loud").is_err());
    }
}
