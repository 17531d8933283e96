//! `eventmesh pub --grpc` and `eventmesh sub --grpc` (the real binary, as child processes)
//! against a runtime in-process on port 0.

mod common;

use common::{Node, eventmesh, lines, wait_exit, wait_for};
use eventmesh_sdk::grpc::{GrpcConfig, GrpcPublisher};
use eventmesh_sdk::{CloudEvent, random_id};

fn data_of(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut data: Vec<String> = lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    data.sort();
    data
}

#[test]
fn should_publish_and_subscribe_over_grpc() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub",
        "--grpc",
        "--server",
        &node.grpc,
        "--topic",
        "T-cli-grpc",
        "--group",
        "g-cli-grpc",
        "--count",
        "2",
        "--json",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start sub");
    let out = lines(sub.stdout.take().expect("stdout"));
    let err = lines(sub.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");
    for data in ["one", "two"] {
        let output = eventmesh(&[
            "pub",
            "--grpc",
            "--server",
            &node.grpc,
            "--topic",
            "T-cli-grpc",
            data,
        ])
        .output()
        .expect("run pub");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status = wait_exit(&mut sub);
    assert!(
        status.success(),
        "sub failed: {:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    assert_eq!(data_of(out.try_iter()), ["one", "two"]);
    // There is no broadcast publish over gRPC: refused, exit 1.
    let output = eventmesh(&[
        "pub",
        "--grpc",
        "--server",
        &node.grpc,
        "--topic",
        "T",
        "--broadcast",
        "x",
    ])
    .output()
    .expect("run pub");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broadcast"));
}

#[test]
fn should_pass_a_filter_through_the_grpc_subscription() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub",
        "--grpc",
        "--server",
        &node.grpc,
        "--topic",
        "T-cli-grpc-filter",
        "--group",
        "g-cli-grpc-filter",
        "--filter",
        "type = 'keep'",
        "--count",
        "2",
        "--json",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start sub");
    let out = lines(sub.stdout.take().expect("stdout"));
    let err = lines(sub.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");
    // Events of another type first: were the filter not applied, they would fill the count.
    let endpoint = format!("http://{}", node.grpc);
    node.rt.block_on(async {
        let publisher = GrpcPublisher::connect(GrpcConfig::new(endpoint, "p-cli-grpc"))
            .await
            .expect("a gRPC publisher");
        for (ty, data) in [
            ("drop", "d1"),
            ("drop", "d2"),
            ("keep", "k1"),
            ("keep", "k2"),
        ] {
            let event = CloudEvent::new(random_id(), "/cli-test", ty).with_data("text/plain", data);
            publisher
                .publish("T-cli-grpc-filter", event)
                .await
                .expect("published");
        }
    });
    let status = wait_exit(&mut sub);
    assert!(
        status.success(),
        "sub failed: {:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    let got: Vec<String> = out.try_iter().collect();
    for line in &got {
        assert!(line.contains(r#""type":"keep""#), "{line}");
    }
    assert_eq!(data_of(got.into_iter()), ["k1", "k2"]);

    // A filter that does not parse is refused with the parse error: exit 1.
    let output = eventmesh(&[
        "sub",
        "--grpc",
        "--server",
        &node.grpc,
        "--topic",
        "T-cli-grpc-bad",
        "--group",
        "g-cli-grpc-filter",
        "--filter",
        "type = ",
    ])
    .output()
    .expect("run sub");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid filter"), "{stderr}");
    assert!(stderr.contains("parse"), "{stderr}");
}
