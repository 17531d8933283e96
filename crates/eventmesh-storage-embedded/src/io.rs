//! The file-system abstraction every durable byte goes through.
//!
//! The store never touches `std::fs` directly outside this module: segments, journals,
//! snapshots, topic metadata and directory entries are all reached through [`Vfs`] and
//! [`VFile`]. Production uses [`StdVfs`]; the tests use an in-memory implementation that can
//! simulate a power cut (bytes and directory entries not yet fsynced are lost, or a random
//! prefix of them survives), which is how the durability claims are proven.

use std::any::Any;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventmesh_storage::StorageError;

/// An open file: appends at the end, positional reads, sync and truncation.
///
/// All methods take `&self` so one handle can be shared between the single writer and any number
/// of readers (readers only read below the length the writer has published).
pub(crate) trait VFile: Send + Sync + fmt::Debug {
    /// Appends all of `buf` at the end of the file. On error a prefix may have been written.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Fills `buf` from byte `pos`; fails with `UnexpectedEof` past the end.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
}

/// How [`Vfs::open`] treats a missing or existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// The file must exist.
    Existing,
    /// Create it if missing, keep its content otherwise.
    Create,
    /// Create it, or empty it if it exists.
    Truncate,
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirEntry {
    pub(crate) name: String,
    pub(crate) is_dir: bool,
}

/// The file-system operations the store needs.
pub(crate) trait Vfs: Send + Sync + fmt::Debug + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>>;
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing) for as long as the returned guard
    /// lives. `Ok(None)`: somebody else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>>;
}

/// Wraps an I/O error with the file it happened on.
pub(crate) fn io_err(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole (small) file.
pub(crate) fn read_file(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>, StorageError> {
    let f = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| io_err(path, e))?;
    let len = f.len().map_err(|e| io_err(path, e))?;
    let len = usize::try_from(len).map_err(|_| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: format!("file is {len} bytes long, too large to read into memory"),
    })?;
    let mut buf = vec![0u8; len];
    f.read_at(0, &mut buf).map_err(|e| io_err(path, e))?;
    Ok(buf)
}

/// Replaces `path` atomically with `bytes`: write a temporary file, fsync it, rename it over
/// `path`, fsync the directory. A crash leaves either the old or the new content.
pub(crate) fn write_file_atomic(
    vfs: &dyn Vfs,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let f = vfs
        .open(&tmp, OpenMode::Truncate)
        .map_err(|e| io_err(&tmp, e))?;
    f.append(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_data().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    crate::failpoint::hit("atomic_write_before_rename");
    vfs.rename(&tmp, path).map_err(|e| io_err(path, e))?;
    let dir = parent(path);
    vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    Ok(())
}

/// The temporary name [`write_file_atomic`] writes first.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The parent directory of a path the store built (never empty).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The real file system.
#[derive(Debug, Default)]
pub(crate) struct StdVfs;

#[derive(Debug)]
struct StdFile(File);

impl VFile for StdFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_at(&self.0, pos, buf)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, pos: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, pos)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut pos: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past end of file",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Vfs for StdVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>> {
        let mut o = OpenOptions::new();
        o.read(true).append(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                o.create(true);
            }
            OpenMode::Truncate => {
                // `truncate` cannot be combined with `append`; empty it after opening.
                o.create(true);
            }
        }
        let f = o.open(path)?;
        if mode == OpenMode::Truncate {
            f.set_len(0)?;
        }
        Ok(Arc::new(StdFile(f)))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(DirEntry {
                name,
                is_dir: entry.file_type()?.is_dir(),
            });
        }
        Ok(out)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(path)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
pub(crate) mod sim;
