//! A private tansu broker (Kafka-compatible, in-memory engine) on a free loopback port.

use std::path::Path;
use std::process::Command;

use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary};

/// A tansu broker (in-memory engine) on a free port, working and logging in `dir`, ready once it
/// accepts connections; killed when the returned process is dropped. Panics with the end of its
/// log if it does not start, and when there is no `tansu` (scripts/install-brokers installs it).
pub fn start_tansu(dir: &Path) -> (u16, ChildProcess) {
    let bin = find_binary(
        "tansu",
        Some("TANSU"),
        &[Place::CargoBin, Place::Path],
        "This test runs against a real Kafka-compatible broker and does not skip; install it \
         with scripts/install-brokers, or point TANSU at the binary.",
    );
    ChildProcess::spawn_on_free_port(5, |port| {
        let (bin, dir) = (bin.clone(), dir.to_path_buf());
        ChildProcess::new(
            format!("tansu on port {port}"),
            dir.join("tansu.log"),
            move || {
                let listener = format!("tcp://127.0.0.1:{port}");
                let mut cmd = Command::new(&bin);
                cmd.arg("broker")
                    .args(["--listener-url", &listener])
                    .args(["--advertised-listener-url", &listener])
                    .args(["--storage-engine", "memory://tansu/"])
                    .env("CLUSTER_ID", "eventmesh-test")
                    .env("RUST_LOG", "warn")
                    .current_dir(&dir);
                cmd
            },
            Readiness::tcp(port),
        )
    })
    .unwrap_or_else(|e| panic!("tansu did not start: {e}"))
}
