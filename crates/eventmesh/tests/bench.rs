//! `eventmesh bench` (the real binary, as a child process) against a runtime in-process on
//! port 0: TCP, gRPC and HTTP scenarios run briefly and print one JSON report with counts above
//! zero (HTTP subscribers are webhooks the bench serves on port 0). No timing is asserted.

use std::process::{Command, Output, Stdio};

use eventmesh_storage::testkit::process::{ChildProcess, tcp_exchange};
use eventmesh_storage::testkit::redis_server::{AppendFsync, start_redis_server};

mod common;

use common::{BIN, Node};

fn bench(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EVENTMESH_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run eventmesh bench")
}

/// The JSON report of a successful run.
fn report(args: &[&str]) -> serde_json::Value {
    let out = bench(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?}: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    for field in [
        "events_per_sec",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
    ] {
        assert!(
            v[field].as_f64().is_some_and(|x| x > 0.0),
            "{field} missing or zero: {v}"
        );
    }
    let counted: &[&str] = if v["scenario"] == "pub" {
        &["published", "samples"]
    } else {
        &["published", "delivered", "samples"]
    };
    for &field in counted {
        assert!(
            v[field].as_u64().is_some_and(|n| n > 0),
            "{field} missing or zero: {v}"
        );
    }
    assert_eq!(v["errors"], 0, "{v}");
    v
}

#[test]
fn should_report_pubsub_end_to_end() {
    let node = Node::start();
    let v = report(&[
        "pubsub",
        "--protocol",
        "tcp",
        "--size",
        "128",
        "--duration",
        "2s",
        "--addr",
        &node.tcp,
        "--json",
    ]);
    assert_eq!(v["scenario"], "pubsub");
    assert_eq!(v["latency"], "publish-to-delivery");
    assert_eq!(v["published"], v["delivered"], "{v}");
}

#[test]
fn should_pace_an_open_loop_rate() {
    let node = Node::start();
    let v = report(&[
        "pubsub",
        "--duration",
        "2s",
        "--rate",
        "500",
        "--publishers",
        "2",
        "--addr",
        &node.tcp,
        "--json",
    ]);
    assert_eq!(v["rate"], 500);
    // 500/s for 2 s is 1,000 scheduled events, all sent however late.
    assert_eq!(v["published"], 1000, "{v}");
}

#[test]
fn should_report_request_reply_and_pub() {
    let node = Node::start();
    let v = report(&[
        "request-reply",
        "--duration",
        "1s",
        "--window",
        "8",
        "--addr",
        &node.tcp,
        "--json",
    ]);
    assert_eq!(v["latency"], "request-to-reply");
    let v = report(&["pub", "--count", "500", "--addr", &node.tcp, "--json"]);
    assert_eq!(v["published"], 500, "{v}");
}

#[test]
fn should_report_grpc_pubsub_and_batched_pub() {
    let node = Node::start();
    let v = report(&[
        "pubsub",
        "--protocol",
        "grpc",
        "--duration",
        "1s",
        "--addr",
        &node.grpc,
        "--json",
        "--quiet",
    ]);
    assert_eq!(v["protocol"], "grpc", "{v}");
    assert_eq!(v["batch"], 1, "{v}");
    assert_eq!(v["latency"], "publish-to-delivery");
    assert_eq!(v["published"], v["delivered"], "{v}");

    let v = report(&[
        "pub",
        "--protocol",
        "grpc",
        "--batch",
        "10",
        "--duration",
        "1s",
        "--addr",
        &node.grpc,
        "--json",
        "--quiet",
    ]);
    assert_eq!(v["protocol"], "grpc", "{v}");
    assert_eq!(v["batch"], 10, "{v}");
    // Whole batches only (no count to cut the last one), every event counted and sampled.
    let published = v["published"].as_u64().unwrap_or(0);
    assert_eq!(published % 10, 0, "{v}");
    assert_eq!(v["samples"].as_u64(), Some(published), "{v}");
}

#[test]
fn should_report_http_pubsub_through_a_webhook() {
    let node = Node::start();
    let v = report(&[
        "pubsub",
        "--protocol",
        "http",
        "--duration",
        "1s",
        "--addr",
        &node.http,
        "--json",
        "--quiet",
    ]);
    assert_eq!(v["protocol"], "http", "{v}");
    assert_eq!(v["latency"], "publish-to-delivery");
    assert_eq!(v["published"], v["delivered"], "{v}");
}

#[test]
fn should_answer_requests_and_fan_out_over_grpc_and_http() {
    let node = Node::start();
    for (protocol, addr) in [("grpc", &node.grpc), ("http", &node.http)] {
        let v = report(&[
            "request-reply",
            "--protocol",
            protocol,
            "--count",
            "200",
            "--window",
            "8",
            "--addr",
            addr,
            "--json",
            "--quiet",
        ]);
        assert_eq!(v["latency"], "request-to-reply", "{v}");
        assert_eq!(v["delivered"], 200, "{v}");
        // Each of the 2 BROADCASTING subscribers gets every event (HTTP: batches of 5).
        let batch = if protocol == "http" { "5" } else { "1" };
        let v = report(&[
            "fanout",
            "--protocol",
            protocol,
            "--count",
            "300",
            "--batch",
            batch,
            "--subscribers",
            "2",
            "--addr",
            addr,
            "--json",
            "--quiet",
        ]);
        assert_eq!(v["published"], 300, "{v}");
        assert_eq!(v["delivered"], 600, "{v}");
    }
}

#[test]
fn should_refuse_batches_that_cannot_be_sent() {
    // Refused as bad settings (exit 2) before connecting: no mesh is needed.
    for (args, why) in [
        (
            &["request-reply", "--protocol", "grpc", "--batch", "10"][..],
            "request-reply",
        ),
        (&["pub", "--protocol", "tcp", "--batch", "10"][..], "TCP"),
        (
            &["pub", "--protocol", "http", "--batch", "0"][..],
            "at least 1",
        ),
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--batch") && stderr.contains(why),
            "{stderr}"
        );
    }
}

#[test]
fn should_run_the_same_workload_directly_against_nats_with_direct() {
    let node = Node::start();
    let nats = common::nats::NatsCluster::start(1);
    let url = nats.url();
    for scenario in ["pubsub", "fanout"] {
        let v = report(&[
            scenario,
            "--duration",
            "1s",
            "--subscribers",
            "2",
            "--addr",
            &node.tcp,
            "--direct",
            &url,
            "--json",
            "--quiet",
        ]);
        let d = &v["direct"];
        assert_eq!(d["addr"], url.as_str(), "{v}");
        assert_eq!(d["protocol"], "nats-jetstream", "{v}");
        assert_eq!(d["errors"], 0, "{v}");
        let published = d["published"].as_u64().unwrap_or(0);
        assert!(published > 0, "{v}");
        // Every directly published event reached the group (fanout: each of the 2 members).
        let fan = if scenario == "fanout" { 2 } else { 1 };
        assert_eq!(d["delivered"].as_u64(), Some(published * fan), "{v}");
        assert!(d["p99_us"].as_f64().is_some_and(|x| x > 0.0), "{v}");
        assert!(
            v["throughput_ratio"].as_f64().is_some_and(|x| x > 0.0),
            "{v}"
        );
        assert!(
            v["direct_settings"]
                .as_str()
                .is_some_and(|s| s.contains("JetStream")),
            "{v}"
        );
    }
    // Scenarios the direct mode cannot run are refused as bad settings (exit 2).
    let out = bench(&[
        "request-reply",
        "--addr",
        &node.tcp,
        "--direct",
        &url,
        "--count",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A private redis-server on a free port (AOF on, fsync every second, its data and log in
/// `dir`); killed when the returned process is dropped.
fn start_redis(dir: &std::path::Path) -> (u16, ChildProcess) {
    start_redis_server(dir, AppendFsync::EverySec)
}

/// Runs `args` with `--direct url` and checks the direct side: no errors, something published,
/// every event delivered to each group (`fan` groups), `protocol` and `settings_has` in its
/// settings. Returns the report.
fn direct_report(
    args: &[&str],
    url: &str,
    fan: u64,
    protocol: &str,
    settings_has: &str,
) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--direct", url, "--json", "--quiet"]);
    let v = report(&all);
    let d = &v["direct"];
    assert_eq!(d["protocol"], protocol, "{v}");
    assert_eq!(d["errors"], 0, "{v}");
    let published = d["published"].as_u64().unwrap_or(0);
    assert!(published > 0, "{v}");
    if args[0] != "pub" {
        assert_eq!(d["delivered"].as_u64(), Some(published * fan), "{v}");
    }
    assert!(d["p99_us"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert!(
        v["throughput_ratio"].as_f64().is_some_and(|x| x > 0.0),
        "{v}"
    );
    assert!(
        v["direct_settings"]
            .as_str()
            .is_some_and(|s| s.contains(settings_has)),
        "{v}"
    );
    v
}

/// The direct suite every broker runs: `pubsub` and `fanout` over TCP with 2 subscribers (every
/// direct event delivered to each group, `stream_settings` in the settings, the report's direct
/// `addr` equal to `shown_url`), then 500 gRPC publishes in batches of 10 (`batch_settings` in
/// the settings).
fn direct_suite(
    node: &Node,
    url: &str,
    shown_url: &str,
    protocol: &str,
    stream_settings: &str,
    batch_settings: &str,
) {
    for (scenario, fan) in [("pubsub", 1), ("fanout", 2)] {
        let v = direct_report(
            &[
                scenario,
                "--duration",
                "1s",
                "--subscribers",
                "2",
                "--addr",
                &node.tcp,
            ],
            url,
            fan,
            protocol,
            stream_settings,
        );
        assert_eq!(v["direct"]["addr"], shown_url, "{v}");
    }
    let v = direct_report(
        &[
            "pub",
            "--protocol",
            "grpc",
            "--batch",
            "10",
            "--count",
            "500",
            "--addr",
            &node.grpc,
        ],
        url,
        1,
        protocol,
        batch_settings,
    );
    assert_eq!(v["direct"]["published"], 500, "{v}");
}

#[test]
fn should_run_the_same_workload_directly_against_redis_with_direct() {
    let node = Node::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    // Declared after `dir`: killed before its directory is removed.
    let (port, _redis) = start_redis(dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    // --batch: a pipeline of XADDs per batch.
    direct_suite(
        &node,
        &url,
        &url,
        "redis-streams",
        "appendfsync everysec",
        "XADD",
    );
    // The run's streams are gone.
    let keys = tcp_exchange(port, b"KEYS eventmesh-bench:*\r\n").expect("a KEYS reply");
    assert_eq!(keys, b"*0\r\n", "{}", String::from_utf8_lossy(&keys));
}

#[test]
fn should_run_the_same_workload_directly_against_kafka_with_direct() {
    let node = Node::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    // Declared after `dir`: killed before its directory is removed.
    let (port, _tansu) = common::tansu::start_tansu(dir.path());
    let url = format!("kafka://127.0.0.1:{port}");
    direct_suite(&node, &url, &url, "kafka", "acks=all", "idempotent");
    // No broker there: a failed run (exit 1) naming the URL.
    let out = bench(&[
        "pub",
        "--addr",
        &node.tcp,
        "--direct",
        "kafka://127.0.0.1:1",
        "--count",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect to kafka://127.0.0.1:1"),
        "{out:?}"
    );
}

#[test]
fn should_run_the_same_workload_directly_against_rabbitmq_with_direct() {
    let node = Node::start();
    // The machine's RabbitMQ; every run declares its own exchange and queues (named after a
    // fresh random topic) and deletes them.
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    direct_suite(
        &node,
        url,
        "amqp://guest:***@127.0.0.1:5672/%2f",
        "rabbitmq-amqp",
        "confirms",
        "persistent",
    );
    // An unknown scheme is refused as a bad setting (exit 2).
    let out = bench(&[
        "pub",
        "--addr",
        &node.tcp,
        "--direct",
        "mqtt://127.0.0.1:1",
        "--count",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[cfg(feature = "rocketmq")]
#[test]
fn should_run_the_same_workload_directly_against_rocketmq_with_direct() {
    let node = Node::start();
    // A private name server and broker; the run's topic and groups are deleted afterwards.
    let broker = eventmesh_storage_rocketmq::test_broker::RocketBroker::start();
    broker.wait_registered();
    let url = broker.url();
    direct_suite(&node, &url, &url, "rocketmq", "SEND_OK", "4 producers");
    // A cluster the name server does not know: a failed run (exit 1) naming it.
    let out = bench(&[
        "pub",
        "--addr",
        &node.tcp,
        "--direct",
        &format!("{url}?cluster=NoSuchCluster"),
        "--count",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchCluster"),
        "{out:?}"
    );
}
