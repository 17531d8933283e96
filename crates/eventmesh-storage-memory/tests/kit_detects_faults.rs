//! The conformance kit's own tests: each deliberately faulty wrapper of the memory store must
//! make the scenarios listed by `Fault::caught_by` fail, and the faithful wrapper (which
//! simulates restarts on the one in-memory instance, so the restart scenario runs) must pass the
//! whole kit.

use eventmesh_storage::testkit::VolatileFactory;
use eventmesh_storage_memory::MemoryStore;

eventmesh_storage::fault_detection_tests!(VolatileFactory::new(MemoryStore::new));
