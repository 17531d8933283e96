//! The conformance kit's own tests on the embedded store: each deliberately faulty wrapper must
//! make the scenarios listed by `Fault::caught_by` fail (restarts are real: the wrapper closes
//! and reopens the data directory), and the faithful wrapper must pass the whole kit.

use std::path::Path;

use eventmesh_storage::StorageResult;
use eventmesh_storage::testkit::DirFactory;
use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore};

fn open(dir: &Path) -> StorageResult<EmbeddedStore> {
    EmbeddedStore::open(EmbeddedOptions::new(dir))
}

eventmesh_storage::fault_detection_tests!(DirFactory::new(open));
