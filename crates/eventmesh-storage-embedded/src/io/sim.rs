//! An in-memory [`Vfs`] that simulates power cuts, for tests.
//!
//! It keeps, per file, what a reader sees now and what would survive a power cut (what was last
//! fsynced), and per directory which entries would survive (what was last made durable by
//! `sync_dir`). [`SimVfs::power_cut`] throws the volatile state away: a file keeps its synced
//! bytes plus, at random, nothing, a prefix of the unsynced bytes (tearing a record), or such a
//! prefix followed by zeros (a file whose size reached the disk before its data); entries not made
//! durable vanish. Handles opened before the cut fail afterwards, so a store that lived before
//! the cut cannot write after it.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{DirEntry, OpenMode, VFile, Vfs};

#[derive(Debug, Default)]
struct SimData {
    content: Vec<u8>,
    durable: Vec<u8>,
    /// Every byte below this is equal in `content` and `durable`.
    dirty_from: usize,
}

#[derive(Debug)]
struct SimState {
    generation: u64,
    next_id: u64,
    files: HashMap<u64, SimData>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    space_left: Option<u64>,
    fail_sync: bool,
    /// Mutating operations left before an armed power cut happens (instead of that operation).
    cut_after: Option<u64>,
    cuts: u64,
    rng: StdRng,
}

/// The simulated file system; clones share state.
#[derive(Clone, Debug)]
pub(crate) struct SimVfs {
    state: Arc<Mutex<SimState>>,
}

fn stale() -> io::Error {
    io::Error::other("simulated power cut: this handle belongs to a previous boot")
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl SimVfs {
    /// A file system holding only `/` and `root` (both durable), with a seeded RNG.
    pub(crate) fn new(root: &Path, seed: u64) -> Self {
        let mut dirs = BTreeSet::new();
        for a in root.ancestors() {
            if !a.as_os_str().is_empty() {
                dirs.insert(a.to_path_buf());
            }
        }
        SimVfs {
            state: Arc::new(Mutex::new(SimState {
                generation: 0,
                next_id: 0,
                files: HashMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                durable_dirs: dirs.clone(),
                dirs,
                space_left: None,
                fail_sync: false,
                cut_after: None,
                cuts: 0,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    /// Simulates a power cut now (see the module docs).
    pub(crate) fn power_cut(&self) {
        cut(&mut self.state.lock());
    }

    /// Arms a power cut that happens instead of the `n`-th next mutating operation (append,
    /// fsync, truncate, create, rename, remove), so it can fall between any two of them.
    pub(crate) fn arm_power_cut(&self, n: u64) {
        self.state.lock().cut_after = Some(n.max(1));
    }

    /// Whether the armed cut has happened; disarms it.
    pub(crate) fn disarm(&self) -> bool {
        let mut s = self.state.lock();
        let fired = s.cut_after.is_none();
        s.cut_after = None;
        fired
    }

    /// How many power cuts happened.
    pub(crate) fn cuts(&self) -> u64 {
        self.state.lock().cuts
    }

    /// Limits the bytes appends may still add (None: unlimited). An append past the limit writes
    /// what fits and fails with `StorageFull`.
    pub(crate) fn set_space_left(&self, bytes: Option<u64>) {
        self.state.lock().space_left = bytes;
    }

    /// Makes every `sync_data` fail with an I/O error.
    pub(crate) fn set_fail_sync(&self, fail: bool) {
        self.state.lock().fail_sync = fail;
    }

    /// The current content of a file, for assertions.
    pub(crate) fn file_content(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        s.names
            .get(path)
            .and_then(|id| s.files.get(id))
            .map(|d| d.content.clone())
    }
}

/// Throws away everything not durable (see the module docs).
fn cut(s: &mut SimState) {
    s.cuts += 1;
    s.cut_after = None;
    s.generation += 1;
    let dirs: BTreeSet<PathBuf> = s.durable_dirs.clone();
    let alive_dirs: BTreeSet<PathBuf> = dirs
        .iter()
        .filter(|d| {
            d.ancestors()
                .skip(1)
                .all(|a| a.as_os_str().is_empty() || dirs.contains(a))
        })
        .cloned()
        .collect();
    let names: BTreeMap<PathBuf, u64> = s
        .durable_names
        .iter()
        .filter(|(p, _)| p.parent().is_some_and(|d| alive_dirs.contains(d)))
        .map(|(p, id)| (p.clone(), *id))
        .collect();
    let live: BTreeSet<u64> = names.values().copied().collect();
    s.files.retain(|id, _| live.contains(id));
    let ids: Vec<u64> = s.files.keys().copied().collect();
    for id in ids {
        let mode = s.rng.random_range(0..3u8);
        let cut = s.rng.random::<u64>();
        let zeros = s.rng.random_range(1..64usize);
        let Some(d) = s.files.get_mut(&id) else {
            continue;
        };
        let keep = d.dirty_from.min(d.durable.len()).min(d.content.len());
        let mut out: Vec<u8> = match mode {
            0 => d.durable.clone(),
            _ => {
                let extra = d.content.len() - keep;
                let n = if extra == 0 {
                    0
                } else {
                    (cut % (extra as u64 + 1)) as usize
                };
                let mut v = d.content[..keep].to_vec();
                v.extend_from_slice(&d.content[keep..keep + n]);
                v
            }
        };
        if mode == 2 && d.content.len() > keep {
            out.extend(std::iter::repeat_n(0u8, zeros));
        }
        d.dirty_from = out.len();
        d.durable = out.clone();
        d.content = out;
    }
    s.dirs = alive_dirs.clone();
    s.durable_dirs = alive_dirs;
    s.durable_names = names.clone();
    s.names = names;
}

/// Counts down an armed cut; `Err` when this operation is the one the cut replaces.
fn tick(s: &mut SimState) -> io::Result<()> {
    if let Some(n) = s.cut_after.as_mut() {
        *n -= 1;
        if *n == 0 {
            cut(s);
            return Err(stale());
        }
    }
    Ok(())
}

#[derive(Debug)]
struct SimFile {
    vfs: SimVfs,
    id: u64,
    generation: u64,
}

impl SimFile {
    fn with<R>(&self, f: impl FnOnce(&mut SimState, u64) -> io::Result<R>) -> io::Result<R> {
        let mut s = self.vfs.state.lock();
        if s.generation != self.generation {
            return Err(stale());
        }
        f(&mut s, self.id)
    }
}

impl VFile for SimFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.with(|s, id| {
            tick(s)?;
            let fits = match s.space_left {
                Some(left) => (left.min(buf.len() as u64)) as usize,
                None => buf.len(),
            };
            if let Some(left) = s.space_left.as_mut() {
                *left -= fits as u64;
            }
            let d = s.files.get_mut(&id).ok_or_else(stale)?;
            let len = d.content.len();
            d.dirty_from = d.dirty_from.min(len);
            d.content.extend_from_slice(&buf[..fits]);
            if fits < buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device (simulated)",
                ));
            }
            Ok(())
        })
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|s, id| {
            let d = s.files.get(&id).ok_or_else(stale)?;
            let start =
                usize::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            let end = start
                .checked_add(buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            if end > d.content.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past end of file",
                ));
            }
            buf.copy_from_slice(&d.content[start..end]);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|s, id| {
            tick(s)?;
            if s.fail_sync {
                return Err(io::Error::other("simulated fsync failure"));
            }
            let d = s.files.get_mut(&id).ok_or_else(stale)?;
            let from = d.dirty_from.min(d.durable.len());
            d.durable.truncate(from);
            d.durable.extend_from_slice(&d.content[from..]);
            d.dirty_from = d.content.len();
            Ok(())
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|s, id| {
            tick(s)?;
            let len =
                usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let d = s.files.get_mut(&id).ok_or_else(stale)?;
            let old = d.content.len();
            d.content.resize(len, 0);
            d.dirty_from = d.dirty_from.min(len.min(old));
            if let Some(left) = s.space_left.as_mut()
                && old > len
            {
                *left += (old - len) as u64;
            }
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|s, id| Ok(s.files.get(&id).ok_or_else(stale)?.content.len() as u64))
    }
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        for a in path.ancestors() {
            if !a.as_os_str().is_empty() {
                s.dirs.insert(a.to_path_buf());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>> {
        let mut s = self.state.lock();
        if mode != OpenMode::Existing {
            tick(&mut s)?;
        }
        let parent_ok = path.parent().is_some_and(|p| s.dirs.contains(p));
        let id = match (s.names.get(path).copied(), mode) {
            (Some(id), OpenMode::Truncate) => {
                let d = s.files.entry(id).or_default();
                d.content.clear();
                d.dirty_from = 0;
                id
            }
            (Some(id), _) => id,
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, _) => {
                if !parent_ok {
                    return Err(not_found(path));
                }
                let id = s.next_id;
                s.next_id += 1;
                s.files.insert(id, SimData::default());
                s.names.insert(path.to_path_buf(), id);
                id
            }
        };
        let generation = s.generation;
        Ok(Arc::new(SimFile {
            vfs: self.clone(),
            id,
            generation,
        }))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.state.lock();
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut out = Vec::new();
        for p in s.names.keys().filter(|p| p.parent() == Some(path)) {
            out.push(DirEntry {
                name: file_name(p),
                is_dir: false,
            });
        }
        for p in s.dirs.iter().filter(|p| p.parent() == Some(path)) {
            out.push(DirEntry {
                name: file_name(p),
                is_dir: true,
            });
        }
        Ok(out)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.state.lock();
        Ok(s.names.contains_key(path) || s.dirs.contains(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        tick(&mut s)?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        tick(&mut s)?;
        s.names.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        tick(&mut s)?;
        s.names.retain(|p, _| !p.starts_with(path));
        s.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        tick(&mut s)?;
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let current: Vec<(PathBuf, u64)> = s
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        s.durable_names.retain(|p, _| p.parent() != Some(path));
        s.durable_names.extend(current);
        let current_dirs: Vec<PathBuf> = s
            .dirs
            .iter()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        let removed: Vec<PathBuf> = s
            .durable_dirs
            .iter()
            .filter(|p| p.parent() == Some(path) && !current_dirs.contains(p))
            .cloned()
            .collect();
        for r in removed {
            s.durable_dirs.retain(|p| !p.starts_with(&r));
            s.durable_names.retain(|p, _| !p.starts_with(&r));
        }
        s.durable_dirs.extend(current_dirs);
        Ok(())
    }

    fn try_lock(&self, _path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        Ok(Some(Box::new(())))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_entries_are_lost_or_torn() {
        let root = Path::new("/sim");
        let vfs = SimVfs::new(root, 7);
        vfs.create_dir_all(&root.join("d")).unwrap();
        vfs.sync_dir(root).unwrap();
        let p = root.join("d/f");
        let f = vfs.open(&p, OpenMode::Create).unwrap();
        f.append(b"hello").unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(&root.join("d")).unwrap();
        f.append(b" world").unwrap();
        let unsynced = root.join("d/g");
        vfs.open(&unsynced, OpenMode::Create).unwrap();
        vfs.power_cut();
        let c = vfs.file_content(&p).unwrap();
        assert!(c.starts_with(b"hello"), "{c:?}");
        assert!(c.len() <= 5 + 6 + 64);
        assert!(vfs.file_content(&unsynced).is_none());
        assert!(
            f.append(b"x").is_err(),
            "stale handles fail after a power cut"
        );
    }
}
