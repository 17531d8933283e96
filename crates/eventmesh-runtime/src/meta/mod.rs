//! The metadata trait: a small key-value store with watch and leases, for state shared between
//! runtime nodes (the node list, group bindings, webhook subscriptions, inbox names).
//!
//! * [`MetaStore`] is the trait; a real registry (etcd) implements it for many nodes later.
//! * [`EmbeddedMeta`] is the single-node implementation: in memory, with lease expiry, and
//!   optionally persisting its *non-leased* keys to a JSON file (see its docs).
//!
//! Keys are `/`-separated strings. Key parts taken from user input (topics, groups) must be
//! escaped with [`escape_key_part`] so that a prefix listing never matches a longer name.
//!
//! Invariants worth naming: a key put with a lease disappears (with a watch `Delete`) when the
//! lease expires or is revoked; a watcher never blocks writers: one that falls a full channel
//! behind is closed, and must list and watch again.

mod embedded;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

pub use embedded::EmbeddedMeta;

/// A lease id. Keys attached to a lease are deleted when it expires or is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub u64);

/// One change seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or changed.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// The key was deleted (explicitly or by lease expiry).
    Delete {
        /// The key.
        key: String,
    },
}

/// Failures of a metadata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The lease does not exist (never granted, revoked, or expired).
    #[error("lease {0} does not exist or has expired")]
    UnknownLease(u64),
    /// The argument is invalid.
    #[error("invalid metadata request: {0}")]
    Invalid(String),
    /// The backend cannot be reached.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// Persisting or loading the metadata file failed.
    #[error("metadata I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata file is not valid.
    #[error("metadata file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The result type of metadata operations.
pub type MetaResult<T> = Result<T, MetaError>;

/// Capacity of a watch channel unless an implementation documents otherwise.
pub const WATCH_CAPACITY: usize = 256;

/// A key-value store with prefix watch and leases.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// The value of `key`.
    async fn get(&self, key: &str) -> MetaResult<Option<Bytes>>;

    /// Sets `key`, attached to `lease` when given (then it is deleted when the lease ends).
    async fn put(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> MetaResult<()>;

    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, key: &str) -> MetaResult<bool>;

    /// Every key starting with `prefix` and its value, sorted by key.
    async fn list(&self, prefix: &str) -> MetaResult<Vec<(String, Bytes)>>;

    /// Changes of keys starting with `prefix` from now on, on a bounded channel. A watcher that
    /// falls a full channel behind is closed (the receiver ends): list and watch again.
    async fn watch(&self, prefix: &str) -> MetaResult<mpsc::Receiver<WatchEvent>>;

    /// A new lease that expires `ttl` after its grant or its last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> MetaResult<LeaseId>;

    /// Restarts the lease's ttl. Fails with [`MetaError::UnknownLease`] once it has expired.
    async fn keep_alive(&self, lease: LeaseId) -> MetaResult<()>;

    /// Ends the lease now, deleting its keys. Revoking an unknown lease is not an error.
    async fn revoke(&self, lease: LeaseId) -> MetaResult<()>;
}

/// Escapes one key part taken from user input: `%` and `/` become `%25` and `%2F`, so parts never
/// contain the separator.
pub fn escape_key_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_removes_separators() {
        assert_eq!(escape_key_part("orders/created"), "orders%2Fcreated");
        assert_eq!(escape_key_part("50%"), "50%25");
        assert_eq!(escape_key_part("plain"), "plain");
    }
}
