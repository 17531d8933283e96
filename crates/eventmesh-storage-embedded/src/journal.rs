//! Cursor persistence: snapshots and journals.
//!
//! Each cursor has, in its topic's `cursors/` directory:
//! * `<stem>.snap`: the state at some point, replaced atomically (temporary file, fsync, rename,
//!   directory fsync); it names the journal generation that continues it;
//! * `<stem>.<generation, 20 digits>.jnl`: the ops applied since, each framed
//!   `[u32 len][u32 crc32c][op]`.
//!
//! Loading reads the snapshot and replays its journal. A torn tail of the journal (same rules as
//! the log's last segment) is cut with a warning; anything else that is bad refuses to open.
//! Journals of other generations are leftovers of an interrupted compaction and are deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventmesh_storage::StorageError;
use tracing::warn;

use crate::codec::{Reader, put_str, put_u64};
use crate::cursor::{Clock, CursorState, Op};
use crate::io::{OpenMode, VFile, Vfs, io_err, read_file};

const SNAP_MAGIC: &[u8; 4] = b"EMCS";
const SNAP_VERSION: u8 = 1;
/// The largest journal record accepted as plausible.
const MAX_OP_BYTES: usize = 64 * 1024 * 1024;

/// Who a cursor belongs to, as kept in its snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) member: Option<String>,
}

impl Identity {
    /// The file stem: `c.<group>` for a CLUSTERING cursor, `b.<group>.<member>` for a
    /// BROADCASTING one (components encoded by [`crate::names`]).
    pub(crate) fn stem(&self) -> String {
        match &self.member {
            None => format!("c.{}", crate::names::safe_name(&self.group)),
            Some(m) => crate::names::safe_name_pair("b", &self.group, m),
        }
    }
}

/// Where a cursor's files are.
#[derive(Clone, Debug)]
pub(crate) struct CursorFiles {
    pub(crate) dir: PathBuf,
    pub(crate) stem: String,
}

impl CursorFiles {
    pub(crate) fn snapshot(&self) -> PathBuf {
        self.dir.join(format!("{}.snap", self.stem))
    }

    pub(crate) fn journal(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{}.{generation:020}.jnl", self.stem))
    }
}

/// Encodes a snapshot.
pub(crate) fn encode_snapshot(id: &Identity, generation: u64, st: &CursorState) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(SNAP_MAGIC);
    out.push(SNAP_VERSION);
    put_u64(&mut out, generation);
    put_str(&mut out, &id.topic);
    put_str(&mut out, &id.group);
    match &id.member {
        Some(m) => {
            out.push(1);
            put_str(&mut out, m);
        }
        None => out.push(0),
    }
    st.encode(&mut out);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a snapshot file's bytes.
pub(crate) fn decode_snapshot(
    path: &Path,
    bytes: &[u8],
    clock: &Clock,
) -> Result<(Identity, u64, CursorState), StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.into(),
    };
    if bytes.len() < 4 + SNAP_MAGIC.len() {
        return Err(corrupt("cursor snapshot is truncated"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(corrupt("cursor snapshot checksum mismatch"));
    }
    let mut r = Reader::new(body);
    if r.take(4) != Some(&SNAP_MAGIC[..]) || r.u8() != Some(SNAP_VERSION) {
        return Err(corrupt("not a cursor snapshot of a known version"));
    }
    let parsed = (|| {
        let generation = r.u64()?;
        let topic = r.str()?.to_owned();
        let group = r.str()?.to_owned();
        let member = match r.u8()? {
            0 => None,
            1 => Some(r.str()?.to_owned()),
            _ => return None,
        };
        let st = CursorState::decode(&mut r, clock)?;
        r.is_empty().then_some((
            Identity {
                topic,
                group,
                member,
            },
            generation,
            st,
        ))
    })();
    parsed.ok_or_else(|| corrupt("malformed cursor snapshot"))
}

/// Replays the journal at `path` onto `st`; cuts a torn tail. Returns the file and its length.
pub(crate) fn replay(
    vfs: &dyn Vfs,
    path: &Path,
    st: &mut CursorState,
    clock: &Clock,
) -> Result<(Arc<dyn VFile>, u64), StorageError> {
    let file = vfs
        .open(path, OpenMode::Create)
        .map_err(|e| io_err(path, e))?;
    let bytes = read_file(vfs, path)?;
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let zero_from = |at: usize| {
        bytes
            .get(at..)
            .is_none_or(|rest| rest.iter().all(|b| *b == 0))
    };
    let mut pos = 0usize;
    let torn: Option<String> = loop {
        if pos == bytes.len() {
            break None;
        }
        if bytes.len() - pos < 8 {
            break Some("incomplete journal record header".into());
        }
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        if len == 0 || len > MAX_OP_BYTES {
            if zero_from(pos) {
                break Some("zero-filled tail".into());
            }
            return Err(corrupt(
                pos,
                format!("invalid journal record length {len}, followed by more data"),
            ));
        }
        let end = pos + 8 + len;
        if end > bytes.len() {
            break Some(format!(
                "journal record of {len} bytes runs past the end of the file"
            ));
        }
        let body = &bytes[pos + 8..end];
        if crc32c::crc32c(body) != crc {
            if zero_from(end) {
                break Some("journal record checksum mismatch at the end of the file".into());
            }
            return Err(corrupt(
                pos,
                "journal record checksum mismatch, followed by more data".into(),
            ));
        }
        let op =
            Op::decode(body).ok_or_else(|| corrupt(pos, "undecodable journal record".into()))?;
        st.apply(&op, clock);
        pos = end;
    };
    if let Some(reason) = torn {
        warn!(message = "Truncating a torn write at the end of a cursor journal.", path = %path.display(), offset = pos, reason = %reason);
        file.truncate(pos as u64).map_err(|e| io_err(path, e))?;
        file.sync_data().map_err(|e| io_err(path, e))?;
    }
    Ok((file, pos as u64))
}
