//! `eventmesh pub` and `eventmesh sub` (the real binary, as child processes) against a runtime
//! in-process on port 0.

mod common;

use common::{Node, Sub, pub_lines, run_ok, run_refused};

#[test]
fn should_publish_stdin_lines_and_print_them_from_sub() {
    let node = Node::start();
    let sub = Sub::start(&[
        "sub", "--server", &node.tcp, "--topic", "T-cli", "--group", "g-cli", "--count", "2",
        "--json",
    ]);

    pub_lines(&node.tcp, "T-cli", &["one", "two"], &String::new);

    let printed = sub.printed();
    assert_eq!(printed.len(), 2, "{printed:?}");
    let data: Vec<String> = printed
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["subject"], "T-cli", "{l}");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    assert_eq!(data, ["one", "two"]);
}

#[test]
fn should_print_the_reply_of_a_request() {
    let node = Node::start();
    let responder = node.rt.block_on(async {
        let client = eventmesh_sdk::Client::connect(
            eventmesh_sdk::ClientConfig::builder(node.tcp.clone(), "g-cli-rr")
                .purpose(eventmesh_sdk::Purpose::Sub)
                .build()
                .expect("config"),
        )
        .await
        .expect("connect");
        client
            .subscribe(
                "T-cli-rr",
                eventmesh_sdk::SubscriptionMode::Clustering,
                eventmesh_sdk::SubscriptionType::Sync,
                |d: eventmesh_sdk::Delivery| async move {
                    let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                        .to_uppercase();
                    Ok(eventmesh_sdk::text_event(text))
                },
            )
            .await
            .expect("subscribe");
        client
    });
    let stdout = run_ok(&[
        "pub",
        "--server",
        &node.tcp,
        "--topic",
        "T-cli-rr",
        "--request",
        "--timeout",
        "5s",
        "ping",
    ]);
    assert_eq!(stdout, "PING\n");
    node.rt.block_on(responder.close());
}

#[test]
fn should_fail_with_exit_1_when_the_server_is_unreachable() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = unused.local_addr().expect("addr").to_string();
    drop(unused);
    let stderr = run_refused(&["pub", "--server", &addr, "--topic", "T", "x"]);
    assert!(stderr.contains("connecting to"), "{stderr}");
}
