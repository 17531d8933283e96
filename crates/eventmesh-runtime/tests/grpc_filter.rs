//! Subscription filters over gRPC: the `filter` attribute of a `subscribeStream` or webhook
//! `subscribe` message (for every item without one), or an item's own `"filter"` in the
//! subscription JSON. Only matching events are pushed, the others are done for the group (the
//! store cursor moves past them); an invalid expression or a different filter for the same
//! (group, topic) is answered `statuscode` "17" with the reason. With the SDK's
//! `GrpcSubscriber::start_filtered` and with raw tonic clients, in process on port 0.

mod grpc_common;
#[path = "http_common/mod.rs"]
mod http_common;

use std::time::Duration;

use eventmesh_core::{CloudEvent, GroupName, SubscriptionMode, SubscriptionType, Topic};
use eventmesh_protocol_grpc::convert::{self, string_value};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use eventmesh_runtime::RuntimeHandle;
use eventmesh_sdk::grpc::{GrpcDelivery, GrpcError, GrpcSubscriber};
use eventmesh_storage::ConsumerRef;
use grpc_common::*;
use tokio::sync::mpsc;
use tonic::Streaming;

const C: SubscriptionMode = SubscriptionMode::Clustering;
const ASYNC: SubscriptionType = SubscriptionType::Async;

fn event(ty: &str, data: &str) -> CloudEvent {
    CloudEvent::new(format!("{:032x}", rand::random::<u128>()), "/filter", ty)
        .with_data("text/plain", data.to_owned())
}

/// Publishes `(type, data)` pairs to `topic` with the SDK.
async fn publish(h: &RuntimeHandle, topic: &str, events: &[(&str, &str)]) {
    let p = publisher(h, "p-filter").await;
    for (ty, d) in events {
        p.publish(topic, event(ty, d)).await.expect("published");
    }
}

/// Waits until the group's cursor on `topic` has committed `n` events and holds none: every
/// event, matching or not, is done for the group (after that nothing more can be pushed).
async fn all_done(h: &RuntimeHandle, topic: &str, group: &str, n: u64) {
    let consumer = ConsumerRef::clustering(
        Topic::new(topic).expect("a topic"),
        GroupName::new(group).expect("a group"),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = h.store().cursor_info(&consumer).await.expect("cursor");
        let committed: u64 = info.committed.iter().map(|(_, s)| *s).sum();
        if committed == n && info.in_flight == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cursor never caught up: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a raw stream, sends `first`, returns the request sender, the response stream and the
/// first answer's `(statuscode, responsemessage)`.
async fn raw_stream(
    h: &RuntimeHandle,
    first: v1::CloudEvent,
) -> (
    mpsc::Sender<v1::CloudEvent>,
    Streaming<v1::CloudEvent>,
    (String, String),
) {
    let (tx, mut inbound) = open_stream(h, first).await;
    let answer = next_message(&mut inbound).await;
    (tx, inbound, status(&answer))
}

fn with_filter(mut msg: v1::CloudEvent, filter: &str) -> v1::CloudEvent {
    msg.attributes
        .insert(keys::FILTER.to_owned(), string_value(filter));
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_subscriber_gets_only_matching_events() {
    let (h, _dir) = start(|_| {}).await;
    let (tx, mut rx) = mpsc::channel::<GrpcDelivery>(100);
    let filter = "type = 'keep' AND source LIKE '/fil%'";
    let sub = forwarding(sdk(&h, "g-f-sdk"), "t-f-sdk", C, Some(filter), tx).await;
    let events = [
        ("drop", "d1"),
        ("keep", "k1"),
        ("drop", "d2"),
        ("drop", "d3"),
        ("keep", "k2"),
        ("other", "d4"),
    ];
    publish(&h, "t-f-sdk", &events).await;
    all_done(&h, "t-f-sdk", "g-f-sdk", events.len() as u64).await;
    let mut got = Vec::new();
    while let Ok(d) = rx.try_recv() {
        assert_eq!(d.event.ty, "keep", "only matching events are pushed");
        got.push(text_of(&d.event));
    }
    assert_eq!(got, ["k1", "k2"]);
    sub.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_subscriber_is_refused_a_bad_or_conflicting_filter() {
    let (h, _dir) = start(|_| {}).await;
    let start = |group: &str, filter: Option<&'static str>| {
        GrpcSubscriber::start_filtered(
            sdk(&h, group),
            vec![("t-f-bad".into(), C, ASYNC)],
            filter,
            |_| async { Ok(None) },
        )
    };
    let err = start("g-f-bad", Some("type = ")).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SubscribeErr), "{err}");
    let GrpcError::Server { message, .. } = &err else {
        panic!("a server refusal: {err}");
    };
    assert!(message.contains("invalid filter"), "{message}");
    assert!(message.contains("parse:"), "{message}");
    assert!(message.contains("column"), "with its position: {message}");

    let ok = start("g-f-bad", Some("type = 'a'"))
        .await
        .expect("subscribed");
    // The same expression spelled differently is the same filter.
    let mut cfg = sdk(&h, "g-f-bad");
    cfg.pid += 1;
    let same = GrpcSubscriber::start_filtered(
        cfg,
        vec![("t-f-bad".into(), C, ASYNC)],
        Some("TYPE=\"a\""),
        |_| async { Ok(None) },
    )
    .await
    .expect("the same filter");
    for other in [Some("type = 'b'"), None] {
        let err = start("g-f-bad", other).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SubscribeErr), "{err}");
        assert!(err.to_string().contains("filter"), "{err}");
    }
    same.close().await;
    ok.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_streams_take_an_item_filter_or_the_filter_attribute() {
    let (h, _dir) = start(|_| {}).await;
    // An item's own filter (the JSON of the subscription), as any client can send it.
    let (tx, mut inbound, (code, msg)) = raw_stream(
        &h,
        subscription_msg(
            "g-f-raw",
            r#"[{"topic":"t-f-raw","mode":"CLUSTERING","type":"ASYNC","filter":"type = 'keep'"}]"#,
            61,
        ),
    )
    .await;
    assert_eq!(code, "0", "{msg}");

    // Another member of the group with the same filter as an attribute: accepted; with
    // another one, or an invalid one: refused "17" naming the reason.
    let items = r#"[{"topic":"t-f-raw"}]"#;
    let (_same_tx, _same_in, (code, msg)) = raw_stream(
        &h,
        with_filter(subscription_msg("g-f-raw", items, 62), "type='keep'"),
    )
    .await;
    assert_eq!(code, "0", "{msg}");
    let (_o, _oi, (code, msg)) = raw_stream(
        &h,
        with_filter(subscription_msg("g-f-raw", items, 63), "type = 'other'"),
    )
    .await;
    assert_eq!(code, "17", "{msg}");
    assert!(msg.contains("already subscribes"), "{msg}");
    assert!(msg.contains("filter"), "{msg}");
    let (_b, _bi, (code, msg)) = raw_stream(
        &h,
        with_filter(subscription_msg("g-f-raw2", items, 64), "type = = 'x'"),
    )
    .await;
    assert_eq!(code, "17", "{msg}");
    assert!(msg.contains("invalid filter"), "{msg}");
    assert!(msg.contains("parse:"), "{msg}");
    // The item's filter wins over the attribute.
    let (_w, _wi, (code, msg)) = raw_stream(
        &h,
        with_filter(
            subscription_msg(
                "g-f-raw",
                r#"[{"topic":"t-f-raw","filter":"type = 'keep'"}]"#,
                65,
            ),
            "type = 'ignored'",
        ),
    )
    .await;
    assert_eq!(code, "0", "{msg}");
    drop((_w, _wi, _same_tx, _same_in));

    // Only the one matching event reaches the remaining stream (which never acks: taken on
    // write).
    publish(
        &h,
        "t-f-raw",
        &[("drop", "d1"), ("keep", "k1"), ("drop", "d2")],
    )
    .await;
    let pushed = tokio::time::timeout(WAIT, inbound.message())
        .await
        .expect("a push in time")
        .expect("no error")
        .expect("a push");
    assert_eq!(pushed.r#type, "keep");
    assert_eq!(convert::text_data(&pushed), Some("k1"));
    all_done(&h, "t-f-raw", "g-f-raw", 3).await;
    drop(tx);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_subscribe_passes_its_filter_to_the_push_engine() {
    let (h, _dir) = start(|_| {}).await;
    let mut hook = http_common::Receiver::ok().await;
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(channel(&h).await);
    let mut s = with_filter(
        subscription_msg("g-f-hook", r#"[{"topic":"t-f-hook"}]"#, 71),
        "type = 'keep'",
    );
    s.attributes
        .insert(keys::URL.into(), string_value(hook.url()));
    let bad = with_filter(s.clone(), "type = ");
    let a = consumer
        .subscribe(bad)
        .await
        .expect("answered")
        .into_inner();
    let (code, msg) = status(&a);
    assert_eq!(code, "17", "{msg}");
    assert!(msg.contains("parse:"), "{msg}");
    let a = consumer.subscribe(s).await.expect("answered").into_inner();
    assert_eq!(status(&a).0, "0", "{:?}", status(&a));
    publish(
        &h,
        "t-f-hook",
        &[("drop", "d1"), ("keep", "k1"), ("drop", "d2")],
    )
    .await;
    let pushed = hook.next().await;
    assert!(pushed.content().contains("k1"), "{:?}", pushed.content());
    all_done(&h, "t-f-hook", "g-f-hook", 3).await;
    assert!(
        hook.try_next().is_none(),
        "non-matching events are not pushed"
    );
    assert_eq!(hook.count(), 1);
    h.shutdown().await;
}
