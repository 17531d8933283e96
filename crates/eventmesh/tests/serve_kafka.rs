//! `eventmesh serve --store kafka --store-url kafka://…` (the real binary) in front of a private
//! tansu broker (Kafka-compatible, on free loopback ports), with `eventmesh sub` and
//! `eventmesh pub` as clients: the events go through Kafka and come out of the subscriber.
//! A missing `tansu` fails the test (scripts/install-brokers installs it).

#![cfg(feature = "kafka")]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary, free_port};

mod common;

use common::{eventmesh, lines, wait_exit, wait_for};

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
    let tcp = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("node");
    let mut serve = eventmesh(&[
        "serve",
        "--store",
        "kafka",
        "--store-url",
        &format!("kafka://127.0.0.1:{port}"),
        "--data-dir",
        &data.display().to_string(),
        "--admin-listen",
        "127.0.0.1:0",
        "--tcp-listen",
        &tcp,
        "--http-listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start serve");
    let serve_err = lines(serve.stderr.take().expect("stderr"));
    let seen = wait_for(&serve_err, "Node ready.");
    assert!(
        seen.iter().any(|l| l.contains("Opened the Kafka store.")),
        "{seen:#?}"
    );

    let mut sub = eventmesh(&[
        "sub", "--server", &tcp, "--topic", "T-kafka", "--group", "g-kafka", "--count", "2",
        "--json",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start sub");
    let out = lines(sub.stdout.take().expect("stdout"));
    let err = lines(sub.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");

    let mut publisher = eventmesh(&["pub", "--server", &tcp, "--topic", "T-kafka", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start pub");
    publisher
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"one\ntwo\n")
        .expect("write stdin");
    let status = wait_exit(&mut publisher);
    let mut stderr = String::new();
    publisher
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(status.success(), "pub failed: {stderr}");

    let status = wait_exit(&mut sub);
    assert!(
        status.success(),
        "sub failed: {:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    let data: Vec<String> = out
        .try_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    assert_eq!(data, ["one", "two"]);

    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let status = wait_exit(&mut serve);
    assert!(status.success(), "serve did not stop cleanly: {status}");
}
