//! At-least-once delivery and flow control over TCP: redelivery on ack timeout, on nack and on
//! disconnect, the un-acked window, the publish rate limit answer, the connection cap, idle
//! connections, redirect, and the shutdown goodbye.

mod tcp_common;

use std::time::Duration;

use eventmesh_protocol::tcp::{Command, Header, Package, SubscriptionMode, SubscriptionType};
use tcp_common::{Client, ack_of, message, message_of, seq, start, user_agent};

const CLUSTERING: SubscriptionMode = SubscriptionMode::Clustering;
const ASYNC: SubscriptionType = SubscriptionType::Async;

/// Short ack timeout and backoff, so redelivery is quick.
fn fast(c: &mut eventmesh_config::Config) {
    c.delivery.ack_timeout = Duration::from_millis(500);
    c.delivery.crash_lease = Duration::from_secs(10);
    c.delivery.backoff_initial = Duration::from_millis(50);
    c.delivery.backoff_max = Duration::from_millis(200);
    // Keys that must stay below the ack timeout, in builds that have them (webhook pushes).
    let mut v = serde_json::to_value(&*c).expect("the config serializes");
    if let Some(t) = v.pointer_mut("/server/http/webhook/push_timeout") {
        *t = serde_json::Value::String("100ms".into());
        *c = serde_json::from_value(v).expect("the config deserializes");
    }
}

#[tokio::test]
async fn should_redeliver_an_unacked_push_after_the_ack_timeout() {
    let (node, _dir) = start(fast).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::subscriber(addr, "g-timeout", 1, "T-timeout", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    assert_eq!(publisher.publish("T-timeout", "again").await.header.code, 0);

    let first = sub.expect(Command::AsyncMessageToClient).await;
    // Not acked: it comes back under a new seq.
    let second = sub.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&second).body.as_deref(), Some("again"));
    assert_ne!(first.header.seq, second.header.seq);
    sub.send(&ack_of(&second)).await;
    // The ack of the timed-out first push is ignored; nothing else comes.
    sub.send(&ack_of(&first)).await;
    assert!(sub.try_recv(Duration::from_millis(1500)).await.is_none());
    node.shutdown().await;
}

#[tokio::test]
async fn should_redeliver_after_an_ack_with_a_failure_code() {
    let (node, _dir) = start(fast).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::subscriber(addr, "g-nack", 1, "T-nack", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    assert_eq!(publisher.publish("T-nack", "nacked").await.header.code, 0);
    let push = sub.expect(Command::AsyncMessageToClient).await;
    let mut nack = ack_of(&push);
    nack.header.code = 1;
    sub.send(&nack).await;
    let again = sub.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&again).body.as_deref(), Some("nacked"));
    sub.send(&ack_of(&again)).await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_give_a_disconnected_members_pushes_to_another_member() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut a = Client::subscriber(addr, "g-gone", 1, "T-gone", CLUSTERING, ASYNC).await;
    let mut b = Client::subscriber(addr, "g-gone", 2, "T-gone", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    assert_eq!(publisher.publish("T-gone", "survivor").await.header.code, 0);

    // Whoever gets it drops the connection without acking; the other one gets it at once
    // (the ack timeout is the default 30 s, so this is not a timeout).
    let (holder, mut other) = tokio::select! {
        p = a.expect(Command::AsyncMessageToClient) => { drop(p); (a, b) }
        p = b.expect(Command::AsyncMessageToClient) => { drop(p); (b, a) }
    };
    drop(holder);
    let push = other.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&push).body.as_deref(), Some("survivor"));
    other.send(&ack_of(&push)).await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_stop_pushing_when_the_window_is_full() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::connect(addr).await;
    let mut ua = user_agent("g-window", "sub", 1);
    ua.unack = 2;
    assert_eq!(sub.hello(ua).await.header.code, 0);
    sub.subscribe("T-window", CLUSTERING, ASYNC, None).await;
    sub.listen().await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    for i in 0..5 {
        assert_eq!(
            publisher
                .publish("T-window", &format!("w{i}"))
                .await
                .header
                .code,
            0
        );
    }
    let p1 = sub.expect(Command::AsyncMessageToClient).await;
    let p2 = sub.expect(Command::AsyncMessageToClient).await;
    assert!(
        sub.try_recv(Duration::from_millis(500)).await.is_none(),
        "a full window gets no push"
    );
    sub.send(&ack_of(&p1)).await;
    let p3 = sub.expect(Command::AsyncMessageToClient).await;
    assert!(sub.try_recv(Duration::from_millis(300)).await.is_none());
    for p in [&p2, &p3] {
        sub.send(&ack_of(p)).await;
    }
    for _ in 0..2 {
        let p = sub.expect(Command::AsyncMessageToClient).await;
        sub.send(&ack_of(&p)).await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn should_answer_tps_overload_over_the_rate_limit() {
    let (node, _dir) = start(|c| c.limits.session_publish_rate = 3).await;
    let addr = node.tcp_addr().unwrap();
    let mut publisher = Client::publisher(addr, "g-pub").await;
    let mut codes = Vec::new();
    let mut overload = None;
    for i in 0..10 {
        let ack = publisher.publish("T-rate", &format!("r{i}")).await;
        codes.push(ack.header.code);
        if ack.header.code != 0 && overload.is_none() {
            overload = Some(ack);
        }
    }
    assert!(codes.contains(&0), "{codes:?}");
    let overload = overload.unwrap_or_else(|| panic!("no overload answer: {codes:?}"));
    assert_eq!(overload.header.code, 3, "OPStatus tpsOverload");
    assert!(
        overload
            .header
            .desc
            .as_deref()
            .unwrap_or("")
            .contains("rate"),
        "{:?}",
        overload.header
    );
    // The connection is still usable.
    let hb = publisher
        .call(&Package::header_only(Header::new(
            Command::HeartbeatRequest,
            Some(seq()),
        )))
        .await;
    assert_eq!(hb.header.command, Command::HeartbeatResponse);
    node.shutdown().await;
}

#[tokio::test]
async fn should_refuse_connections_over_the_cap_with_a_goodbye() {
    let (node, _dir) = start(|c| c.limits.max_connections = 2).await;
    let addr = node.tcp_addr().unwrap();
    let mut a = Client::publisher(addr, "g1").await;
    let _b = Client::publisher(addr, "g2").await;
    let mut c = Client::connect(addr).await;
    let bye = c.recv().await;
    assert_eq!(bye.header.command, Command::ServerGoodbyeRequest);
    assert_eq!(bye.header.code, 1);
    assert!(bye.header.desc.unwrap().contains("too many connections"));
    assert!(c.closed().await);
    assert_eq!(a.publish("T-cap", "still fine").await.header.code, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn should_say_goodbye_to_idle_connections() {
    let (node, _dir) = start(|c| c.server.tcp.idle_timeout = Duration::from_millis(300)).await;
    let addr = node.tcp_addr().unwrap();
    let mut c = Client::publisher(addr, "g-idle").await;
    let bye = c.expect(Command::ServerGoodbyeRequest).await;
    assert_eq!(bye.header.code, 1);
    assert!(bye.header.desc.unwrap().contains("idle"));
    assert!(c.closed().await);
    node.shutdown().await;
}

#[tokio::test]
async fn should_redirect_a_client_and_let_it_ack_first() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::subscriber(addr, "g-redirect", 1, "T-redirect", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    assert_eq!(publisher.publish("T-redirect", "held").await.header.code, 0);
    let push = sub.expect(Command::AsyncMessageToClient).await;

    let clients = node.tcp_clients().unwrap();
    let info = clients
        .list()
        .into_iter()
        .find(|c| c.group.as_deref() == Some("g-redirect"))
        .expect("the subscriber is listed");
    assert_eq!(info.purpose.as_deref(), Some("sub"));
    assert_eq!(info.dialect, Some("v1.9"));
    assert_eq!(info.topics, vec!["T-redirect".to_owned()]);
    assert!(clients.redirect(info.connection_id, "10.0.0.2", 10000));

    let r = sub.expect(Command::RedirectToClient).await;
    match r.body {
        eventmesh_protocol::tcp::Body::Redirect(info) => {
            assert_eq!(info.ip.as_deref(), Some("10.0.0.2"));
            assert_eq!(info.port, 10000);
        }
        other => panic!("not a redirect body: {other:?}"),
    }
    // Still draining: the ack is taken, then the server closes.
    sub.send(&ack_of(&push)).await;
    assert!(sub.closed().await);
    assert_eq!(node.core().in_flight(), 0, "the ack was applied");
    node.shutdown().await;
}

#[tokio::test]
async fn should_say_goodbye_on_shutdown() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::subscriber(addr, "g-bye", 1, "T-bye", CLUSTERING, ASYNC).await;
    let shutdown = tokio::spawn(node.shutdown());
    let bye = sub.expect(Command::ServerGoodbyeRequest).await;
    assert_eq!(bye.header.code, 0);
    assert_eq!(
        bye.header.desc.as_deref(),
        Some("graceful normal quit from eventmesh")
    );
    assert!(sub.closed().await);
    let report = shutdown.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    // A message command to an unknown topic of a closed node is not tested: it is gone.
    let _ = message;
}

#[tokio::test]
async fn should_answer_tps_overload_over_the_global_rate_limit() {
    let (node, _dir) = start(|c| c.limits.publish_rate = 4).await;
    let addr = node.tcp_addr().unwrap();
    let mut a = Client::publisher(addr, "g-a").await;
    let mut b = Client::publisher(addr, "g-b").await;
    let mut codes = Vec::new();
    let mut desc = String::new();
    for i in 0..6 {
        for c in [&mut a, &mut b] {
            let ack = c.publish("T-global", &format!("g{i}")).await;
            if ack.header.code == 3 {
                desc = ack.header.desc.clone().unwrap_or_default();
            }
            codes.push(ack.header.code);
        }
    }
    assert!(codes.contains(&0) && codes.contains(&3), "{codes:?}");
    assert!(desc.contains("global"), "{desc}");
    node.shutdown().await;
}
