//! A live cursor: its state under a lock, its journal and the group flush that makes changes
//! durable.
//!
//! Every operation applies its [`Op`]s to the state and appends them to an in-memory pending
//! buffer under one lock, so the journal's order is the state's order. [`Cursor::flush`] then
//! writes the pending bytes (one writer at a time; concurrent callers share one write and one
//! fsync) and, when the journal has grown past the compaction size, writes a snapshot instead
//! and starts the next journal generation.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use eventmesh_storage::{CursorInfo, StorageError};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::codec::put_framed;
use crate::cursor::{Clock, CursorState, Op, Token, TokenCheck};
use crate::failpoint;
use crate::io::{OpenMode, VFile, Vfs, io_err, read_file, write_file_atomic};
use crate::journal::{CursorFiles, Identity, decode_snapshot, encode_snapshot, replay};

/// Wall-clock Unix milliseconds.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn clock(lease: Duration) -> Clock {
    Clock {
        now: Instant::now(),
        now_ms: wall_ms(),
        lease,
    }
}

struct Inner {
    st: CursorState,
    pending: Vec<u8>,
    /// Ops appended so far (the ticket of the last one).
    appended: u64,
}

impl Inner {
    fn record(&mut self, op: Op, clock: &Clock) {
        self.st.apply(&op, clock);
        put_framed(&mut self.pending, |b| op.encode(b));
        self.appended += 1;
    }

    /// Moves positions below the log start up to it.
    fn clamp(&mut self, log_start: u64, clock: &Clock) {
        for part in 0..self.st.parts.len() {
            if self.st.parts[part].committed < log_start {
                let part = u32::try_from(part).unwrap_or(u32::MAX);
                self.record(
                    Op::Skip {
                        part,
                        start: log_start,
                    },
                    clock,
                );
            }
        }
    }
}

/// The journal file, owned by whoever flushes.
struct JournalIo {
    vfs: Arc<dyn Vfs>,
    files: CursorFiles,
    identity: Identity,
    generation: u64,
    file: Arc<dyn VFile>,
    len: u64,
}

/// How far the journal got, shared with the blocking flush jobs.
#[derive(Default)]
struct Progress {
    written: AtomicU64,
    synced: AtomicU64,
    failed: Mutex<Option<String>>,
    /// Set (under the journal lock) when the cursor's files are deleted.
    deleted: AtomicBool,
}

impl Progress {
    fn done(&self, ticket: u64, sync: bool) -> bool {
        self.written.load(Ordering::Acquire) >= ticket
            && (!sync || self.synced.load(Ordering::Acquire) >= ticket)
    }

    fn failure(&self, name: &str) -> Result<(), StorageError> {
        match &*self.failed.lock() {
            Some(why) => Err(StorageError::Unavailable(format!(
                "cursor `{name}` failed ({why}); reopen the store"
            ))),
            None => Ok(()),
        }
    }

    fn check(&self, name: &str) -> Result<(), StorageError> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(StorageError::UnknownConsumer(name.to_owned()));
        }
        self.failure(name)
    }
}

/// What a fetch decided to hand out.
pub(crate) struct Plan {
    /// (partition, seq, delivery count, token).
    pub(crate) items: Vec<(u32, u64, u32, Token)>,
    pub(crate) ticket: u64,
}

/// One consumer cursor.
pub(crate) struct Cursor {
    pub(crate) name: String,
    inner: Arc<Mutex<Inner>>,
    /// Locked only on blocking threads (see [`Cursor::flush`]).
    io: Arc<Mutex<JournalIo>>,
    progress: Arc<Progress>,
    compact_bytes: u64,
    /// Woken when events become due without a publish (nack, seek).
    pub(crate) changed: Notify,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Cursor {
    /// Creates a cursor's files at `positions` (durably) and returns it. Blocking.
    pub(crate) fn create(
        vfs: &Arc<dyn Vfs>,
        dir: PathBuf,
        name: String,
        identity: Identity,
        positions: &[u64],
        compact_bytes: u64,
    ) -> Result<Cursor, StorageError> {
        let files = CursorFiles {
            dir,
            stem: identity.stem(),
        };
        vfs.create_dir_all(&files.dir)
            .map_err(|e| io_err(&files.dir, e))?;
        let st = CursorState::new(rand::random::<u64>(), positions);
        let jpath = files.journal(0);
        let file = vfs
            .open(&jpath, OpenMode::Truncate)
            .map_err(|e| io_err(&jpath, e))?;
        write_file_atomic(
            vfs.as_ref(),
            &files.snapshot(),
            &encode_snapshot(&identity, 0, &st),
        )?;
        info!(message = "Created cursor.", cursor = %name, position = positions.first().copied().unwrap_or(0));
        Ok(Self::build(
            vfs,
            files,
            identity,
            name,
            st,
            0,
            file,
            0,
            compact_bytes,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        vfs: &Arc<dyn Vfs>,
        files: CursorFiles,
        identity: Identity,
        name: String,
        st: CursorState,
        generation: u64,
        file: Arc<dyn VFile>,
        len: u64,
        compact_bytes: u64,
    ) -> Cursor {
        Cursor {
            name,
            inner: Arc::new(Mutex::new(Inner {
                st,
                pending: Vec::new(),
                appended: 0,
            })),
            io: Arc::new(Mutex::new(JournalIo {
                vfs: Arc::clone(vfs),
                files,
                identity,
                generation,
                file,
                len,
            })),
            progress: Arc::new(Progress::default()),
            compact_bytes,
            changed: Notify::new(),
        }
    }

    /// Loads a cursor from its snapshot and journal, fitting it to the log's bounds
    /// (`log_start..log_next`). Blocking.
    pub(crate) fn load(
        vfs: &Arc<dyn Vfs>,
        dir: PathBuf,
        stem: &str,
        topic: &str,
        log_start: u64,
        log_next: u64,
        compact_bytes: u64,
    ) -> Result<(Cursor, Identity, u64), StorageError> {
        let files = CursorFiles {
            dir,
            stem: stem.to_owned(),
        };
        let snap_path = files.snapshot();
        let c = clock(Duration::ZERO);
        let (identity, generation, mut st) =
            decode_snapshot(&snap_path, &read_file(vfs.as_ref(), &snap_path)?, &c)?;
        if identity.topic != topic || identity.stem() != stem {
            return Err(StorageError::Corrupt {
                path: snap_path,
                offset: 0,
                reason: format!(
                    "snapshot belongs to cursor {}/{} of topic `{}`",
                    identity.group,
                    identity.member.as_deref().unwrap_or("-"),
                    identity.topic
                ),
            });
        }
        let jpath = files.journal(generation);
        let (file, len) = replay(vfs.as_ref(), &jpath, &mut st, &c)?;
        st.reset_timers(&c);
        let name = match &identity.member {
            Some(m) => format!("{topic}/{}/{m}", identity.group),
            None => format!("{topic}/{}", identity.group),
        };
        let cursor = Self::build(
            vfs,
            files,
            identity.clone(),
            name,
            st,
            generation,
            file,
            len,
            compact_bytes,
        );
        let rewound = {
            let mut inner = cursor.inner.lock();
            inner.clamp(log_start, &c);
            let mut rewound = false;
            for ps in &mut inner.st.parts {
                if ps.next > log_next {
                    // The log lost its unsynced tail (a power cut under a lax fsync policy): forget
                    // what the cursor knew beyond it, since those numbers will be reused.
                    warn!(message = "Cursor was ahead of the log; moving it back.", cursor = %cursor.name, next = ps.next, log_next);
                    ps.next = log_next;
                    ps.committed = ps.committed.min(log_next);
                    ps.acked.retain(|s| *s < log_next);
                    let beyond: Vec<u64> = ps.inflight.range(log_next..).map(|(s, _)| *s).collect();
                    for s in beyond {
                        ps.inflight.remove(&s);
                    }
                    rewound = true;
                }
            }
            if rewound {
                inner.st.reset_timers(&c);
            }
            rewound
        };
        if rewound {
            // Persist the rewind at once: replaying the old journal again would be wrong once
            // new events reuse those numbers.
            cursor.compact_now()?;
        }
        let generation = cursor.io.try_lock().map_or(generation, |io| io.generation);
        debug!(message = "Loaded cursor.", cursor = %cursor.name, generation);
        Ok((cursor, identity, generation))
    }

    /// Writes a snapshot of the current state and starts a new journal generation. Blocking;
    /// only used while nobody else can flush (loading).
    fn compact_now(&self) -> Result<(), StorageError> {
        let mut io = self.io.try_lock().ok_or_else(|| {
            StorageError::Backend("cursor journal busy during load (a bug)".into())
        })?;
        let (snap, upto) = {
            let mut inner = self.inner.lock();
            inner.pending.clear();
            (
                encode_snapshot(&io.identity, io.generation + 1, &inner.st),
                inner.appended,
            )
        };
        compact(&mut io, &snap)?;
        self.progress.written.fetch_max(upto, Ordering::AcqRel);
        self.progress.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    fn check(&self) -> Result<(), StorageError> {
        self.progress.check(&self.name)
    }

    fn done(&self, ticket: u64, sync: bool) -> bool {
        self.progress.done(ticket, sync)
    }

    /// `Err` if a journal write failed (the cursor then refuses every operation).
    pub(crate) fn health(&self) -> Result<(), StorageError> {
        self.progress.failure(&self.name)
    }

    /// The ticket of the last op appended.
    pub(crate) fn appended(&self) -> u64 {
        self.inner.lock().appended
    }

    /// Whether some op is not yet fsynced.
    pub(crate) fn unsynced(&self) -> bool {
        !self.done(self.appended(), true)
    }

    /// Makes ops up to `ticket` written (and fsynced when `sync`). Concurrent callers share one
    /// write and one fsync.
    ///
    /// The journal lock is taken inside the blocking job, never across an `.await`: a caller's
    /// future that is parked without being polled (a fetch held by a busy dispatcher) must not
    /// hold the journal and starve every other flush of this cursor.
    pub(crate) async fn flush(&self, ticket: u64, sync: bool) -> Result<(), StorageError> {
        self.check()?;
        if self.done(ticket, sync) {
            return Ok(());
        }
        let io = Arc::clone(&self.io);
        let inner = Arc::clone(&self.inner);
        let progress = Arc::clone(&self.progress);
        let name = self.name.clone();
        let compact_bytes = self.compact_bytes;
        let job = move || -> Result<(), StorageError> {
            let mut io = io.lock();
            progress.check(&name)?;
            if progress.done(ticket, sync) {
                return Ok(());
            }
            let (bytes, upto, snapshot) = {
                let mut inner = inner.lock();
                let bytes = std::mem::take(&mut inner.pending);
                let snapshot = (io.len + bytes.len() as u64 > compact_bytes)
                    .then(|| encode_snapshot(&io.identity, io.generation + 1, &inner.st));
                (bytes, inner.appended, snapshot)
            };
            let r = flush_blocking(&mut io, &bytes, snapshot.as_deref(), sync, &progress, upto);
            if let Err(e) = &r {
                error!(message = "Cursor journal write failed; the cursor stops until the store is reopened.", path = %io.files.journal(io.generation).display(), error = %e);
                progress.failed.lock().get_or_insert_with(|| e.to_string());
            }
            r
        };
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| StorageError::Backend(format!("cursor flush task failed: {e}")))?
    }

    /// Plans a fetch: due redeliveries first, then new events up to `log_next`.
    pub(crate) fn plan_fetch(
        &self,
        max: usize,
        lease: Duration,
        log_start: u64,
        log_next: u64,
    ) -> Result<Plan, StorageError> {
        self.check()?;
        let c = clock(lease);
        let mut inner = self.inner.lock();
        inner.clamp(log_start, &c);
        let mut items = Vec::new();
        let (id, epoch) = (inner.st.id, inner.st.epoch);
        let part = 0u32;
        let due = inner.st.parts[part as usize].due(c.now, max);
        for seq in due {
            let count = inner.st.parts[part as usize]
                .inflight
                .get(&seq)
                .map_or(1, |f| f.count.saturating_add(1));
            inner.record(Op::Redeliver { part, seq, count }, &c);
            items.push((
                part,
                seq,
                count,
                Token {
                    cursor_id: id,
                    epoch,
                    part,
                    seq,
                    count,
                },
            ));
        }
        let next = inner.st.parts[part as usize].next;
        let room = (max - items.len()) as u64;
        let to = log_next.min(next.saturating_add(room));
        if to > next {
            inner.record(
                Op::Deliver {
                    part,
                    from: next,
                    to,
                },
                &c,
            );
            for seq in next..to {
                items.push((
                    part,
                    seq,
                    1,
                    Token {
                        cursor_id: id,
                        epoch,
                        part,
                        seq,
                        count: 1,
                    },
                ));
            }
        }
        Ok(Plan {
            items,
            ticket: inner.appended,
        })
    }

    /// Forgets deliveries whose events retention deleted before they could be read.
    pub(crate) fn drop_missing(&self, log_start: u64) {
        let c = clock(Duration::ZERO);
        self.inner.lock().clamp(log_start, &c);
    }

    /// The earliest redelivery deadline.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.inner
            .lock()
            .st
            .parts
            .iter()
            .filter_map(|p| p.next_due())
            .min()
    }

    fn decode_all(
        &self,
        inner: &Inner,
        tokens: &[eventmesh_storage::AckToken],
    ) -> Result<Vec<(Token, TokenCheck)>, StorageError> {
        tokens
            .iter()
            .map(|t| {
                let tok = Token::decode(t)?;
                let check = inner.st.check(&tok, &self.name)?;
                Ok((tok, check))
            })
            .collect()
    }

    /// Marks deliveries done; returns the ticket to flush. Every token is checked first.
    pub(crate) fn ack(
        &self,
        tokens: &[eventmesh_storage::AckToken],
        log_start: u64,
    ) -> Result<u64, StorageError> {
        self.check()?;
        let c = clock(Duration::ZERO);
        let mut inner = self.inner.lock();
        let checked = self.decode_all(&inner, tokens)?;
        inner.clamp(log_start, &c);
        let mut by_part: Vec<Vec<u64>> = vec![Vec::new(); inner.st.parts.len()];
        for (tok, check) in checked {
            let ps = &inner.st.parts[tok.part as usize];
            if check == TokenCheck::Current
                && tok.seq >= ps.committed
                && !ps.acked.contains(&tok.seq)
            {
                by_part[tok.part as usize].push(tok.seq);
            }
        }
        for (part, seqs) in by_part.into_iter().enumerate() {
            if !seqs.is_empty() {
                let part = u32::try_from(part).unwrap_or(u32::MAX);
                inner.record(Op::Ack { part, seqs }, &c);
            }
        }
        Ok(inner.appended)
    }

    /// Gives a delivery back for redelivery after `delay`; returns the ticket to flush.
    pub(crate) fn nack(
        &self,
        token: &eventmesh_storage::AckToken,
        delay: Duration,
    ) -> Result<u64, StorageError> {
        self.check()?;
        let c = clock(Duration::ZERO);
        let mut inner = self.inner.lock();
        let (tok, check) = self
            .decode_all(&inner, std::slice::from_ref(token))?
            .remove(0);
        let current = inner.st.parts[tok.part as usize]
            .inflight
            .get(&tok.seq)
            .is_some_and(|f| f.count == tok.count);
        if check == TokenCheck::Current && current {
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            let not_before_ms = c.now_ms.saturating_add(delay_ms).max(1);
            inner.record(
                Op::Nack {
                    part: tok.part,
                    seq: tok.seq,
                    not_before_ms,
                },
                &c,
            );
            if let Some(ps) = inner.st.parts.get_mut(tok.part as usize) {
                // The op fixed the due time from wall-clock milliseconds; use the exact delay.
                ps.set_due(tok.seq, c.now + delay, not_before_ms, None);
            }
        }
        Ok(inner.appended)
    }

    /// Extends the leases of current deliveries (not journaled: leases end at a restart anyway).
    pub(crate) fn extend(
        &self,
        tokens: &[eventmesh_storage::AckToken],
        lease: Duration,
    ) -> Result<(), StorageError> {
        self.check()?;
        let now = Instant::now();
        let mut inner = self.inner.lock();
        for (tok, check) in self.decode_all(&inner, tokens)? {
            let ps = &mut inner.st.parts[tok.part as usize];
            let leased = ps
                .inflight
                .get(&tok.seq)
                .is_some_and(|f| f.count == tok.count && f.not_before_ms == 0);
            if check == TokenCheck::Current && leased {
                ps.set_due(tok.seq, now + lease, 0, None);
            }
        }
        Ok(())
    }

    /// Moves the cursor to `pos` in every partition, forgetting in-flight state; returns the
    /// ticket to flush.
    pub(crate) fn seek(&self, pos: u64) -> Result<u64, StorageError> {
        self.check()?;
        let c = clock(Duration::ZERO);
        let mut inner = self.inner.lock();
        let epoch = inner.st.epoch.wrapping_add(1);
        for part in 0..inner.st.parts.len() {
            let part = u32::try_from(part).unwrap_or(u32::MAX);
            inner.record(Op::Seek { epoch, part, pos }, &c);
        }
        Ok(inner.appended)
    }

    /// The cursor's state for admin views.
    pub(crate) fn info(&self, log_start: u64, log_next: u64) -> Result<CursorInfo, StorageError> {
        self.check()?;
        let c = clock(Duration::ZERO);
        let mut inner = self.inner.lock();
        inner.clamp(log_start, &c);
        let mut info = CursorInfo {
            committed: Vec::new(),
            in_flight: 0,
            backlog: Some(0),
        };
        for (p, ps) in inner.st.parts.iter().enumerate() {
            info.committed
                .push((u32::try_from(p).unwrap_or(u32::MAX), ps.committed));
            info.in_flight += ps.inflight.len() as u64;
            let open = log_next
                .saturating_sub(ps.committed)
                .saturating_sub(ps.acked.len() as u64);
            info.backlog = info.backlog.map(|b| b + open);
        }
        Ok(info)
    }

    /// Deletes the cursor's files; later operations fail with `UnknownConsumer`.
    pub(crate) async fn delete(&self) -> Result<(), StorageError> {
        let io = Arc::clone(&self.io);
        let progress = Arc::clone(&self.progress);
        tokio::task::spawn_blocking(move || {
            let io = io.lock();
            progress.deleted.store(true, Ordering::Release);
            let dir = io.files.dir.clone();
            let snap = io.files.snapshot();
            io.vfs.remove_file(&snap).map_err(|e| io_err(&snap, e))?;
            io.vfs.sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
            let jpath = io.files.journal(io.generation);
            io.vfs.remove_file(&jpath).map_err(|e| io_err(&jpath, e))?;
            Ok::<(), StorageError>(())
        })
        .await
        .map_err(|e| StorageError::Backend(format!("cursor delete task failed: {e}")))?
    }

    /// Marks the cursor deleted without touching files (its topic directory is being removed).
    pub(crate) fn forget(&self) {
        self.progress.deleted.store(true, Ordering::Release);
    }
}

fn flush_blocking(
    io: &mut JournalIo,
    bytes: &[u8],
    snapshot: Option<&[u8]>,
    sync: bool,
    progress: &Progress,
    upto: u64,
) -> Result<(), StorageError> {
    if let Some(snap) = snapshot {
        compact(io, snap)?;
        progress.written.fetch_max(upto, Ordering::AcqRel);
        progress.synced.fetch_max(upto, Ordering::AcqRel);
        return Ok(());
    }
    let path = io.files.journal(io.generation);
    if !bytes.is_empty() {
        io.file.append(bytes).map_err(|e| io_err(&path, e))?;
        io.len += bytes.len() as u64;
        failpoint::hit("journal_after_write");
    }
    progress.written.fetch_max(upto, Ordering::AcqRel);
    if sync {
        io.file.sync_data().map_err(|e| io_err(&path, e))?;
        failpoint::hit("journal_after_fsync");
        progress.synced.fetch_max(upto, Ordering::AcqRel);
    }
    Ok(())
}

/// Replaces the snapshot with `snap` (which names generation `io.generation + 1`) and starts
/// that journal generation.
fn compact(io: &mut JournalIo, snap: &[u8]) -> Result<(), StorageError> {
    let next = io.generation + 1;
    let new_path = io.files.journal(next);
    let file = io
        .vfs
        .open(&new_path, OpenMode::Truncate)
        .map_err(|e| io_err(&new_path, e))?;
    write_file_atomic(io.vfs.as_ref(), &io.files.snapshot(), snap)?;
    let old = io.files.journal(io.generation);
    if let Err(e) = io.vfs.remove_file(&old) {
        warn!(message = "Could not delete a compacted cursor journal.", path = %old.display(), error = %e);
    }
    debug!(message = "Compacted cursor journal into a snapshot.", path = %io.files.snapshot().display(), generation = next, journal_bytes = io.len);
    io.generation = next;
    io.file = file;
    io.len = 0;
    Ok(())
}

/// The cursor stems present in a `cursors/` directory (snapshots), deleting leftovers:
/// temporary files and journals of other generations are removed by [`cleanup_leftovers`].
pub(crate) fn list_stems(
    vfs: &dyn Vfs,
    dir: &std::path::Path,
) -> Result<Vec<String>, StorageError> {
    if !vfs.exists(dir).map_err(|e| io_err(dir, e))? {
        return Ok(Vec::new());
    }
    let mut stems = Vec::new();
    for e in vfs.read_dir(dir).map_err(|e| io_err(dir, e))? {
        if let Some(stem) = e.name.strip_suffix(".snap")
            && !e.is_dir
        {
            stems.push(stem.to_owned());
        }
    }
    stems.sort();
    Ok(stems)
}

/// Removes temporary files and journals no snapshot refers to. Blocking.
pub(crate) fn cleanup_leftovers(
    vfs: &dyn Vfs,
    dir: &std::path::Path,
    live: &[(String, u64)],
) -> Result<(), StorageError> {
    if !vfs.exists(dir).map_err(|e| io_err(dir, e))? {
        return Ok(());
    }
    for e in vfs.read_dir(dir).map_err(|e| io_err(dir, e))? {
        if e.is_dir || e.name.ends_with(".snap") {
            continue;
        }
        let path = dir.join(&e.name);
        let keep = live.iter().any(|(stem, generation)| {
            CursorFiles {
                dir: dir.to_path_buf(),
                stem: stem.clone(),
            }
            .journal(*generation)
                == path
        });
        if !keep {
            let what = if e.name.ends_with(".tmp") {
                "temporary file"
            } else {
                "stale journal"
            };
            debug!(message = "Removing a cursor file no snapshot refers to.", path = %path.display(), what);
            vfs.remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(())
}
