//! Segment files and the record frame.
//!
//! A segment is a file `<base seq, 20 zero-padded digits>.log` holding consecutive frames:
//!
//! ```text
//! u32 len (LE)     length of the payload
//! u32 crc (LE)     crc32c of the payload
//! payload:         u64 seq (LE) + EventRecord::encode bytes
//! ```
//!
//! The first frame of a segment has sequence number `base`, and each next frame the one after.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use eventmesh_core::EventRecord;
use eventmesh_storage::StorageError;
use parking_lot::RwLock;

use crate::index::{self, IndexEntry};
use crate::io::{VFile, io_err};

/// Bytes before the payload: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;
/// Bytes of the payload before the record: the sequence number.
pub(crate) const SEQ_BYTES: usize = 8;
/// Where the record's ingest time sits in a payload (seq, version, flags, id).
const TIME_AT: usize = SEQ_BYTES + 1 + 2 + 16;
/// The shortest payload that can hold a record (up to and including its ingest time).
pub(crate) const MIN_PAYLOAD: usize = TIME_AT + 8;
/// The record format version this store writes and reads.
const RECORD_VERSION: u8 = eventmesh_core::record::RECORD_VERSION;

/// The file name of the segment starting at `base`.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// The base sequence number of a segment file name, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends a frame for `record` to `out` with the sequence number and checksum left blank (the
/// writer fills them in with [`seal_frame`]); returns the record's encoded length.
pub(crate) fn encode_frame(record: &EventRecord, out: &mut BytesMut) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER + SEQ_BYTES]);
    record.encode(out);
    let payload = out.len() - start - FRAME_HEADER;
    // Callers check the size against `max_event_bytes` (far below u32::MAX) right after.
    let len = u32::try_from(payload).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    payload - SEQ_BYTES
}

/// Reads the payload length of the frame at `buf[at..]`.
pub(crate) fn frame_len(buf: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

/// Writes `seq` and the checksum into the frame at `buf[at..]` (built by [`encode_frame`]) and
/// returns the frame's total length and the record's ingest time.
pub(crate) fn seal_frame(buf: &mut [u8], at: usize, seq: u64) -> Option<(usize, i64)> {
    let len = frame_len(buf, at)?;
    let p = at + FRAME_HEADER;
    let payload = buf.get_mut(p..p + len)?;
    payload[..SEQ_BYTES].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(payload);
    let time = payload_time(payload)?;
    buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    Some((FRAME_HEADER + len, time))
}

/// The sequence number of a payload.
pub(crate) fn payload_seq(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(
        payload.get(..SEQ_BYTES)?.try_into().ok()?,
    ))
}

/// The record's ingest time in a payload, if the record is of the known version.
pub(crate) fn payload_time(payload: &[u8]) -> Option<i64> {
    if *payload.get(SEQ_BYTES)? != RECORD_VERSION {
        return None;
    }
    Some(i64::from_le_bytes(
        payload.get(TIME_AT..TIME_AT + 8)?.try_into().ok()?,
    ))
}

/// One segment of a partition's log.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The sequence number of its first record.
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn VFile>,
    pub(crate) index: RwLock<Vec<IndexEntry>>,
    /// Bytes readers may read (every record below is complete and durable per the policy).
    pub(crate) end_pos: AtomicU64,
    /// One past the last sequence number readers may read.
    pub(crate) end_seq: AtomicU64,
    /// The indexed time of its last record (or of the previous segment's, when empty).
    pub(crate) max_time: AtomicI64,
}

impl Segment {
    pub(crate) fn new(
        base: u64,
        path: PathBuf,
        file: Arc<dyn VFile>,
        index: Vec<IndexEntry>,
        end_pos: u64,
        end_seq: u64,
        max_time: i64,
    ) -> Self {
        Segment {
            base,
            path,
            file,
            index: RwLock::new(index),
            end_pos: AtomicU64::new(end_pos),
            end_seq: AtomicU64::new(end_seq),
            max_time: AtomicI64::new(max_time),
        }
    }

    pub(crate) fn end_pos(&self) -> u64 {
        self.end_pos.load(Ordering::Acquire)
    }

    pub(crate) fn end_seq(&self) -> u64 {
        self.end_seq.load(Ordering::Acquire)
    }

    fn corrupt(&self, offset: u64, reason: String) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    /// Reads up to `max` records starting at sequence number `from` (which must be in this
    /// segment), stopping at `until` (exclusive) or the segment's visible end. Each record is
    /// checked (length, checksum, sequence number, decoding) before it is returned.
    pub(crate) fn read(
        &self,
        from: u64,
        until: u64,
        max: usize,
        out: &mut Vec<(u64, EventRecord)>,
    ) -> Result<(), StorageError> {
        let end_pos = self.end_pos();
        let until = until.min(self.end_seq());
        if from >= until || max == 0 {
            return Ok(());
        }
        let start = index::floor_seq(&self.index.read(), from);
        let (mut pos, mut seq) = start.map_or((0, self.base), |e| (e.pos, e.seq));
        let wanted = (until - from).min(max as u64);
        let mut chunk_len: u64 = (wanted * 512 + 4096).clamp(8 * 1024, 1024 * 1024);
        let target = out.len() + wanted as usize;
        while out.len() < target && pos < end_pos && seq < until {
            let n = chunk_len.min(end_pos - pos);
            let chunk = self.read_chunk(pos, n)?;
            let mut at = 0usize;
            while out.len() < target && seq < until {
                let Some(len) = frame_len(&chunk, at) else {
                    break;
                };
                if at + FRAME_HEADER + len > chunk.len() {
                    break;
                }
                let frame_pos = pos + at as u64;
                let p = at + FRAME_HEADER;
                let payload = &chunk[p..p + len];
                let crc = u32::from_le_bytes([
                    chunk[at + 4],
                    chunk[at + 5],
                    chunk[at + 6],
                    chunk[at + 7],
                ]);
                if len < MIN_PAYLOAD || crc32c::crc32c(payload) != crc {
                    return Err(self.corrupt(frame_pos, "record checksum mismatch".into()));
                }
                let got = payload_seq(payload).unwrap_or(u64::MAX);
                if got != seq {
                    return Err(self.corrupt(
                        frame_pos,
                        format!("record has sequence number {got}, expected {seq}"),
                    ));
                }
                if seq >= from {
                    let record = EventRecord::decode(&chunk.slice(p + SEQ_BYTES..p + len))
                        .map_err(|e| self.corrupt(frame_pos, format!("undecodable record: {e}")))?;
                    out.push((seq, record));
                }
                at += FRAME_HEADER + len;
                seq += 1;
            }
            if at == 0 {
                // Not one whole frame in the chunk: it must be a frame larger than the chunk.
                let need = frame_len(&chunk, 0).map(|len| (FRAME_HEADER + len) as u64);
                match need {
                    Some(need) if need > n && pos + need <= end_pos => chunk_len = need,
                    _ => {
                        return Err(
                            self.corrupt(pos, "record frame runs past the end of the log".into())
                        );
                    }
                }
            }
            pos += at as u64;
        }
        Ok(())
    }

    fn read_chunk(&self, pos: u64, n: u64) -> Result<Bytes, StorageError> {
        let n = usize::try_from(n).map_err(|_| self.corrupt(pos, "read too large".into()))?;
        let mut buf = vec![0u8; n];
        self.file
            .read_at(pos, &mut buf)
            .map_err(|e| io_err(&self.path, e))?;
        Ok(Bytes::from(buf))
    }

    /// Finds the first record whose indexed time (the running maximum of ingest times) is at or
    /// after `time`.
    pub(crate) fn find_time(&self, time: i64) -> Result<Option<u64>, StorageError> {
        let end_pos = self.end_pos();
        let end_seq = self.end_seq();
        let start = {
            let idx = self.index.read();
            match index::last_before_time(&idx, time) {
                // The first entry is the segment's first record, already at or after `time`.
                None => return Ok((!idx.is_empty() && self.base < end_seq).then_some(self.base)),
                Some(e) => e,
            }
        };
        let (mut pos, mut seq, mut running) = (start.pos, start.seq, start.time);
        while pos < end_pos && seq < end_seq {
            let header = self.read_chunk(pos, FRAME_HEADER as u64)?;
            let len = frame_len(&header, 0).unwrap_or(0);
            if len < MIN_PAYLOAD || pos + (FRAME_HEADER + len) as u64 > end_pos {
                return Err(self.corrupt(pos, format!("invalid record length {len}")));
            }
            let payload = self.read_chunk(pos + FRAME_HEADER as u64, len as u64)?;
            let t = payload_time(&payload)
                .ok_or_else(|| self.corrupt(pos, "unknown record version".into()))?;
            running = running.max(t);
            if running >= time {
                return Ok(Some(seq));
            }
            pos += (FRAME_HEADER + len) as u64;
            seq += 1;
        }
        Ok(None)
    }
}

/// The path of the segment starting at `base` in partition directory `dir`.
pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_file_name(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
    }
}
