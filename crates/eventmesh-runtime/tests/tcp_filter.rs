//! Subscription filters over the TCP protocol (raw sockets): a SUBSCRIBE_REQUEST item with
//! `"filter"` gets only the events its CESQL expression matches, the others are done for the
//! group (the store cursor moves past them); a bad or conflicting filter is answered code 1.

mod tcp_common;

use std::collections::HashSet;
use std::time::Duration;

use eventmesh_core::{GroupName, Topic};
use eventmesh_protocol::tcp::{
    Body, Command, Header, Package, Subscription, SubscriptionItem, SubscriptionMode,
    SubscriptionType,
};
use eventmesh_storage::ConsumerRef;
use tcp_common::{Client, ack_of, message, message_of, seq, start, user_agent};

const CLUSTERING: SubscriptionMode = SubscriptionMode::Clustering;
const ASYNC: SubscriptionType = SubscriptionType::Async;

/// SUBSCRIBE_REQUEST for one item; returns the answer.
async fn subscribe(c: &mut Client, item: SubscriptionItem) -> Package {
    let p = Package::new(
        Header::new(Command::SubscribeRequest, Some(seq())),
        Body::Subscription(Subscription {
            topic_list: vec![item],
        }),
    );
    let r = c.call(&p).await;
    assert_eq!(r.header.command, Command::SubscribeResponse);
    r
}

async fn sub_client(addr: std::net::SocketAddr, group: &str, pid: i32) -> Client {
    let mut c = Client::connect(addr).await;
    let r = c.hello(user_agent(group, "sub", pid)).await;
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    c
}

#[tokio::test]
async fn should_push_only_matching_events_and_pass_the_rest() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().expect("TCP is enabled by default");
    let mut sub = sub_client(addr, "g-filter", 41).await;
    let item = SubscriptionItem::new("T-filter", CLUSTERING, ASYNC)
        .with_filter("kind = 'keep' AND type LIKE '%'");
    let r = subscribe(&mut sub, item).await;
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    assert_eq!(sub.listen().await.header.code, 0);

    let mut publisher = Client::publisher(addr, "g-pub").await;
    let n = 20;
    for i in 0..n {
        let kind = if i % 4 == 0 { "keep" } else { "drop" };
        let ack = publisher
            .call(&message(
                Command::AsyncMessageToServer,
                "T-filter",
                &format!("e{i}"),
                &[("kind", kind)],
            ))
            .await;
        assert_eq!(ack.header.code, 0, "{:?}", ack.header);
    }

    let want: HashSet<String> = (0..n).step_by(4).map(|i| format!("e{i}")).collect();
    let mut got = HashSet::new();
    while got.len() < want.len() {
        let push = sub.expect(Command::AsyncMessageToClient).await;
        let m = message_of(&push);
        assert_eq!(m.properties.get("kind").map(String::as_str), Some("keep"));
        got.insert(m.body.clone().unwrap_or_default());
        sub.send(&ack_of(&push)).await;
    }
    assert_eq!(got, want);
    assert!(
        sub.try_recv(Duration::from_millis(500)).await.is_none(),
        "non-matching events are not pushed"
    );

    // Every event, matching or not, is done for the group: the cursor catches up.
    let consumer = ConsumerRef::clustering(
        Topic::new("T-filter").unwrap(),
        GroupName::new("g-filter").unwrap(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = node.store().cursor_info(&consumer).await.expect("cursor");
        if info.committed.iter().map(|(_, s)| *s).sum::<u64>() == n as u64 && info.in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cursor never caught up: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn should_refuse_a_bad_filter_and_a_conflicting_one_with_code_1() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();

    let mut c = sub_client(addr, "g-bad", 51).await;
    let r = subscribe(
        &mut c,
        SubscriptionItem::new("T-bad", CLUSTERING, ASYNC).with_filter("kind = "),
    )
    .await;
    assert_eq!(r.header.code, 1, "{:?}", r.header);
    let desc = r.header.desc.clone().unwrap_or_default();
    assert!(desc.contains("invalid filter"), "{desc}");
    assert!(desc.contains("parse:"), "the parse error is named: {desc}");
    assert!(desc.contains("column"), "with its position: {desc}");

    // A filter for the group and topic, then the same (spelled differently), then another.
    let r = subscribe(
        &mut c,
        SubscriptionItem::new("T-bad", CLUSTERING, ASYNC).with_filter("kind = 'a'"),
    )
    .await;
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    let mut other = sub_client(addr, "g-bad", 52).await;
    let r = subscribe(
        &mut other,
        SubscriptionItem::new("T-bad", CLUSTERING, ASYNC).with_filter("KIND=\"a\""),
    )
    .await;
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    let mut third = sub_client(addr, "g-bad", 53).await;
    for item in [
        SubscriptionItem::new("T-bad", CLUSTERING, ASYNC).with_filter("kind = 'b'"),
        SubscriptionItem::new("T-bad", CLUSTERING, ASYNC),
    ] {
        let r = subscribe(&mut third, item.clone()).await;
        assert_eq!(r.header.code, 1, "{item:?}: {:?}", r.header);
        let desc = r.header.desc.clone().unwrap_or_default();
        assert!(desc.contains("filter"), "{desc}");
    }
    node.shutdown().await;
}
