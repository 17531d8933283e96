//! The segmented log of one partition: appends (by the single writer), reads, rolling and
//! retention.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use eventmesh_core::EventRecord;
use eventmesh_storage::StorageError;
use parking_lot::{Mutex, RwLock};
use tracing::{debug, error, info, warn};

use crate::failpoint;
use crate::index::{IndexCadence, IndexEntry};
use crate::io::{OpenMode, Vfs, io_err};
use crate::options::FsyncPolicy;
use crate::segment::{FRAME_HEADER, Segment, seal_frame, segment_path};

/// What a log needs from the store options.
#[derive(Clone, Debug)]
pub(crate) struct LogConfig {
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval: u32,
    pub(crate) fsync: FsyncPolicy,
    /// The largest payload the recovery scan accepts as a plausible length.
    pub(crate) max_payload: usize,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) retention_age: Option<Duration>,
}

/// A batch of frames encoded by a publisher (sequence numbers and checksums still blank).
#[derive(Debug)]
pub(crate) struct EncodedBatch {
    pub(crate) buf: BytesMut,
    pub(crate) count: usize,
}

/// The writer's private state.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// End of the active segment (equal to its `end_pos` between appends).
    pub(crate) pos: u64,
    pub(crate) next_seq: u64,
    /// The running maximum of ingest times.
    pub(crate) running: i64,
    pub(crate) cadence: IndexCadence,
    buf: Vec<u8>,
    entries: Vec<IndexEntry>,
}

impl WriterState {
    pub(crate) fn new(pos: u64, next_seq: u64, running: i64, cadence: IndexCadence) -> Self {
        WriterState {
            pos,
            next_seq,
            running,
            cadence,
            buf: Vec::new(),
            entries: Vec::new(),
        }
    }
}

/// One partition's log.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    cfg: LogConfig,
    segments: RwLock<Vec<Arc<Segment>>>,
    start_seq: AtomicU64,
    next_seq: AtomicU64,
    writer: Mutex<WriterState>,
    failed: Mutex<Option<String>>,
    /// Appended data not yet fsynced (policies other than `Batch`).
    dirty: AtomicBool,
}

impl Log {
    pub(crate) fn new(
        dir: PathBuf,
        vfs: Arc<dyn Vfs>,
        cfg: LogConfig,
        segments: Vec<Arc<Segment>>,
        writer: WriterState,
    ) -> Self {
        let start = segments.first().map_or(writer.next_seq, |s| s.base);
        let next = writer.next_seq;
        Log {
            dir,
            vfs,
            cfg,
            segments: RwLock::new(segments),
            start_seq: AtomicU64::new(start),
            next_seq: AtomicU64::new(next),
            writer: Mutex::new(writer),
            failed: Mutex::new(None),
            dirty: AtomicBool::new(false),
        }
    }

    /// The first retained sequence number.
    pub(crate) fn start_seq(&self) -> u64 {
        self.start_seq.load(Ordering::Acquire)
    }

    /// One past the last readable (durable per policy) sequence number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Bytes retained.
    pub(crate) fn retained_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.end_pos()).sum()
    }

    /// `Err` once a write failed in a way that leaves the file's state unknown.
    pub(crate) fn check_healthy(&self) -> Result<(), StorageError> {
        match &*self.failed.lock() {
            Some(why) => Err(StorageError::Unavailable(format!(
                "log {} stopped accepting writes after a failure ({why}); reopen the store",
                self.dir.display()
            ))),
            None => Ok(()),
        }
    }

    fn poison(&self, why: String) {
        error!(message = "Log failed; refusing further writes until the store is reopened.", dir = %self.dir.display(), error = %why);
        self.failed.lock().get_or_insert(why);
    }

    /// Appends the batches as one write (and, under `Batch`, one fsync), all or nothing; returns
    /// the sequence number of the first record. Blocking: call from a blocking thread.
    pub(crate) fn append(&self, batches: &mut [EncodedBatch]) -> Result<u64, StorageError> {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        self.check_healthy()?;
        let total: u64 = batches.iter().map(|b| b.buf.len() as u64).sum();
        if w.pos > 0 && w.pos + total > self.cfg.segment_bytes {
            self.roll(w)?;
        }
        let active = self.active();
        let first = w.next_seq;
        let mut seq = first;
        let mut pos = w.pos;
        let mut running = w.running;
        let mut cadence = w.cadence;
        w.entries.clear();
        for b in batches.iter_mut() {
            let mut at = 0usize;
            for _ in 0..b.count {
                let (len, time) = seal_frame(&mut b.buf, at, seq).ok_or_else(|| {
                    StorageError::Backend(format!("malformed encoded batch at byte {at} (a bug)"))
                })?;
                running = running.max(time);
                if cadence.on_frame(len as u64) {
                    w.entries.push(IndexEntry {
                        seq,
                        pos,
                        time: running,
                    });
                }
                at += len;
                pos += len as u64;
                seq += 1;
            }
        }
        let write = if let [single] = batches {
            Self::write_all(&active, &single.buf)
        } else {
            w.buf.clear();
            for b in batches.iter() {
                w.buf.extend_from_slice(&b.buf);
            }
            Self::write_all(&active, &w.buf)
        };
        if let Err(e) = write {
            error!(message = "Append failed; truncating back to the last good record.", path = %active.path.display(), offset = w.pos, error = %e);
            if let Err(t) = active.file.truncate(w.pos) {
                self.poison(format!(
                    "truncating {} back to {} after a failed write: {t}",
                    active.path.display(),
                    w.pos
                ));
            }
            return Err(io_err(&active.path, e));
        }
        failpoint::hit("publish_after_write");
        if self.cfg.fsync == FsyncPolicy::Batch {
            if let Err(e) = active.file.sync_data() {
                let _ = active.file.truncate(w.pos);
                self.poison(format!("fsync of {} failed: {e}", active.path.display()));
                return Err(io_err(&active.path, e));
            }
            failpoint::hit("publish_after_fsync");
        } else {
            self.dirty.store(true, Ordering::Release);
        }
        active.index.write().extend_from_slice(&w.entries);
        failpoint::hit("publish_after_index");
        w.pos = pos;
        w.next_seq = seq;
        w.running = running;
        w.cadence = cadence;
        active.max_time.store(running, Ordering::Release);
        active.end_pos.store(pos, Ordering::Release);
        active.end_seq.store(seq, Ordering::Release);
        self.next_seq.store(seq, Ordering::Release);
        Ok(first)
    }

    fn write_all(active: &Segment, buf: &[u8]) -> std::io::Result<()> {
        if failpoint::armed_now("publish_mid_write") {
            let _ = active.file.append(&buf[..buf.len() / 2]);
            failpoint::crash("publish_mid_write");
        }
        active.file.append(buf)
    }

    fn active(&self) -> Arc<Segment> {
        let segs = self.segments.read();
        // A log always has at least one segment: recovery creates one, retention keeps the last.
        #[allow(clippy::indexing_slicing)]
        Arc::clone(&segs[segs.len() - 1])
    }

    /// Seals the active segment (fsync) and starts a new one at the writer's next sequence number.
    fn roll(&self, w: &mut WriterState) -> Result<(), StorageError> {
        let old = self.active();
        if let Err(e) = old.file.sync_data() {
            self.poison(format!(
                "fsync of {} while sealing it failed: {e}",
                old.path.display()
            ));
            return Err(io_err(&old.path, e));
        }
        let base = w.next_seq;
        let path = segment_path(&self.dir, base);
        let file = self
            .vfs
            .open(&path, OpenMode::Truncate)
            .map_err(|e| io_err(&path, e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| io_err(&self.dir, e))?;
        failpoint::hit("segment_after_roll");
        info!(message = "Rolled log segment.", path = %path.display(), base);
        let seg = Segment::new(base, path, file, Vec::new(), 0, base, w.running);
        self.segments.write().push(Arc::new(seg));
        w.pos = 0;
        w.cadence = IndexCadence::new(self.cfg.index_interval, None);
        Ok(())
    }

    /// Fsyncs the active segment if it holds unsynced data (the `Interval` policy's tick, and
    /// close). Blocking.
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // No writer lock: appends go on while the fsync runs (a roll fsyncs the segment it seals
        // itself, so syncing a just-sealed segment here is merely redundant).
        let active = self.active();
        if let Err(e) = active.file.sync_data() {
            self.poison(format!("fsync of {} failed: {e}", active.path.display()));
            return Err(io_err(&active.path, e));
        }
        Ok(())
    }

    /// Reads up to `max` records from `from` on (clamped to what is retained and readable).
    /// Blocking.
    pub(crate) fn read(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, EventRecord)>, StorageError> {
        let until = self.next_seq();
        let mut out = Vec::with_capacity(max.min(4096));
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        let mut from = from.max(segs.first().map_or(from, |s| s.base));
        let first = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        for seg in &segs[first..] {
            if out.len() >= max || from >= until {
                break;
            }
            seg.read(from, until, max - out.len(), &mut out)?;
            from = out.last().map_or(from, |(s, _)| s + 1).max(seg.end_seq());
        }
        Ok(out)
    }

    /// Reads the records at the given sequence numbers (skipping those no longer retained).
    /// Blocking.
    pub(crate) fn read_seqs(&self, seqs: &[u64]) -> Result<Vec<(u64, EventRecord)>, StorageError> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut i = 0;
        while i < seqs.len() {
            // Group runs of consecutive numbers into one sequential read.
            let mut j = i + 1;
            while j < seqs.len() && seqs[j] == seqs[j - 1] + 1 {
                j += 1;
            }
            for (seq, rec) in self.read(seqs[i], j - i)? {
                if seq >= seqs[i] && seq <= seqs[j - 1] {
                    out.push((seq, rec));
                }
            }
            i = j;
        }
        Ok(out)
    }

    /// The first sequence number whose indexed ingest time is at or after `time` (the next
    /// sequence number when there is none). Blocking.
    pub(crate) fn find_time(&self, time: i64) -> Result<u64, StorageError> {
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        let first = segs.partition_point(|s| s.max_time.load(Ordering::Acquire) < time);
        for seg in &segs[first..] {
            if let Some(seq) = seg.find_time(time)? {
                return Ok(seq);
            }
        }
        Ok(self.next_seq())
    }

    /// Deletes the oldest sealed segments that break the size or age limit; returns the new start
    /// sequence number when it moved. Blocking.
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> Result<Option<u64>, StorageError> {
        if self.cfg.retention_bytes.is_none() && self.cfg.retention_age.is_none() {
            return Ok(None);
        }
        let removed: Vec<Arc<Segment>> = {
            let _w = self.writer.lock();
            let mut segs = self.segments.write();
            let mut total: u64 = segs.iter().map(|s| s.end_pos()).sum();
            let age_limit = self
                .cfg
                .retention_age
                .map(|a| now_ms.saturating_sub(i64::try_from(a.as_millis()).unwrap_or(i64::MAX)));
            let mut n = 0;
            while n + 1 < segs.len() {
                let s = &segs[n];
                let too_big = self.cfg.retention_bytes.is_some_and(|limit| total > limit);
                let too_old =
                    age_limit.is_some_and(|limit| s.max_time.load(Ordering::Acquire) < limit);
                if !(too_big || too_old) {
                    break;
                }
                total -= s.end_pos();
                n += 1;
            }
            if n == 0 {
                return Ok(None);
            }
            let removed: Vec<Arc<Segment>> = segs.drain(..n).collect();
            self.start_seq.store(segs[0].base, Ordering::Release);
            removed
        };
        let start = self.start_seq();
        for seg in &removed {
            info!(message = "Retention deleted segment.", path = %seg.path.display(), base = seg.base, end = seg.end_seq());
            if let Err(e) = self.vfs.remove_file(&seg.path) {
                warn!(message = "Could not delete an expired segment; it is no longer served.", path = %seg.path.display(), error = %e);
            }
        }
        debug!(message = "Retention moved the log start.", dir = %self.dir.display(), start);
        Ok(Some(start))
    }

    /// The path of the active segment (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments
            .read()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }

    /// Frame header size, re-exported for the store's size checks.
    pub(crate) const FRAME_OVERHEAD: usize = FRAME_HEADER + crate::segment::SEQ_BYTES;
}
