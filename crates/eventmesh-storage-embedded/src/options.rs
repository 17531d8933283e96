//! Options of the embedded store.

use std::path::PathBuf;
use std::time::Duration;

use eventmesh_storage::StorageError;
use serde::Deserialize;

/// When the store calls `fdatasync` on the files it appends to, and so when a publish (or an
/// ack) is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Each group-committed batch is fsynced before any of its callers is answered: an
    /// acknowledged publish (and an acknowledged ack) survives a power cut. The default.
    #[default]
    Batch,
    /// Writes are answered once they reach the operating system (they survive a crash of the
    /// process, not of the machine); a background task fsyncs every interval. Written
    /// `{ interval = "100ms" }` in a config file.
    Interval(#[serde(with = "humantime_serde")] Duration),
    /// Writes are answered once they reach the operating system and are never fsynced except
    /// when a segment is sealed, a snapshot is written or the store is closed.
    Never,
}

/// Options of [`crate::EmbeddedStore`].
///
/// Deserializes from the `[storage.embedded]` table of the config file; unknown keys are refused.
/// Durations are written human-style (`"7d"`, `"100ms"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedOptions {
    /// The data directory (created if missing). One process at a time may open it.
    pub data_dir: PathBuf,
    /// When appended data is fsynced; see [`FsyncPolicy`]. Default: [`FsyncPolicy::Batch`].
    pub fsync: FsyncPolicy,
    /// A segment is sealed and a new one started once it holds this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Per topic: oldest whole segments are deleted while the topic holds more than this many
    /// bytes (the active segment is never deleted). `None`: no size limit.
    pub retention_bytes: Option<u64>,
    /// Per topic: a sealed segment whose newest event was ingested longer ago than this is
    /// deleted. `None`: no age limit.
    #[serde(with = "humantime_serde")]
    pub retention_age: Option<Duration>,
    /// One sparse-index entry per this many bytes of log (default 4096).
    pub index_interval_bytes: u32,
    /// The most events one `publish` call may carry (default 10,000).
    pub max_batch_events: usize,
    /// The most encoded bytes one `publish` call may carry (default 64 MiB).
    pub max_batch_bytes: usize,
    /// The largest encoded event accepted (default [`eventmesh_core::DEFAULT_MAX_EVENT_BYTES`]).
    pub max_event_bytes: usize,
    /// A cursor's journal is compacted into a snapshot once it grows past this many bytes
    /// (default 4 MiB).
    pub journal_compact_bytes: u64,
    /// Capacity, in publish calls, of each topic writer's queue; publishers wait when it is full
    /// (default 1024).
    pub writer_queue: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            data_dir: PathBuf::from("data"),
            fsync: FsyncPolicy::Batch,
            segment_bytes: 64 * 1024 * 1024,
            retention_bytes: None,
            retention_age: None,
            index_interval_bytes: 4096,
            max_batch_events: 10_000,
            max_batch_bytes: 64 * 1024 * 1024,
            max_event_bytes: eventmesh_core::DEFAULT_MAX_EVENT_BYTES,
            journal_compact_bytes: 4 * 1024 * 1024,
            writer_queue: 1024,
        }
    }
}

/// The largest frame payload the on-disk format can describe.
pub(crate) const MAX_FORMAT_EVENT_BYTES: usize = (u32::MAX as usize) / 2;

impl EmbeddedOptions {
    /// Options with `data_dir` set and every other field at its default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }

    /// Checks the options, returning every problem at once.
    pub fn validate(&self) -> Result<(), StorageError> {
        let mut problems = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir is empty".to_owned());
        }
        if self.segment_bytes < 4096 {
            problems.push(format!(
                "segment_bytes is {}; use at least 4096",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            problems.push("index_interval_bytes must be positive".to_owned());
        }
        if let FsyncPolicy::Interval(d) = self.fsync
            && d.is_zero()
        {
            problems.push("fsync interval must be positive".to_owned());
        }
        if self.max_batch_events == 0 {
            problems.push("max_batch_events must be positive".to_owned());
        }
        if self.max_event_bytes == 0 || self.max_event_bytes > MAX_FORMAT_EVENT_BYTES {
            problems.push(format!(
                "max_event_bytes is {}; use 1 to {MAX_FORMAT_EVENT_BYTES}",
                self.max_event_bytes
            ));
        }
        if self.max_batch_bytes < self.max_event_bytes {
            problems.push(format!(
                "max_batch_bytes ({}) is below max_event_bytes ({})",
                self.max_batch_bytes, self.max_event_bytes
            ));
        }
        if self.retention_bytes == Some(0) {
            problems.push("retention_bytes must be positive when set".to_owned());
        }
        if self.retention_age.is_some_and(|d| d.is_zero()) {
            problems.push("retention_age must be positive when set".to_owned());
        }
        if self.writer_queue == 0 {
            problems.push("writer_queue must be positive".to_owned());
        }
        if self.journal_compact_bytes < 1024 {
            problems.push("journal_compact_bytes must be at least 1024".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Invalid(format!(
                "embedded store options: {}",
                problems.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_batch_fsync() {
        let o = EmbeddedOptions::default();
        assert_eq!(o.fsync, FsyncPolicy::Batch);
        assert_eq!(o.segment_bytes, 64 * 1024 * 1024);
        assert_eq!(o.index_interval_bytes, 4096);
        o.validate().unwrap();
    }

    #[test]
    fn deserializes_from_toml_and_refuses_unknown_keys() {
        let o: EmbeddedOptions = toml::from_str(
            r#"
            data_dir = "/var/lib/eventmesh"
            fsync = { interval = "100ms" }
            retention_age = "7d"
            retention_bytes = 1000000
            "#,
        )
        .unwrap();
        assert_eq!(o.fsync, FsyncPolicy::Interval(Duration::from_millis(100)));
        assert_eq!(o.retention_age, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(o.retention_bytes, Some(1_000_000));
        let never: EmbeddedOptions = toml::from_str(r#"fsync = "never""#).unwrap();
        assert_eq!(never.fsync, FsyncPolicy::Never);
        assert!(toml::from_str::<EmbeddedOptions>("segment_size = 4").is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let o = EmbeddedOptions {
            segment_bytes: 1,
            index_interval_bytes: 0,
            fsync: FsyncPolicy::Interval(Duration::ZERO),
            ..EmbeddedOptions::default()
        };
        let msg = o.validate().unwrap_err().to_string();
        assert!(
            msg.contains("segment_bytes")
                && msg.contains("index_interval_bytes")
                && msg.contains("interval"),
            "{msg}"
        );
    }
}
