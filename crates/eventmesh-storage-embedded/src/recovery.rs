//! Opening a partition's log: scanning every segment, truncating a torn tail, refusing
//! corruption.
//!
//! Rules (see the crate docs): every frame's length and checksum are checked and sequence
//! numbers must be contiguous within and across segments. A bad frame that is the last thing in
//! the *last* segment (an incomplete header, a frame running past the end of the file, a
//! zero-filled tail, a checksum failure with nothing but zeros or the end of the file after it)
//! is a torn write: the file is truncated there (and fsynced) with a warning naming the file and
//! offset. Any other bad frame, or any bad frame in an earlier segment, is corruption: the log
//! refuses to open with [`StorageError::Corrupt`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventmesh_storage::StorageError;
use tracing::{info, warn};

use crate::index::{IndexCadence, IndexEntry};
use crate::io::{OpenMode, VFile, Vfs, io_err};
use crate::log::{Log, LogConfig, WriterState};
use crate::segment::{
    FRAME_HEADER, MIN_PAYLOAD, Segment, parse_segment_file_name, payload_seq, payload_time,
    segment_path,
};

const SCAN_CHUNK: usize = 1024 * 1024;

/// How many torn tails recovery cut (tests check the power-cut test exercises the path).
#[cfg(test)]
pub(crate) static TORN_TAILS_CUT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Reads a file sequentially through a window.
struct Window<'a> {
    file: &'a dyn VFile,
    path: &'a Path,
    len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl<'a> Window<'a> {
    /// `len` bytes at `pos` (which must lie within the file).
    fn get(&mut self, pos: u64, len: usize) -> Result<&[u8], StorageError> {
        let end = pos + len as u64;
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let n = (self.len - pos).min(len.max(SCAN_CHUNK) as u64) as usize;
            self.buf.resize(n, 0);
            self.file
                .read_at(pos, &mut self.buf)
                .map_err(|e| io_err(self.path, e))?;
            self.start = pos;
        }
        let off = (pos - self.start) as usize;
        Ok(&self.buf[off..off + len])
    }

    /// Whether every byte from `pos` to the end of the file is zero.
    fn zero_from(&mut self, mut pos: u64) -> Result<bool, StorageError> {
        while pos < self.len {
            let n = (self.len - pos).min(SCAN_CHUNK as u64) as usize;
            if self.get(pos, n)?.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }
}

/// What the scan of one segment found.
pub(crate) struct Scan {
    pub(crate) end_pos: u64,
    pub(crate) end_seq: u64,
    pub(crate) index: Vec<IndexEntry>,
    pub(crate) running: i64,
    pub(crate) cadence: IndexCadence,
    /// A torn tail to cut: (offset, reason).
    pub(crate) torn: Option<(u64, String)>,
}

/// Scans one segment starting at `base`, with the running time carried from earlier segments.
pub(crate) fn scan_segment(
    file: &dyn VFile,
    path: &Path,
    base: u64,
    last: bool,
    mut running: i64,
    cfg: &LogConfig,
) -> Result<Scan, StorageError> {
    let len = file.len().map_err(|e| io_err(path, e))?;
    let mut w = Window {
        file,
        path,
        len,
        buf: Vec::new(),
        start: 0,
    };
    let mut cadence = IndexCadence::new(cfg.index_interval, None);
    let mut index = Vec::new();
    let mut pos = 0u64;
    let mut seq = base;
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let torn = 'scan: loop {
        if pos == len {
            break None;
        }
        let bad: (String, bool) = 'frame: {
            if len - pos < FRAME_HEADER as u64 {
                break 'frame (
                    format!("incomplete record header ({} bytes)", len - pos),
                    true,
                );
            }
            let h = w.get(pos, FRAME_HEADER)?;
            let plen = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if !(MIN_PAYLOAD..=cfg.max_payload).contains(&plen) {
                if w.zero_from(pos)? {
                    break 'frame ("zero-filled tail".into(), true);
                }
                break 'frame (format!("invalid record length {plen}"), false);
            }
            let end = pos + (FRAME_HEADER + plen) as u64;
            if end > len {
                break 'frame (
                    format!("record of {plen} bytes runs past the end of the file ({len} bytes)"),
                    true,
                );
            }
            let payload = w.get(pos + FRAME_HEADER as u64, plen)?;
            if crc32c::crc32c(payload) != crc {
                let only_zeros_after = w.zero_from(end)?;
                break 'frame ("record checksum mismatch".into(), only_zeros_after);
            }
            let got = payload_seq(payload).unwrap_or(u64::MAX);
            if got != seq {
                return Err(corrupt(
                    pos,
                    format!("record has sequence number {got}, expected {seq}"),
                ));
            }
            let Some(t) = payload_time(payload) else {
                return Err(corrupt(pos, "record has an unknown format version".into()));
            };
            running = running.max(t);
            let flen = (FRAME_HEADER + plen) as u64;
            if cadence.on_frame(flen) {
                index.push(IndexEntry {
                    seq,
                    pos,
                    time: running,
                });
            }
            pos = end;
            seq += 1;
            continue 'scan;
        };
        let (reason, tail_only) = bad;
        if last && tail_only {
            break Some((pos, reason));
        }
        let reason = if last {
            format!("{reason}, followed by more data")
        } else {
            format!("{reason} in a sealed (non-last) segment")
        };
        return Err(corrupt(pos, reason));
    };
    Ok(Scan {
        end_pos: pos,
        end_seq: seq,
        index,
        running,
        cadence,
        torn,
    })
}

/// Opens (recovering) the log of one partition in `dir`, creating an empty one if `dir` holds no
/// segment.
pub(crate) fn open_log(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    cfg: &LogConfig,
) -> Result<Log, StorageError> {
    vfs.create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut bases: Vec<u64> = Vec::new();
    for entry in vfs.read_dir(dir).map_err(|e| io_err(dir, e))? {
        if entry.is_dir {
            continue;
        }
        match parse_segment_file_name(&entry.name) {
            Some(base) => bases.push(base),
            None => {
                warn!(message = "Ignoring an unknown file in a partition directory.", path = %dir.join(&entry.name).display())
            }
        }
    }
    bases.sort_unstable();
    if bases.is_empty() {
        let path = segment_path(dir, 0);
        vfs.open(&path, OpenMode::Truncate)
            .map_err(|e| io_err(&path, e))?;
        vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
        bases.push(0);
    }
    let mut segments = Vec::with_capacity(bases.len());
    let mut running = i64::MIN;
    let mut expected: Option<(u64, PathBuf)> = None;
    let mut writer = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base);
        if let Some((end, prev)) = &expected
            && *end != base
        {
            return Err(StorageError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at sequence number {base} but {} ends at {end}",
                    prev.display()
                ),
            });
        }
        let last = i + 1 == bases.len();
        let file = vfs
            .open(&path, OpenMode::Existing)
            .map_err(|e| io_err(&path, e))?;
        let scan = scan_segment(file.as_ref(), &path, base, last, running, cfg)?;
        if let Some((offset, reason)) = &scan.torn {
            #[cfg(test)]
            TORN_TAILS_CUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            warn!(message = "Truncating a torn write at the end of the log.", path = %path.display(), offset, reason = %reason);
            file.truncate(*offset).map_err(|e| io_err(&path, e))?;
            file.sync_data().map_err(|e| io_err(&path, e))?;
        }
        running = scan.running;
        if last {
            writer = Some(WriterState::new(
                scan.end_pos,
                scan.end_seq,
                running,
                scan.cadence,
            ));
        }
        segments.push(Arc::new(Segment::new(
            base,
            path.clone(),
            file,
            scan.index,
            scan.end_pos,
            scan.end_seq,
            running,
        )));
        expected = Some((scan.end_seq, path));
    }
    let writer =
        writer.ok_or_else(|| StorageError::Backend("log has no segment (a bug)".into()))?;
    info!(message = "Opened log.", dir = %dir.display(), segments = segments.len(), start = bases[0], next = writer.next_seq);
    Ok(Log::new(
        dir.to_path_buf(),
        Arc::clone(vfs),
        cfg.clone(),
        segments,
        writer,
    ))
}
