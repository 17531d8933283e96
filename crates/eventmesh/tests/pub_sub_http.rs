//! `eventmesh pub --http` and `eventmesh sub --http` (the real binary, as child processes)
//! against a runtime in-process on port 0.

mod common;

use common::{Node, eventmesh, lines, wait_exit, wait_for};
use eventmesh_sdk::http::{HttpConfig, HttpMode, HttpPublisher};
use eventmesh_sdk::{CloudEvent, random_id};

#[test]
fn should_publish_and_subscribe_over_http() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub",
        "--http",
        "--server",
        &node.http,
        "--topic",
        "T-cli-http",
        "--group",
        "g-cli-http",
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
            "--http",
            "--server",
            &node.http,
            "--topic",
            "T-cli-http",
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
    let mut data: Vec<String> = out
        .try_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    data.sort();
    assert_eq!(data, ["one", "two"]);
    // Over HTTP there is no broadcast publish: refused, exit 1.
    let output = eventmesh(&[
        "pub",
        "--http",
        "--server",
        &node.http,
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
fn should_pass_a_filter_through_the_http_subscribe_body() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub",
        "--http",
        "--server",
        &node.http,
        "--topic",
        "T-cli-filter",
        "--group",
        "g-cli-filter",
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
    let base = format!("http://{}", node.http);
    node.rt.block_on(async {
        let publisher = HttpPublisher::new(HttpConfig::new(base).mode(HttpMode::CloudEvents))
            .expect("an HTTP publisher");
        for (ty, data) in [
            ("drop", "d1"),
            ("drop", "d2"),
            ("keep", "k1"),
            ("drop", "d3"),
            ("keep", "k2"),
        ] {
            let event = CloudEvent::new(random_id(), "/cli-test", ty).with_data("text/plain", data);
            publisher
                .publish("T-cli-filter", event)
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
    // The push carries the subscriber's format (the type is not kept by the legacy form);
    // the data tells the events apart.
    let mut got: Vec<String> = out
        .try_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    got.sort();
    assert_eq!(got, ["k1", "k2"]);

    // A filter that does not parse is refused by the mesh with the parse error: exit 1.
    let output = eventmesh(&[
        "sub",
        "--http",
        "--server",
        &node.http,
        "--topic",
        "T-cli-filter-bad",
        "--group",
        "g-cli-filter",
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
