//! [`EmbeddedMeta`]: the single-node metadata store.
//!
//! Everything is kept in one process's memory behind one lock. Leases expire lazily: every
//! operation first deletes the keys of leases whose ttl has passed (emitting watch `Delete`s), and
//! [`EmbeddedMeta::reap`] does the same on demand. The core keeps its node lease alive every
//! third of its ttl, so expiry is noticed at least that often while a core runs.
//!
//! Persistence (optional, [`EmbeddedMeta::open`]): keys put *without* a lease are written to a JSON
//! file (`{"version":1,"entries":{"<key>":"<base64 value>"}}`) after every change, through a
//! temporary file and a rename, so a crash leaves the old or the new file. Leased keys are never
//! persisted: they describe live things (nodes, bindings) that must be re-announced after a
//! restart anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{LeaseId, MetaError, MetaResult, MetaStore, WATCH_CAPACITY, WatchEvent};

/// The single-node metadata store. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct EmbeddedMeta {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    /// The file for non-leased keys, and the version last written to it.
    persist: Option<(PathBuf, tokio::sync::Mutex<u64>)>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    leases: HashMap<LeaseId, Lease>,
    watchers: Vec<Watcher>,
    next_lease: u64,
    /// Bumped on every change of a persisted (non-leased) key.
    persisted_version: u64,
}

struct Entry {
    value: Bytes,
    lease: Option<LeaseId>,
}

struct Lease {
    ttl: Duration,
    expires: Instant,
    keys: BTreeSet<String>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<WatchEvent>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    version: u32,
    entries: BTreeMap<String, String>,
}

impl State {
    fn emit(&mut self, event: &WatchEvent) {
        let key = match event {
            WatchEvent::Put { key, .. } | WatchEvent::Delete { key } => key,
        };
        // A watcher that is full or gone is dropped: it must list and watch again.
        self.watchers
            .retain(|w| !key.starts_with(&w.prefix) || w.tx.try_send(event.clone()).is_ok());
    }

    fn remove_key(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(entry) => {
                match entry.lease {
                    Some(lease) => {
                        if let Some(l) = self.leases.get_mut(&lease) {
                            l.keys.remove(key);
                        }
                    }
                    None => self.persisted_version += 1,
                }
                self.emit(&WatchEvent::Delete {
                    key: key.to_owned(),
                });
                true
            }
            None => false,
        }
    }

    fn end_lease(&mut self, lease: LeaseId) {
        if let Some(l) = self.leases.remove(&lease) {
            for key in l.keys {
                if self
                    .entries
                    .get(&key)
                    .is_some_and(|e| e.lease == Some(lease))
                {
                    self.entries.remove(&key);
                    self.emit(&WatchEvent::Delete { key });
                }
            }
        }
    }

    fn reap(&mut self, now: Instant) {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            tracing::debug!(message = "Metadata lease expired.", lease = id.0);
            self.end_lease(id);
        }
    }

    fn snapshot(&self) -> FileFormat {
        FileFormat {
            version: 1,
            entries: self
                .entries
                .iter()
                .filter(|(_, e)| e.lease.is_none())
                .map(|(k, e)| (k.clone(), BASE64.encode(&e.value)))
                .collect(),
        }
    }
}

impl EmbeddedMeta {
    /// A store in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose non-leased keys persist in the JSON file at `path` (created when missing).
    pub fn open(path: impl AsRef<Path>) -> MetaResult<Self> {
        let path = path.as_ref().to_path_buf();
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: FileFormat =
                    serde_json::from_slice(&bytes).map_err(|e| MetaError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if file.version != 1 {
                    return Err(MetaError::Corrupt {
                        path,
                        reason: format!("unknown version {}", file.version),
                    });
                }
                for (key, value) in file.entries {
                    let value =
                        BASE64
                            .decode(value.as_bytes())
                            .map_err(|e| MetaError::Corrupt {
                                path: path.clone(),
                                reason: format!("value of `{key}` is not base64: {e}"),
                            })?;
                    state.entries.insert(
                        key,
                        Entry {
                            value: Bytes::from(value),
                            lease: None,
                        },
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MetaError::Io { path, source }),
        }
        Ok(EmbeddedMeta {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                persist: Some((path, tokio::sync::Mutex::new(0))),
            }),
        })
    }

    /// Deletes the keys of every expired lease now.
    pub fn reap(&self) {
        self.inner.state.lock().reap(Instant::now());
    }

    /// Runs `f` on the state after reaping expired leases; persists if a persisted key changed.
    async fn with_state<T>(&self, f: impl FnOnce(&mut State) -> MetaResult<T>) -> MetaResult<T> {
        let (out, snapshot) = {
            let mut st = self.inner.state.lock();
            st.reap(Instant::now());
            let before = st.persisted_version;
            let out = f(&mut st)?;
            let changed = st.persisted_version != before && self.inner.persist.is_some();
            (out, changed.then(|| (st.persisted_version, st.snapshot())))
        };
        if let (Some((version, snapshot)), Some((path, written))) = (snapshot, &self.inner.persist)
        {
            let mut written = written.lock().await;
            // A newer snapshot may already be on disk; never overwrite it with an older one.
            if *written < version {
                write_file(path, &snapshot).await?;
                *written = version;
            }
        }
        Ok(out)
    }
}

async fn write_file(path: &Path, snapshot: &FileFormat) -> MetaResult<()> {
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(|e| MetaError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    let io = |source| MetaError::Io {
        path: tmp.clone(),
        source,
    };
    tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|source| MetaError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[async_trait]
impl MetaStore for EmbeddedMeta {
    async fn get(&self, key: &str) -> MetaResult<Option<Bytes>> {
        self.with_state(|st| Ok(st.entries.get(key).map(|e| e.value.clone())))
            .await
    }

    async fn put(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> MetaResult<()> {
        if key.is_empty() {
            return Err(MetaError::Invalid("empty key".into()));
        }
        self.with_state(|st| {
            if let Some(id) = lease {
                st.leases
                    .get_mut(&id)
                    .ok_or(MetaError::UnknownLease(id.0))?
                    .keys
                    .insert(key.to_owned());
            }
            let old_lease = st
                .entries
                .insert(
                    key.to_owned(),
                    Entry {
                        value: value.clone(),
                        lease,
                    },
                )
                .map(|e| e.lease);
            // Moved off another lease: forget it there.
            if let Some(Some(previous)) = old_lease
                && Some(previous) != lease
                && let Some(l) = st.leases.get_mut(&previous)
            {
                l.keys.remove(key);
            }
            // The file changes on a non-leased put, or a leased put replacing a non-leased key.
            if lease.is_none() || old_lease == Some(None) {
                st.persisted_version += 1;
            }
            st.emit(&WatchEvent::Put {
                key: key.to_owned(),
                value,
            });
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &str) -> MetaResult<bool> {
        self.with_state(|st| Ok(st.remove_key(key))).await
    }

    async fn list(&self, prefix: &str) -> MetaResult<Vec<(String, Bytes)>> {
        self.with_state(|st| {
            Ok(st
                .entries
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, e)| (k.clone(), e.value.clone()))
                .collect())
        })
        .await
    }

    async fn watch(&self, prefix: &str) -> MetaResult<mpsc::Receiver<WatchEvent>> {
        let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
        self.with_state(|st| {
            st.watchers.push(Watcher {
                prefix: prefix.to_owned(),
                tx,
            });
            Ok(())
        })
        .await?;
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> MetaResult<LeaseId> {
        if ttl.is_zero() {
            return Err(MetaError::Invalid("lease ttl must be > 0".into()));
        }
        self.with_state(|st| {
            st.next_lease += 1;
            let id = LeaseId(st.next_lease);
            st.leases.insert(
                id,
                Lease {
                    ttl,
                    expires: Instant::now() + ttl,
                    keys: BTreeSet::new(),
                },
            );
            Ok(id)
        })
        .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> MetaResult<()> {
        self.with_state(|st| {
            let l = st
                .leases
                .get_mut(&lease)
                .ok_or(MetaError::UnknownLease(lease.0))?;
            l.expires = Instant::now() + l.ttl;
            Ok(())
        })
        .await
    }

    async fn revoke(&self, lease: LeaseId) -> MetaResult<()> {
        self.with_state(|st| {
            st.end_lease(lease);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_put_delete_list() {
        let m = EmbeddedMeta::new();
        m.put("a/1", Bytes::from_static(b"x"), None).await.unwrap();
        m.put("a/2", Bytes::from_static(b"y"), None).await.unwrap();
        m.put("b/1", Bytes::from_static(b"z"), None).await.unwrap();
        assert_eq!(m.get("a/1").await.unwrap(), Some(Bytes::from_static(b"x")));
        let keys: Vec<String> = m
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["a/1", "a/2"]);
        assert!(m.delete("a/1").await.unwrap());
        assert!(!m.delete("a/1").await.unwrap());
        assert_eq!(m.get("a/1").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn leased_keys_expire_and_watchers_see_it() {
        let m = EmbeddedMeta::new();
        let mut w = m.watch("nodes/").await.unwrap();
        let lease = m.grant_lease(Duration::from_secs(10)).await.unwrap();
        m.put("nodes/n1", Bytes::from_static(b"addr"), Some(lease))
            .await
            .unwrap();
        assert!(matches!(w.recv().await, Some(WatchEvent::Put { key, .. }) if key == "nodes/n1"));
        tokio::time::advance(Duration::from_secs(6)).await;
        m.keep_alive(lease).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(m.get("nodes/n1").await.unwrap().is_some(), "kept alive");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(m.get("nodes/n1").await.unwrap(), None, "expired");
        assert_eq!(
            w.recv().await,
            Some(WatchEvent::Delete {
                key: "nodes/n1".into()
            })
        );
        assert!(matches!(
            m.keep_alive(lease).await,
            Err(MetaError::UnknownLease(_))
        ));
    }

    #[tokio::test]
    async fn revoke_deletes_the_lease_keys_only() {
        let m = EmbeddedMeta::new();
        let lease = m.grant_lease(Duration::from_secs(10)).await.unwrap();
        m.put("k/leased", Bytes::from_static(b"1"), Some(lease))
            .await
            .unwrap();
        m.put("k/plain", Bytes::from_static(b"2"), None)
            .await
            .unwrap();
        m.revoke(lease).await.unwrap();
        m.revoke(lease).await.unwrap();
        assert_eq!(m.list("k/").await.unwrap().len(), 1);
        assert!(matches!(
            m.put("k/x", Bytes::new(), Some(lease)).await,
            Err(MetaError::UnknownLease(_))
        ));
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_closed_not_blocking() {
        let m = EmbeddedMeta::new();
        let mut w = m.watch("").await.unwrap();
        for i in 0..(WATCH_CAPACITY + 10) {
            m.put(&format!("k{i}"), Bytes::new(), None).await.unwrap();
        }
        let mut seen = 0;
        while w.recv().await.is_some() {
            seen += 1;
        }
        assert_eq!(seen, WATCH_CAPACITY);
    }

    #[tokio::test]
    async fn non_leased_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        {
            let m = EmbeddedMeta::open(&path).unwrap();
            let lease = m.grant_lease(Duration::from_secs(10)).await.unwrap();
            m.put("keep", Bytes::from_static(b"\x00\xffbin"), None)
                .await
                .unwrap();
            m.put("gone", Bytes::from_static(b"x"), None).await.unwrap();
            m.delete("gone").await.unwrap();
            m.put("live", Bytes::from_static(b"x"), Some(lease))
                .await
                .unwrap();
        }
        let m = EmbeddedMeta::open(&path).unwrap();
        assert_eq!(
            m.get("keep").await.unwrap(),
            Some(Bytes::from_static(b"\x00\xffbin"))
        );
        assert_eq!(m.get("gone").await.unwrap(), None);
        assert_eq!(m.get("live").await.unwrap(), None);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            EmbeddedMeta::open(&path),
            Err(MetaError::Corrupt { .. })
        ));
    }
}
