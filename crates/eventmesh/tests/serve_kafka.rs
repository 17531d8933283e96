//! `eventmesh serve --store kafka --store-url kafka://…` (the real binary) in front of a private
//! tansu broker (Kafka-compatible, on free loopback ports), with `eventmesh sub` and
//! `eventmesh pub` as clients: the events go through Kafka and come out of the subscriber.
//! A missing `tansu` fails the test (scripts/install-brokers installs it).

#![cfg(feature = "kafka")]

use std::path::Path;
use std::process::Command;

use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary};

mod common;

use common::serve_store::{Serve, carry};

/// A tansu broker (in-memory engine) on a free port, working and logging in `dir`, ready once it
/// accepts connections; killed when the returned process is dropped. Panics with the end of its
/// log if it does not start.
fn start_tansu(dir: &Path) -> (u16, ChildProcess) {
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

#[test]
fn should_carry_events_through_kafka() {
    let dir = tempfile::tempdir().expect("dir");
    // Declared after `dir`: killed before its directory is removed.
    let (port, _broker) = start_tansu(dir.path());
    let serve = Serve::start(
        "kafka",
        &format!("kafka://127.0.0.1:{port}"),
        &dir.path().join("node"),
        "Opened the Kafka store.",
        &String::new,
    );
    let data = carry(&serve, "T-kafka", "g-kafka", &["one", "two"], &String::new);
    assert_eq!(data, ["one", "two"]);
    serve.stop();
}
