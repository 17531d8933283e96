//! `eventmesh pub --http` and `eventmesh sub --http` (the real binary, as child processes)
//! against a runtime in-process on port 0.

mod common;

use common::{Node, eventmesh, lines, wait_exit, wait_for};

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
