//! gRPC cases the other suites leave out, in process on port 0: a request waiting for its reply
//! when the node stops, a BROADCASTING member that comes back with the same identity, the
//! connection cap, and the legacy package's webhook subscribe.

mod grpc_common;
#[path = "http_common/mod.rs"]
mod http_common;

use std::time::Duration;

use eventmesh_core::SubscriptionMode;
use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::v1;
use eventmesh_runtime::RuntimeHandle;
use eventmesh_sdk::grpc::{GrpcConfig, GrpcDelivery, GrpcPublisher, GrpcSubscriber};
use eventmesh_sdk::text_event;
use grpc_common::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;

const B: SubscriptionMode = SubscriptionMode::Broadcasting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_its_reply_is_answered_8_when_the_node_stops() {
    let (h, _dir) = start(|c| c.shutdown.timeout = Duration::from_secs(4)).await;
    // A SYNC subscriber (Java style) that takes the request and never answers.
    let (tx, mut inbound) = open_stream(
        &h,
        subscription_msg("g-rr-stop", r#"[{"topic":"t-rr-stop","type":"SYNC"}]"#, 51),
    )
    .await;
    assert_eq!(status(&next_message(&mut inbound).await).0, "0");
    let publisher = publisher(&h, "p-rr-stop").await;
    let request = tokio::spawn(async move {
        publisher
            .request_reply("t-rr-stop", text_event("q"), Duration::from_secs(60))
            .await
    });
    // The request reached the subscriber: the requester now waits.
    let pushed = next_message(&mut inbound).await;
    assert!(
        pushed.attributes.contains_key("correlationid"),
        "{pushed:?}"
    );
    let report = h.shutdown().await;
    let err = tokio::time::timeout(WAIT, request)
        .await
        .expect("answered in time")
        .expect("joined")
        .expect_err("no reply");
    assert_eq!(err.status().map(|s| s.code()), Some("8"), "{err}");
    assert!(report.is_clean(), "{report:?}");
    drop(tx);
}

async fn broadcast_member(config: GrpcConfig, tx: mpsc::Sender<GrpcDelivery>) -> GrpcSubscriber {
    forwarding(config, "t-bc-back", B, None, tx).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcasting_member_that_comes_back_gets_what_it_missed() {
    let (h, _dir) = start(|_| {}).await;
    let core = h.core().clone();
    let publisher = publisher(&h, "p-bc-back").await;
    let (tx, mut rx) = mpsc::channel(16);
    let config = sdk(&h, "g-bc-back");
    let a = broadcast_member(config.clone(), tx.clone()).await;
    publisher
        .publish("t-bc-back", text_event("e1"))
        .await
        .expect("published");
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "e1");
    eventually("e1 acked", || core.in_flight() == 0).await;
    let sessions = core.session_count();
    a.close().await;
    eventually("the member left", || core.session_count() < sessions).await;

    // Published while the member is away.
    publisher
        .publish("t-bc-back", text_event("e2"))
        .await
        .expect("published");
    // Another identity subscribing now starts after e2.
    let (otx, mut orx) = mpsc::channel(16);
    let mut other_config = config.clone();
    other_config.pid += 1;
    let other = broadcast_member(other_config, otx).await;
    // The same identity comes back and gets e2.
    let a = broadcast_member(config, tx).await;
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "e2");
    publisher
        .publish("t-bc-back", text_event("e3"))
        .await
        .expect("published");
    for rx in [&mut rx, &mut orx] {
        let d = recv_in_time(rx).await;
        assert_eq!(
            text_of(&d.event),
            "e3",
            "e1 is not redelivered, e2 only to who missed it"
        );
    }
    eventually("all acked", || core.in_flight() == 0).await;
    assert!(rx.try_recv().is_err() && orx.try_recv().is_err());
    a.close().await;
    other.close().await;
    h.shutdown().await;
}

/// A heartbeat call on `ch`: `Ok` if the server answered at all.
async fn call(ch: Channel) -> Result<(), tonic::Status> {
    let mut hb = v1::heartbeat_service_client::HeartbeatServiceClient::new(ch);
    hb.heartbeat(v1::CloudEvent::default()).await.map(|_| ())
}

async fn connect(h: &RuntimeHandle) -> Channel {
    Channel::from_shared(endpoint(h))
        .expect("an endpoint")
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_until_one_closes() {
    let (h, _dir) = start(|c| c.limits.max_connections = 2).await;
    let first = connect(&h).await;
    let second = connect(&h).await;
    call(first.clone()).await.expect("the first connection");
    call(second.clone()).await.expect("the second connection");
    // The server closes it at once; the client sees the connection go (the code it reports,
    // UNAVAILABLE, CANCELLED or UNKNOWN, depends on how far its handshake got).
    call(connect(&h).await).await.expect_err("over the cap");
    // Once a connection closes, its slot is free again.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if call(connect(&h).await).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed slot was never reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call(second)
        .await
        .expect("the second connection still works");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_webhook_subscribe_gets_pushes() {
    let (h, _dir) = start(|_| {}).await;
    let mut hook = http_common::Receiver::ok().await;
    let ch = channel(&h).await;
    let mut consumer = legacy::consumer_service_client::ConsumerServiceClient::new(ch.clone());
    let item = legacy::subscription::SubscriptionItem {
        topic: "t-go-hook".into(),
        mode: 0,
        r#type: 0,
    };
    let sub = legacy::Subscription {
        header: Some(legacy_header(61)),
        consumer_group: "g-go-hook".into(),
        subscription_items: vec![item],
        url: hook.url(),
        reply: None,
    };
    let r = consumer
        .subscribe(sub.clone())
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    let mut publisher = legacy::publisher_service_client::PublisherServiceClient::new(ch);
    let r = publisher
        .publish(simple("t-go-hook", "to-the-hook"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    let pushed = hook.next().await;
    assert!(
        pushed.content().contains("to-the-hook"),
        "{:?}",
        pushed.content()
    );
    let r = consumer
        .unsubscribe(sub)
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_session_expires_unless_it_heartbeats() {
    let (h, _dir) = start(|c| c.server.grpc.client_expiry = Duration::from_millis(800)).await;
    let core = h.core().clone();
    let base = core.session_count();
    let mut quiet = sdk(&h, "p-quiet");
    quiet.pid += 10;
    let quiet = GrpcPublisher::connect(quiet).await.expect("connects");
    let beating = publisher(&h, "p-beating").await;
    quiet
        .publish("t-pub-exp", text_event("a"))
        .await
        .expect("published");
    beating
        .publish("t-pub-exp", text_event("b"))
        .await
        .expect("published");
    assert_eq!(core.session_count(), base + 2, "one session per publisher");
    // The publisher that heartbeats keeps its session; the quiet one loses it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut beats = tokio::time::interval(Duration::from_millis(200));
    let mut expired_at = None;
    loop {
        beats.tick().await;
        beating.heartbeat().await.expect("heartbeat");
        let n = core.session_count();
        assert!(n > base, "the heartbeating publisher's session closed too");
        match expired_at {
            None if n == base + 1 => expired_at = Some(tokio::time::Instant::now()),
            // Two expiries' worth of heartbeats after the quiet one went: the other stays.
            Some(t) if t.elapsed() > Duration::from_millis(1600) => break,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quiet publisher's session never expired"
        );
    }
    // A publisher whose session expired publishes again (a new session).
    quiet
        .publish("t-pub-exp", text_event("c"))
        .await
        .expect("published after expiry");
    assert_eq!(core.session_count(), base + 2);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_sdk_subscriber_right_after_an_event_keeps_its_ack() {
    let (h, _dir) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(4);
    let sub = forwarding(
        sdk(&h, "g-close"),
        "t-close",
        SubscriptionMode::Clustering,
        None,
        tx,
    )
    .await;
    let publisher = publisher(&h, "p-close").await;
    publisher
        .publish("t-close", text_event("last"))
        .await
        .expect("published");
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "last");
    // Closed as soon as the handler returned: the ack must still reach the mesh, so the event
    // is done for the group (a lost ack would send it back to the store, never committed).
    sub.close().await;
    let consumer = eventmesh_storage::ConsumerRef::clustering(
        eventmesh_core::Topic::new("t-close").expect("a topic"),
        eventmesh_core::GroupName::new("g-close").expect("a group"),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = h.store().cursor_info(&consumer).await.expect("cursor");
        if info.committed.iter().map(|(_, s)| *s).sum::<u64>() == 1 && info.in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was never acked: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
}
