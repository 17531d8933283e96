//! The SDK against the real runtime, in-process on port 0: pub/sub, groups, broadcast,
//! request-reply, redelivery (failing handler, ack timeout, disconnect), reconnect after a
//! restart on the same port, redirect between two nodes, and the rate-limit answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};
use eventmesh_sdk::{
    Client, ClientConfig, CloudEvent, ConnectionState, Delivery, DeliveryKind, Error, Protocol,
    Purpose, ReconnectPolicy, SubscriptionMode, SubscriptionType, text_event,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

fn node_config(dir: &Path, store: StorageKind, tcp: SocketAddr) -> Config {
    let mut c = Config::default();
    c.node.data_dir = dir.to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = tcp;
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.mqtt.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = store;
    c.shutdown.timeout = Duration::from_secs(10);
    c
}

async fn start_with(
    dir: &Path,
    store: StorageKind,
    tcp: SocketAddr,
    tweak: impl FnOnce(&mut Config),
) -> RuntimeHandle {
    let mut c = node_config(dir, store, tcp);
    tweak(&mut c);
    let node = Runtime::start(c).await.expect("the runtime starts");
    assert!(node.wait_ready().await, "the node becomes ready");
    node
}

/// A node on the memory store, TCP on port 0.
async fn start(tweak: impl FnOnce(&mut Config)) -> (RuntimeHandle, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let node = start_with(dir.path(), StorageKind::Memory, any, tweak).await;
    let addr = node.tcp_addr().expect("the TCP server is on").to_string();
    (node, dir, addr)
}

fn config(addr: &str, group: &str, purpose: Purpose) -> eventmesh_sdk::ClientConfigBuilder {
    ClientConfig::builder(addr, group)
        .purpose(purpose)
        .request_timeout(Duration::from_secs(5))
        .reconnect(ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            max_attempts: None,
            jitter: true,
        })
}

async fn publisher(addr: &str) -> Client {
    Client::connect(
        config(addr, "sdk-pub", Purpose::Pub)
            .build()
            .expect("config"),
    )
    .await
    .expect("the publisher connects")
}

/// A subscriber whose handler forwards each delivery (and the client's name) to the test; it
/// fails (no ack) while `fail` says so for the event's data.
async fn subscriber(
    addr: &str,
    group: &str,
    topic: &str,
    mode: SubscriptionMode,
    name: &'static str,
    tx: mpsc::Sender<(&'static str, Delivery)>,
) -> Client {
    let client = Client::connect(config(addr, group, Purpose::Sub).build().expect("config"))
        .await
        .expect("the subscriber connects");
    client
        .subscribe(topic, mode, SubscriptionType::Async, move |d: Delivery| {
            let tx = tx.clone();
            async move {
                tx.send((name, d)).await?;
                Ok(())
            }
        })
        .await
        .expect("subscribe");
    client
}

async fn recv<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a delivery in time")
        .expect("the channel is open")
}

/// Nothing arrives for `quiet`.
async fn nothing<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>, quiet: Duration) {
    if let Ok(Some(x)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("unexpected delivery {x:?}");
    }
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default()).into_owned()
}

async fn wait_connected_to(client: &Client, addr: &str) {
    let mut changes = client.state_changes();
    let expected = ConnectionState::Connected {
        address: addr.to_owned(),
    };
    tokio::time::timeout(WAIT, changes.wait_for(|s| *s == expected))
        .await
        .unwrap_or_else(|_| panic!("not connected to {addr} in time: {:?}", client.state()))
        .expect("the client is alive");
}

#[tokio::test]
async fn should_publish_and_deliver_in_both_protocols() {
    let (node, _dir, addr) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(64);
    let sub = subscriber(
        &addr,
        "g-basic",
        "T-basic",
        SubscriptionMode::Clustering,
        "s",
        tx,
    )
    .await;
    let publisher = publisher(&addr).await;
    publisher
        .publish("T-basic", text_event("hello"))
        .await
        .unwrap();
    let (_, d) = recv(&mut rx).await;
    assert_eq!(text(&d), "hello");
    assert_eq!(d.topic, "T-basic");
    assert_eq!(d.kind, DeliveryKind::Async);

    let ce = Client::connect(
        config(&addr, "sdk-ce", Purpose::Pub)
            .protocol(Protocol::CloudEvents)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let event = CloudEvent::new("ce-1", "/test", "com.example.thing")
        .with_data("application/json", r#"{"n":1}"#)
        .with_extension("traceid", "abc");
    ce.publish("T-basic", event).await.unwrap();
    let (_, d) = recv(&mut rx).await;
    assert_eq!(text(&d), r#"{"n":1}"#);
    assert_eq!(d.event.extension_str("traceid"), Some("abc"));

    // Acked: nothing comes back.
    nothing(&mut rx, Duration::from_millis(500)).await;
    publisher.close().await;
    ce.close().await;
    sub.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_share_a_clustering_group_between_two_subscribers() {
    let (node, _dir, addr) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(64);
    let a = subscriber(
        &addr,
        "g-share",
        "T-share",
        SubscriptionMode::Clustering,
        "a",
        tx.clone(),
    )
    .await;
    let b = subscriber(
        &addr,
        "g-share",
        "T-share",
        SubscriptionMode::Clustering,
        "b",
        tx,
    )
    .await;
    let publisher = publisher(&addr).await;
    for i in 0..20 {
        publisher
            .publish("T-share", text_event(format!("e{i}")))
            .await
            .unwrap();
    }
    let mut seen = HashMap::new();
    let mut per_member = HashMap::new();
    for _ in 0..20 {
        let (name, d) = recv(&mut rx).await;
        *seen.entry(text(&d)).or_insert(0) += 1;
        *per_member.entry(name).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 20, "every event once: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(
        per_member.len(),
        2,
        "both members got events: {per_member:?}"
    );
    nothing(&mut rx, Duration::from_millis(500)).await;
    for c in [publisher, a, b] {
        c.close().await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn should_give_every_broadcasting_member_a_copy() {
    let (node, _dir, addr) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(64);
    let a = subscriber(
        &addr,
        "g-bc",
        "T-bc",
        SubscriptionMode::Broadcasting,
        "a",
        tx.clone(),
    )
    .await;
    let b = subscriber(
        &addr,
        "g-bc",
        "T-bc",
        SubscriptionMode::Broadcasting,
        "b",
        tx,
    )
    .await;
    let publisher = publisher(&addr).await;
    publisher
        .broadcast("T-bc", text_event("to-all"))
        .await
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..2 {
        let (name, d) = recv(&mut rx).await;
        assert_eq!(text(&d), "to-all");
        assert_eq!(d.kind, DeliveryKind::Broadcast);
        names.push(name);
    }
    names.sort_unstable();
    assert_eq!(names, ["a", "b"]);
    nothing(&mut rx, Duration::from_millis(500)).await;
    for c in [publisher, a, b] {
        c.close().await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn should_answer_requests_with_the_responders_reply() {
    let (node, _dir, addr) = start(|_| {}).await;
    let responder = Client::connect(config(&addr, "g-rr", Purpose::Sub).build().unwrap())
        .await
        .unwrap();
    responder
        .subscribe(
            "T-rr",
            SubscriptionMode::Clustering,
            SubscriptionType::Sync,
            |d: Delivery| async move {
                assert_eq!(d.kind, DeliveryKind::Request);
                Ok(text_event(text(&d).to_uppercase()))
            },
        )
        .await
        .unwrap();
    let requester = publisher(&addr).await;
    let reply = requester
        .request("T-rr", text_event("ping"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.data.as_deref(), Some(&b"PING"[..]));

    // Nobody answers on this topic: the request fails in about its ttl.
    let err = requester
        .request("T-nobody", text_event("hello?"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        err.is_timeout() || matches!(&err, Error::Server(s) if s.code != 0),
        "{err}"
    );
    requester.close().await;
    responder.close().await;
    node.shutdown().await;
}

/// Short ack timeout and backoff, so redelivery is quick.
fn fast(c: &mut Config) {
    c.delivery.ack_timeout = Duration::from_millis(500);
    c.delivery.crash_lease = Duration::from_secs(10);
    c.delivery.backoff_initial = Duration::from_millis(50);
    c.delivery.backoff_max = Duration::from_millis(200);
    // Webhook pushes must time out before the ack timeout.
    c.server.http.webhook.push_timeout = Duration::from_millis(100);
}

#[tokio::test]
async fn should_redeliver_when_the_handler_fails() {
    let (node, _dir, addr) = start(fast).await;
    let attempts = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::channel(64);
    let sub = Client::connect(config(&addr, "g-fail", Purpose::Sub).build().unwrap())
        .await
        .unwrap();
    sub.subscribe(
        "T-fail",
        SubscriptionMode::Clustering,
        SubscriptionType::Async,
        {
            let attempts = attempts.clone();
            move |d: Delivery| {
                let attempts = attempts.clone();
                let tx = tx.clone();
                async move {
                    let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    tx.send((n, text(&d))).await?;
                    if n < 3 {
                        return Err(format!("attempt {n} fails").into());
                    }
                    Ok(())
                }
            }
        },
    )
    .await
    .unwrap();
    let publisher = publisher(&addr).await;
    publisher
        .publish("T-fail", text_event("retry-me"))
        .await
        .unwrap();
    for expected in 1..=3 {
        let (n, data) = recv(&mut rx).await;
        assert_eq!((n, data.as_str()), (expected, "retry-me"));
    }
    // The third attempt was acked: no fourth.
    nothing(&mut rx, Duration::from_millis(1500)).await;
    publisher.close().await;
    sub.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_redeliver_to_another_member_when_a_subscriber_disconnects() {
    let (node, _dir, addr) = start(|_| {}).await;
    let (held_tx, mut held) = mpsc::channel(4);
    // A member that takes the event and never finishes handling it.
    let a = Client::connect(
        config(&addr, "g-gone", Purpose::Sub)
            .request_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    a.subscribe(
        "T-gone",
        SubscriptionMode::Clustering,
        SubscriptionType::Async,
        move |d: Delivery| {
            let held_tx = held_tx.clone();
            async move {
                held_tx.send(text(&d)).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    let publisher = publisher(&addr).await;
    publisher
        .publish("T-gone", text_event("orphan"))
        .await
        .unwrap();
    assert_eq!(recv(&mut held).await, "orphan");

    let (tx, mut rx) = mpsc::channel(8);
    let b = subscriber(
        &addr,
        "g-gone",
        "T-gone",
        SubscriptionMode::Clustering,
        "b",
        tx,
    )
    .await;
    a.close().await;
    let (_, d) = recv(&mut rx).await;
    assert_eq!(text(&d), "orphan");
    publisher.close().await;
    b.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_reconnect_and_resubscribe_after_the_server_restarts_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let node = start_with(dir.path(), StorageKind::Embedded, any, |_| {}).await;
    let tcp = node.tcp_addr().unwrap();
    let addr = tcp.to_string();
    let (tx, mut rx) = mpsc::channel(16);
    let sub = subscriber(
        &addr,
        "g-restart",
        "T-restart",
        SubscriptionMode::Clustering,
        "s",
        tx,
    )
    .await;
    let publisher = publisher(&addr).await;
    publisher
        .publish("T-restart", text_event("before"))
        .await
        .unwrap();
    assert_eq!(text(&recv(&mut rx).await.1), "before");

    let mut changes = sub.state_changes();
    assert!(node.shutdown().await.is_clean());
    tokio::time::timeout(
        WAIT,
        changes.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap()
    .unwrap();

    // The same data directory and port: the durable subscription and the client come back.
    let node = start_with(dir.path(), StorageKind::Embedded, tcp, |_| {}).await;
    wait_connected_to(&sub, &addr).await;
    wait_connected_to(&publisher, &addr).await;
    publisher
        .publish("T-restart", text_event("after"))
        .await
        .unwrap();
    assert_eq!(text(&recv(&mut rx).await.1), "after");
    nothing(&mut rx, Duration::from_millis(500)).await;
    publisher.close().await;
    sub.close().await;
    assert!(node.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_follow_a_redirect_to_another_node() {
    let (a, _da, addr_a) = start(|_| {}).await;
    let (b, _db, addr_b) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(16);
    let sub = subscriber(
        &addr_a,
        "g-move",
        "T-move",
        SubscriptionMode::Clustering,
        "s",
        tx,
    )
    .await;
    let clients = a.tcp_clients().expect("node a's TCP clients");
    let info = clients
        .list()
        .into_iter()
        .find(|c| c.group.as_deref() == Some("g-move"))
        .expect("the subscriber is listed");
    let port = b.tcp_addr().unwrap().port();
    assert!(clients.redirect(info.connection_id, "127.0.0.1", port));
    wait_connected_to(&sub, &addr_b).await;

    let publisher = publisher(&addr_b).await;
    publisher
        .publish("T-move", text_event("moved"))
        .await
        .unwrap();
    assert_eq!(text(&recv(&mut rx).await.1), "moved");
    publisher.close().await;
    sub.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn should_surface_the_rate_limit_answer_as_a_typed_error() {
    let (node, _dir, addr) = start(|c| c.limits.session_publish_rate = 3).await;
    let publisher = publisher(&addr).await;
    let mut limited = None;
    let mut ok = 0;
    for i in 0..20 {
        match publisher
            .publish("T-rate", text_event(format!("r{i}")))
            .await
        {
            Ok(()) => ok += 1,
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    assert!(ok > 0);
    let err = limited.expect("a rate-limit answer");
    assert!(err.is_rate_limited(), "{err}");
    let answer = err.server().expect("the server's answer");
    assert_eq!(answer.code, 3);
    assert!(answer.desc.is_some());
    // The connection is still usable once the bucket refills.
    publisher.close().await;
    node.shutdown().await;
}
