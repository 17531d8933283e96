//! The storage conformance kit against the embedded store, in a fresh temporary data directory
//! per scenario (durable: the restart scenario runs, by closing and reopening the directory).

use std::path::Path;

use eventmesh_storage::StorageResult;
use eventmesh_storage::testkit::DirFactory;
use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore};

fn open(dir: &Path) -> StorageResult<EmbeddedStore> {
    EmbeddedStore::open(EmbeddedOptions::new(dir))
}

eventmesh_storage::conformance_tests!(DirFactory::new(open));
