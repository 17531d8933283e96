//! The storage conformance kit against the memory store (volatile: the restart scenario is
//! skipped, loudly).

use eventmesh_storage::testkit::{Outcome, Scenario, VolatileFactory, run_all};
use eventmesh_storage_memory::MemoryStore;

eventmesh_storage::conformance_tests!(VolatileFactory::new(MemoryStore::new));

/// `run_all` on a volatile store passes every scenario but the restart one, which it reports as
/// skipped rather than passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_reports_the_restart_scenario_as_skipped() {
    let report = match run_all(&VolatileFactory::new(MemoryStore::new)).await {
        Ok(r) => r,
        Err(failure) => panic!("{failure}"),
    };
    print!("{report}");
    assert_eq!(report.skipped(), vec![Scenario::RestartDurability]);
    assert_eq!(report.results.len(), Scenario::ALL.len());
    assert!(
        report
            .results
            .iter()
            .all(|(s, o, _)| *s == Scenario::RestartDurability || *o == Outcome::Passed)
    );
}
