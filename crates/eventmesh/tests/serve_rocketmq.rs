//! `eventmesh serve --store rocketmq --store-url rocketmq://…` (the real binary) in front of a
//! private rocketmq-rust name server and broker (on free loopback ports, started by
//! `eventmesh_storage_rocketmq::test_broker`), with `eventmesh sub` and `eventmesh pub` as
//! clients: the events go through RocketMQ and come out of the subscriber. Missing broker
//! binaries fail the test (scripts/install-brokers installs them).

#![cfg(feature = "rocketmq")]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use eventmesh_storage::testkit::process::free_port;
use eventmesh_storage_rocketmq::test_broker::RocketBroker;

mod common;

use common::{eventmesh, lines, wait_exit, wait_for};

/// The events published, one per line.
const EVENTS: [&str; 5] = ["one", "two", "three", "four", "five"];

/// A child process killed when dropped (a failing test leaves no `serve` or `sub` behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn should_carry_events_through_rocketmq() {
    let dir = tempfile::tempdir().expect("dir");
    // Declared after `dir`: killed (with its own directory removed) before `dir` is.
    let broker = RocketBroker::start();
    // `serve` opens its store once: the broker must be known to the name server by then.
    broker.wait_registered();
    let tcp = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("node");
    let mut serve = Killed(
        eventmesh(&[
            "serve",
            "--store",
            "rocketmq",
            "--store-url",
            &broker.url(),
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
        .expect("start serve"),
    );
    let serve_err = lines(serve.0.stderr.take().expect("stderr"));
    let seen = wait_for(&serve_err, "Node ready.");
    assert!(
        seen.iter().any(|l| l.contains("RocketMQ store open.")),
        "{seen:#?}\n{}",
        broker.log_tail()
    );

    let count = EVENTS.len().to_string();
    let mut sub = Killed(
        eventmesh(&[
            "sub",
            "--server",
            &tcp,
            "--topic",
            "T-rocketmq",
            "--group",
            "g-rocketmq",
            "--count",
            &count,
            "--json",
        ])
        .env("EVENTMESH_LOG__LEVEL", "info")
        .spawn()
        .expect("start sub"),
    );
    let out = lines(sub.0.stdout.take().expect("stdout"));
    let err = lines(sub.0.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");

    let mut publisher = eventmesh(&["pub", "--server", &tcp, "--topic", "T-rocketmq", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start pub");
    let input: String = EVENTS.iter().map(|e| format!("{e}\n")).collect();
    publisher
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let status = wait_exit(&mut publisher);
    let mut stderr = String::new();
    publisher
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(
        status.success(),
        "pub failed: {stderr}\n{}",
        broker.log_tail()
    );

    let status = wait_exit(&mut sub.0);
    assert!(
        status.success(),
        "sub failed: {:?}\nserve: {:?}\n{}",
        err.try_iter().collect::<Vec<_>>(),
        serve_err.try_iter().collect::<Vec<_>>(),
        broker.log_tail()
    );
    let data: Vec<String> = out
        .try_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    // One queue per topic: the events come out in the order they were published.
    assert_eq!(data, EVENTS);

    let _ = Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status();
    let status = wait_exit(&mut serve.0);
    assert!(status.success(), "serve did not stop cleanly: {status}");
}
