//! The storage conformance kit against the memory store (volatile: the restart scenario is
//! skipped, loudly).

use eventmesh_storage::testkit::{Scenario, VolatileFactory, restart_durability};
use eventmesh_storage_memory::MemoryStore;

eventmesh_storage::conformance_tests!(VolatileFactory::new(MemoryStore::new));

/// A volatile store skips the restart scenario — and only that one. (`run_all` itself runs in
/// `kit_detects_faults.rs`, against the faithful wrapper that simulates restarts.)
#[tokio::test]
async fn only_the_restart_scenario_is_skipped_for_a_volatile_store() {
    let factory = VolatileFactory::new(MemoryStore::new);
    let skipped: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| s.skipped_for(&factory))
        .collect();
    assert_eq!(skipped, vec![Scenario::RestartDurability]);
    assert_eq!(restart_durability(&factory).await, Ok(()));
}
