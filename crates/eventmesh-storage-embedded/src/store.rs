//! [`EmbeddedStore`]: topics, writers, cursors and the [`EventStore`] implementation.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::consumer::{Cursor, cleanup_leftovers, list_stems, wall_ms};
use crate::failpoint;
use crate::io::{StdVfs, Vfs, io_err, parent, read_file, write_file_atomic};
use crate::journal::Identity;
use crate::log::{EncodedBatch, Log, LogConfig};
use crate::options::{EmbeddedOptions, FsyncPolicy};
use crate::recovery::open_log;
use crate::segment::{SEQ_BYTES, encode_frame};

const TOPIC_META: &str = "TOPIC";
const TOPIC_META_HEADER: &str = "eventmesh-embedded topic v1";
const PARTITION_DIR: &str = "p0";
const CURSORS_DIR: &str = "cursors";
/// A writer stops gathering queued publishes into one group at this many bytes.
const GROUP_BYTES: usize = 8 * 1024 * 1024;

type CursorKey = (String, Option<String>);

struct WriteRequest {
    batch: EncodedBatch,
    reply: oneshot::Sender<Result<u64, StorageError>>,
}

struct WriterHandle {
    tx: mpsc::Sender<WriteRequest>,
    task: JoinHandle<()>,
}

/// One topic: its log, its writer and its cursors.
struct TopicState {
    topic: Topic,
    dir: PathBuf,
    log: Arc<Log>,
    /// The log's next sequence number, bumped after each append (and on delete/close to wake
    /// long polls).
    published: Arc<watch::Sender<u64>>,
    writer: Mutex<Option<WriterHandle>>,
    cursors: RwLock<HashMap<CursorKey, Arc<Cursor>>>,
    /// Serializes cursor creation.
    creating: tokio::sync::Mutex<()>,
    deleted: AtomicBool,
}

impl TopicState {
    fn cursors_dir(&self) -> PathBuf {
        self.dir.join(CURSORS_DIR)
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(StorageError::UnknownTopic(self.topic.to_string()));
        }
        Ok(())
    }

    fn cursor(&self, c: &ConsumerRef) -> Result<Arc<Cursor>, StorageError> {
        self.cursors
            .read()
            .get(&(c.group.to_string(), c.member.clone()))
            .cloned()
            .ok_or_else(|| StorageError::UnknownConsumer(c.to_string()))
    }

    fn sender(&self, queue: usize) -> Result<mpsc::Sender<WriteRequest>, StorageError> {
        let mut w = self.writer.lock();
        self.check()?;
        if let Some(h) = &*w {
            return Ok(h.tx.clone());
        }
        let (tx, rx) = mpsc::channel(queue);
        let task = tokio::spawn(run_writer(
            Arc::clone(&self.log),
            rx,
            Arc::clone(&self.published),
        ));
        *w = Some(WriterHandle {
            tx: tx.clone(),
            task,
        });
        Ok(tx)
    }

    /// Stops the writer after it has answered every queued publish.
    async fn stop_writer(&self) {
        let handle = self.writer.lock().take();
        if let Some(WriterHandle { tx, task }) = handle {
            drop(tx);
            if let Err(e) = task.await {
                warn!(message = "Topic writer task ended abnormally.", topic = %self.topic, error = %e);
            }
        }
    }

    fn wake_all(&self) {
        self.published.send_modify(|_| {});
        for c in self.cursors.read().values() {
            c.changed.notify_waiters();
        }
    }
}

/// The per-topic writer: gathers queued publishes into one group, appends it with one write
/// (and one fsync under `Batch`) on a blocking thread, then answers every caller.
async fn run_writer(
    log: Arc<Log>,
    mut rx: mpsc::Receiver<WriteRequest>,
    published: Arc<watch::Sender<u64>>,
) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.batch.buf.len();
        let mut batches = vec![first.batch];
        let mut replies = vec![first.reply];
        while bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.batch.buf.len();
                    batches.push(r.batch);
                    replies.push(r.reply);
                }
                Err(_) => break,
            }
        }
        let log2 = Arc::clone(&log);
        let result = tokio::task::spawn_blocking(move || {
            let r = log2.append(&mut batches);
            if r.is_ok()
                && let Err(e) = log2.enforce_retention(wall_ms())
            {
                warn!(message = "Retention failed.", dir = %log2.dir.display(), error = %e);
            }
            (r, batches)
        })
        .await;
        match result {
            Ok((Ok(first_seq), batches)) => {
                published.send_replace(log.next_seq());
                let mut seq = first_seq;
                for (b, reply) in batches.iter().zip(replies) {
                    let _ = reply.send(Ok(seq));
                    seq += b.count as u64;
                }
            }
            Ok((Err(e), _)) => {
                for reply in replies {
                    let _ = reply.send(Err(dup_err(&e)));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Backend(format!(
                        "topic writer task failed: {e}"
                    ))));
                }
            }
        }
    }
}

/// A copy of an error for each caller of a failed group.
fn dup_err(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { path, source } => StorageError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Corrupt {
            path,
            offset,
            reason,
        } => StorageError::Corrupt {
            path: path.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        StorageError::Unavailable(s) => StorageError::Unavailable(s.clone()),
        StorageError::Closed => StorageError::Closed,
        other => StorageError::Backend(other.to_string()),
    }
}

struct StoreInner {
    opts: EmbeddedOptions,
    vfs: Arc<dyn Vfs>,
    topics_dir: PathBuf,
    log_cfg: LogConfig,
    topics: RwLock<HashMap<Topic, Arc<TopicState>>>,
    admin: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// The embedded event store. See the crate docs.
pub struct EmbeddedStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("data_dir", &self.inner.opts.data_dir)
            .finish_non_exhaustive()
    }
}

fn blocking_err(e: tokio::task::JoinError) -> StorageError {
    StorageError::Backend(format!("blocking storage task failed: {e}"))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `options.data_dir`, recovering every topic: see
    /// the crate docs for the recovery rules. Blocks while it scans the logs; from async code,
    /// call it through `tokio::task::spawn_blocking` when the data may be large.
    pub fn open(options: EmbeddedOptions) -> Result<EmbeddedStore, StorageError> {
        Self::open_with_vfs(options, Arc::new(StdVfs))
    }

    pub(crate) fn open_with_vfs(
        options: EmbeddedOptions,
        vfs: Arc<dyn Vfs>,
    ) -> Result<EmbeddedStore, StorageError> {
        options.validate()?;
        let root = options.data_dir.clone();
        vfs.create_dir_all(&root).map_err(|e| io_err(&root, e))?;
        if let Err(e) = vfs.sync_dir(parent(&root)) {
            debug!(message = "Could not fsync the data directory's parent.", path = %parent(&root).display(), error = %e);
        }
        let lock_path = root.join("LOCK");
        let lock = vfs
            .try_lock(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?
            .ok_or_else(|| StorageError::Locked(root.clone()))?;
        let topics_dir = root.join("topics");
        vfs.create_dir_all(&topics_dir)
            .map_err(|e| io_err(&topics_dir, e))?;
        vfs.sync_dir(&root).map_err(|e| io_err(&root, e))?;
        let log_cfg = LogConfig {
            segment_bytes: options.segment_bytes,
            index_interval: options.index_interval_bytes,
            fsync: options.fsync,
            max_payload: options
                .max_event_bytes
                .max(eventmesh_core::DEFAULT_MAX_EVENT_BYTES)
                + SEQ_BYTES,
            retention_bytes: options.retention_bytes,
            retention_age: options.retention_age,
        };
        let inner = StoreInner {
            opts: options,
            vfs,
            topics_dir,
            log_cfg,
            topics: RwLock::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            background: Mutex::new(None),
        };
        let mut topics = HashMap::new();
        let mut entries = inner
            .vfs
            .read_dir(&inner.topics_dir)
            .map_err(|e| io_err(&inner.topics_dir, e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let dir = inner.topics_dir.join(&entry.name);
            if !entry.is_dir {
                warn!(message = "Ignoring an unknown file in the topics directory.", path = %dir.display());
                continue;
            }
            if let Some(t) = inner.load_topic(&dir)? {
                topics.insert(t.topic.clone(), Arc::new(t));
            }
        }
        info!(message = "Opened embedded event store.", data_dir = %root.display(), topics = topics.len(), fsync = ?inner.opts.fsync);
        *inner.topics.write() = topics;
        Ok(EmbeddedStore {
            inner: Arc::new(inner),
        })
    }

    /// Deletes expired segments of every topic now (retention also runs after appends and, for
    /// the age limit, every second).
    pub async fn enforce_retention(&self) -> StorageResult<()> {
        self.inner.check_open()?;
        for t in self.inner.all_topics() {
            let log = Arc::clone(&t.log);
            tokio::task::spawn_blocking(move || log.enforce_retention(wall_ms()))
                .await
                .map_err(blocking_err)??;
        }
        Ok(())
    }

    fn ensure_background(&self) {
        let policy_tick = match self.inner.opts.fsync {
            FsyncPolicy::Interval(d) => Some(d),
            _ => None,
        };
        let retention_tick = self
            .inner
            .opts
            .retention_age
            .map(|_| Duration::from_secs(1));
        let Some(tick) = [policy_tick, retention_tick].into_iter().flatten().min() else {
            return;
        };
        let mut bg = self.inner.background.lock();
        if bg.is_none() {
            let weak = Arc::downgrade(&self.inner);
            *bg = Some(tokio::spawn(background(weak, tick)));
        }
    }

    #[cfg(test)]
    pub(crate) fn log_of(&self, topic: &Topic) -> Option<Arc<Log>> {
        self.inner
            .topics
            .read()
            .get(topic)
            .map(|t| Arc::clone(&t.log))
    }
}

async fn background(weak: Weak<StoreInner>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = Instant::now();
    loop {
        interval.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let topics = inner.all_topics();
        if matches!(inner.opts.fsync, FsyncPolicy::Interval(_)) {
            for t in &topics {
                let log = Arc::clone(&t.log);
                match tokio::task::spawn_blocking(move || log.sync()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(message = "Interval fsync failed.", topic = %t.topic, error = %e)
                    }
                    Err(e) => {
                        warn!(message = "Interval fsync task failed.", topic = %t.topic, error = %e)
                    }
                }
                let cursors: Vec<Arc<Cursor>> = t.cursors.read().values().cloned().collect();
                for c in cursors {
                    if c.unsynced()
                        && let Err(e) = c.flush(c.appended(), true).await
                    {
                        warn!(message = "Interval fsync of a cursor journal failed.", cursor = %c.name, error = %e);
                    }
                }
            }
        }
        if inner.opts.retention_age.is_some() && last_retention.elapsed() >= Duration::from_secs(1)
        {
            last_retention = Instant::now();
            for t in &topics {
                let log = Arc::clone(&t.log);
                if let Ok(Err(e)) =
                    tokio::task::spawn_blocking(move || log.enforce_retention(wall_ms())).await
                {
                    warn!(message = "Retention failed.", topic = %t.topic, error = %e);
                }
            }
        }
    }
}

impl StoreInner {
    fn check_open(&self) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn all_topics(&self) -> Vec<Arc<TopicState>> {
        self.topics.read().values().cloned().collect()
    }

    fn topic(&self, topic: &Topic) -> Result<Arc<TopicState>, StorageError> {
        self.check_open()?;
        self.topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))
    }

    fn topic_dir(&self, topic: &Topic) -> PathBuf {
        self.topics_dir
            .join(crate::names::safe_name(&topic.to_string()))
    }

    fn new_topic_state(&self, topic: Topic, dir: PathBuf, log: Log) -> TopicState {
        let next = log.next_seq();
        TopicState {
            topic,
            dir,
            log: Arc::new(log),
            published: Arc::new(watch::channel(next).0),
            writer: Mutex::new(None),
            cursors: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            deleted: AtomicBool::new(false),
        }
    }

    /// Recovers one topic directory (`None`: an incomplete create or delete, removed).
    fn load_topic(&self, dir: &Path) -> Result<Option<TopicState>, StorageError> {
        let vfs = self.vfs.as_ref();
        let meta = dir.join(TOPIC_META);
        if !vfs.exists(&meta).map_err(|e| io_err(&meta, e))? {
            warn!(message = "Removing a topic directory without metadata (an interrupted create or delete).", path = %dir.display());
            vfs.remove_dir_all(dir).map_err(|e| io_err(dir, e))?;
            vfs.sync_dir(&self.topics_dir)
                .map_err(|e| io_err(&self.topics_dir, e))?;
            return Ok(None);
        }
        let topic = parse_topic_meta(&meta, &read_file(vfs, &meta)?)?;
        if self.topic_dir(&topic) != dir {
            let decoded = dir
                .file_name()
                .and_then(|n| crate::names::decode(&n.to_string_lossy()));
            warn!(message = "Topic directory name does not match its topic; using the metadata.", path = %dir.display(), topic = %topic, decoded = ?decoded);
        }
        let log = open_log(&self.vfs, &dir.join(PARTITION_DIR), &self.log_cfg)?;
        let state = self.new_topic_state(topic.clone(), dir.to_path_buf(), log);
        let cdir = state.cursors_dir();
        let mut live = Vec::new();
        for stem in list_stems(vfs, &cdir)? {
            let (cursor, identity, generation) = Cursor::load(
                &self.vfs,
                cdir.clone(),
                &stem,
                &topic.to_string(),
                state.log.start_seq(),
                state.log.next_seq(),
                self.opts.journal_compact_bytes,
            )?;
            live.push((stem, generation));
            state
                .cursors
                .write()
                .insert((identity.group, identity.member), Arc::new(cursor));
        }
        cleanup_leftovers(vfs, &cdir, &live)?;
        Ok(Some(state))
    }

    /// Creates a topic's files durably. Blocking.
    fn create_topic_files(&self, topic: &Topic) -> Result<TopicState, StorageError> {
        let vfs = self.vfs.as_ref();
        let dir = self.topic_dir(topic);
        if vfs.exists(&dir).map_err(|e| io_err(&dir, e))? {
            // Leftover of an interrupted create or delete (it has no metadata, or the topic would
            // have been loaded).
            vfs.remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
        let cdir = dir.join(CURSORS_DIR);
        vfs.create_dir_all(&cdir).map_err(|e| io_err(&cdir, e))?;
        let log = open_log(&self.vfs, &dir.join(PARTITION_DIR), &self.log_cfg)?;
        vfs.sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
        let meta = format!("{TOPIC_META_HEADER}\ntopic={topic}\npartitions=1\n");
        write_file_atomic(vfs, &dir.join(TOPIC_META), meta.as_bytes())?;
        vfs.sync_dir(&self.topics_dir)
            .map_err(|e| io_err(&self.topics_dir, e))?;
        info!(message = "Created topic.", topic = %topic, dir = %dir.display());
        Ok(self.new_topic_state(topic.clone(), dir, log))
    }

    /// Where a cursor starts or is moved to.
    async fn position(&self, t: &TopicState, start: StartFrom) -> Result<u64, StorageError> {
        let (lo, hi) = (t.log.start_seq(), t.log.next_seq());
        Ok(match start {
            StartFrom::Earliest => lo,
            StartFrom::Latest => hi,
            StartFrom::Offset(s) => s.clamp(lo, hi),
            StartFrom::Time(ms) => {
                let log = Arc::clone(&t.log);
                let seq = tokio::task::spawn_blocking(move || log.find_time(ms))
                    .await
                    .map_err(blocking_err)??;
                seq.max(t.log.start_seq())
            }
        })
    }

    fn sync_acks(&self) -> bool {
        self.opts.fsync == FsyncPolicy::Batch
    }
}

fn parse_topic_meta(path: &Path, bytes: &[u8]) -> Result<Topic, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    let text =
        std::str::from_utf8(bytes).map_err(|_| corrupt("topic metadata is not UTF-8".into()))?;
    let mut lines = text.lines();
    if lines.next() != Some(TOPIC_META_HEADER) {
        return Err(corrupt("unknown topic metadata format".into()));
    }
    let mut topic = None;
    for line in lines {
        match line.split_once('=') {
            Some(("topic", t)) => {
                topic = Some(Topic::parse(t).map_err(|e| corrupt(format!("invalid topic: {e}")))?)
            }
            Some(("partitions", "1")) => {}
            Some(("partitions", n)) => {
                return Err(corrupt(format!("{n} partitions; this version supports 1")));
            }
            _ => return Err(corrupt(format!("unknown topic metadata line `{line}`"))),
        }
    }
    topic.ok_or_else(|| corrupt("topic metadata names no topic".into()))
}

impl EmbeddedStore {
    async fn read_plan(
        &self,
        t: &TopicState,
        cursor: &Cursor,
        plan: crate::consumer::Plan,
    ) -> Result<Vec<Delivery>, StorageError> {
        let mut seqs: Vec<u64> = plan.items.iter().map(|i| i.1).collect();
        seqs.sort_unstable();
        let log = Arc::clone(&t.log);
        let read = tokio::task::spawn_blocking(move || log.read_seqs(&seqs));
        let (read, flushed) = tokio::join!(read, cursor.flush(plan.ticket, false));
        flushed?;
        let records = read.map_err(blocking_err)??;
        let mut by_seq: HashMap<u64, EventRecord> = records.into_iter().collect();
        let mut out = Vec::with_capacity(plan.items.len());
        let mut missing = false;
        for (part, seq, count, token) in plan.items {
            match by_seq.remove(&seq) {
                Some(record) => out.push(Delivery {
                    token: token.encode(),
                    offset: Offset {
                        partition: part,
                        seq,
                    },
                    delivery_count: count,
                    record,
                }),
                None => missing = true,
            }
        }
        if missing {
            // Retention deleted them between planning and reading.
            cursor.drop_missing(t.log.start_seq());
        }
        Ok(out)
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        self.inner.check_open()?;
        let _admin = self.inner.admin.lock().await;
        if self.inner.topics.read().contains_key(topic) {
            return Ok(false);
        }
        let inner = Arc::clone(&self.inner);
        let t = topic.clone();
        let state = tokio::task::spawn_blocking(move || inner.create_topic_files(&t))
            .await
            .map_err(blocking_err)??;
        self.inner
            .topics
            .write()
            .insert(topic.clone(), Arc::new(state));
        Ok(true)
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        self.inner.check_open()?;
        let _admin = self.inner.admin.lock().await;
        let t = self
            .inner
            .topics
            .write()
            .remove(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        t.deleted.store(true, Ordering::Release);
        t.stop_writer().await;
        for c in t.cursors.read().values() {
            c.forget();
        }
        t.wake_all();
        let inner = Arc::clone(&self.inner);
        let dir = t.dir.clone();
        tokio::task::spawn_blocking(move || {
            let vfs = inner.vfs.as_ref();
            let meta = dir.join(TOPIC_META);
            vfs.remove_file(&meta).map_err(|e| io_err(&meta, e))?;
            vfs.sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
            vfs.remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            vfs.sync_dir(&inner.topics_dir)
                .map_err(|e| io_err(&inner.topics_dir, e))
        })
        .await
        .map_err(blocking_err)??;
        info!(message = "Deleted topic.", topic = %topic);
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        self.inner.check_open()?;
        let mut out: Vec<TopicInfo> = self
            .inner
            .all_topics()
            .iter()
            .map(|t| TopicInfo {
                topic: t.topic.clone(),
                partitions: 1,
                retained_events: t.log.next_seq().saturating_sub(t.log.start_seq()),
                retained_bytes: Some(t.log.retained_bytes()),
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(out)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        let t = self.inner.topic(topic)?;
        self.ensure_background();
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let o = &self.inner.opts;
        if records.len() > o.max_batch_events {
            return Err(StorageError::Invalid(format!(
                "batch of {} events is over the limit of {}",
                records.len(),
                o.max_batch_events
            )));
        }
        let hint: usize = records
            .iter()
            .map(|r| r.encoded_len_hint() + Log::FRAME_OVERHEAD)
            .sum();
        let mut buf = BytesMut::with_capacity(hint.min(o.max_batch_bytes + Log::FRAME_OVERHEAD));
        for (i, r) in records.iter().enumerate() {
            if r.topic != *topic {
                return Err(StorageError::Invalid(format!(
                    "event {i} of the batch is for topic `{}`, not `{topic}`",
                    r.topic
                )));
            }
            let n = encode_frame(r, &mut buf);
            if n > o.max_event_bytes {
                return Err(StorageError::Invalid(format!(
                    "event {i} of the batch is {n} bytes encoded; the limit is {}",
                    o.max_event_bytes
                )));
            }
            if buf.len() > o.max_batch_bytes {
                return Err(StorageError::Invalid(format!(
                    "batch is over the limit of {} encoded bytes",
                    o.max_batch_bytes
                )));
            }
        }
        let tx = t.sender(o.writer_queue)?;
        let (reply, answer) = oneshot::channel();
        let count = records.len();
        tx.send(WriteRequest {
            batch: EncodedBatch { buf, count },
            reply,
        })
        .await
        .map_err(|_| StorageError::Closed)?;
        let first = answer.await.map_err(|_| StorageError::Closed)??;
        Ok((0..count as u64)
            .map(|i| Offset {
                partition: 0,
                seq: first + i,
            })
            .collect())
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        self.ensure_background();
        if t.cursor(consumer).is_ok() {
            return Ok(());
        }
        let _creating = t.creating.lock().await;
        t.check()?;
        if t.cursor(consumer).is_ok() {
            return Ok(());
        }
        let pos = self.inner.position(&t, start).await?;
        let identity = Identity {
            topic: t.topic.to_string(),
            group: consumer.group.to_string(),
            member: consumer.member.clone(),
        };
        let vfs = Arc::clone(&self.inner.vfs);
        let dir = t.cursors_dir();
        let name = consumer.to_string();
        let compact = self.inner.opts.journal_compact_bytes;
        let cursor = tokio::task::spawn_blocking(move || {
            Cursor::create(&vfs, dir, name, identity, &[pos], compact)
        })
        .await
        .map_err(blocking_err)??;
        t.cursors.write().insert(
            (consumer.group.to_string(), consumer.member.clone()),
            Arc::new(cursor),
        );
        Ok(())
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        let _creating = t.creating.lock().await;
        let removed = t
            .cursors
            .write()
            .remove(&(consumer.group.to_string(), consumer.member.clone()));
        if let Some(c) = removed {
            c.delete().await?;
            c.changed.notify_waiters();
            info!(message = "Deleted cursor.", cursor = %consumer);
        }
        Ok(())
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        self.ensure_background();
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let mut published = t.published.subscribe();
        loop {
            self.inner.check_open()?;
            t.check()?;
            let changed = cursor.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            published.borrow_and_update();
            let plan = cursor.plan_fetch(max, lease, t.log.start_seq(), t.log.next_seq())?;
            if !plan.items.is_empty() {
                let out = self.read_plan(&t, &cursor, plan).await?;
                if !out.is_empty() {
                    return Ok(out);
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = cursor.next_due().map_or(deadline, |d| d.min(deadline));
            tokio::select! {
                _ = published.changed() => {}
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        let ticket = cursor.ack(tokens, t.log.start_seq())?;
        cursor.flush(ticket, self.inner.sync_acks()).await?;
        failpoint::hit("ack_after_cursor_update");
        Ok(())
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        let ticket = cursor.nack(token, delay)?;
        cursor.flush(ticket, false).await?;
        cursor.changed.notify_waiters();
        Ok(())
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        cursor.extend(tokens, lease)
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        let pos = self.inner.position(&t, target).await?;
        let ticket = cursor.seek(pos)?;
        cursor.flush(ticket, self.inner.sync_acks()).await?;
        cursor.changed.notify_waiters();
        debug!(message = "Cursor moved.", cursor = %consumer, position = pos);
        Ok(())
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        let t = self.inner.topic(&consumer.topic)?;
        let cursor = t.cursor(consumer)?;
        cursor.info(t.log.start_seq(), t.log.next_seq())
    }

    async fn health(&self) -> StorageResult<()> {
        self.inner.check_open()?;
        for t in self.inner.all_topics() {
            t.log.check_healthy()?;
            for c in t.cursors.read().values() {
                c.health()?;
            }
        }
        let root = &self.inner.opts.data_dir;
        if !self.inner.vfs.exists(root).map_err(|e| io_err(root, e))? {
            return Err(StorageError::Unavailable(format!(
                "data directory {} is gone",
                root.display()
            )));
        }
        Ok(())
    }

    async fn close(&self) -> StorageResult<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(StorageError::Closed);
        }
        let bg = self.inner.background.lock().take();
        if let Some(bg) = bg {
            bg.abort();
        }
        let topics = self.inner.all_topics();
        let mut first_err = None;
        for t in &topics {
            t.stop_writer().await;
            let log = Arc::clone(&t.log);
            let synced = tokio::task::spawn_blocking(move || log.sync())
                .await
                .map_err(blocking_err)
                .and_then(|r| r);
            if let Err(e) = synced {
                first_err.get_or_insert(e);
            }
            let cursors: Vec<Arc<Cursor>> = t.cursors.read().values().cloned().collect();
            for c in cursors {
                if let Err(e) = c.flush(c.appended(), true).await {
                    first_err.get_or_insert(e);
                }
            }
            t.wake_all();
        }
        self.inner.lock.lock().take();
        info!(message = "Closed embedded event store.", data_dir = %self.inner.opts.data_dir.display());
        first_err.map_or(Ok(()), Err)
    }
}
