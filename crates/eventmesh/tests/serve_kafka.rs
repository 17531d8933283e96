//! `eventmesh serve --store kafka --store-url kafka://…` (the real binary) in front of a private
//! tansu broker (Kafka-compatible, on free loopback ports), with `eventmesh sub` and
//! `eventmesh pub` as clients: the events go through Kafka and come out of the subscriber.
//! A missing `tansu` fails the test (scripts/install-brokers installs it).

#![cfg(feature = "kafka")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{eventmesh, lines, wait_exit, wait_for};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs.into_iter()
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tansu is not installed (~/.cargo/bin, PATH): this test runs against a real \
                 Kafka-compatible broker and does not skip; install it with scripts/install-brokers"
            )
        })
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(dir: &std::path::Path) -> (Broker, u16) {
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_binary())
        .arg("broker")
        .args(["--listener-url", &listener])
        .args(["--advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        .env("CLUSTER_ID", "eventmesh-test")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tansu");
    let mut broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = broker.0.try_wait() {
            panic!("tansu exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, port)
}

#[test]
fn should_carry_events_through_kafka() {
    let dir = tempfile::tempdir().expect("dir");
    let (_broker, port) = start_tansu(dir.path());
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
