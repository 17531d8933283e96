//! The gRPC server's client lifecycle, in process on port 0: heartbeat expiry (a client that
//! stops heartbeating is expired and its subscriptions released), stream backpressure (a
//! subscriber that does not read stops the pushes at its window and gets the rest once it
//! reads), and the shutdown grace (streams drain, acks still count, un-acked events come back
//! after a restart, acknowledged publishes are durable, the shutdown ends in time).

mod grpc_common;

use std::collections::BTreeSet;
use std::time::Duration;

use eventmesh_config::StorageKind;
use eventmesh_core::{CloudEvent, GroupName, SubscriptionMode, Topic};
use eventmesh_protocol_grpc::convert::{self, string_value};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event::Data;
use eventmesh_runtime::{Runtime, RuntimeHandle};
use eventmesh_sdk::grpc::GrpcDelivery;
use eventmesh_storage::{ConsumerRef, StartFrom};
use grpc_common::*;
use tokio::sync::mpsc;
use tonic::{Code, Streaming};

const C: SubscriptionMode = SubscriptionMode::Clustering;

/// Checks that `cond` keeps holding for `during` (for checks that something does *not*
/// happen; never used to wait for something that should).
async fn stays(what: &str, during: Duration, cond: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + during;
    while tokio::time::Instant::now() < end {
        assert!(cond(), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `(committed, in_flight)` of the group's cursor on `topic`.
async fn cursor(h: &RuntimeHandle, topic: &str, group: &str) -> (u64, u64) {
    let consumer = ConsumerRef::clustering(
        Topic::new(topic).expect("a topic"),
        GroupName::new(group).expect("a group"),
    );
    let info = h.store().cursor_info(&consumer).await.expect("cursor");
    (
        info.committed.iter().map(|(_, s)| *s).sum(),
        info.in_flight as u64,
    )
}

/// A stream subscription asking for explicit acks with window `unack`.
fn explicit_sub(group: &str, topic: &str, pid: u32, unack: usize) -> v1::CloudEvent {
    let mut m = subscription_msg(group, &format!(r#"[{{"topic":"{topic}"}}]"#), pid);
    m.attributes.insert(
        keys::ACK_MODE.to_owned(),
        string_value(keys::ACK_MODE_EXPLICIT),
    );
    m.attributes
        .insert(keys::UNACK.to_owned(), string_value(unack.to_string()));
    m
}

/// An ack of `ids`.
fn ack(ids: &[String]) -> v1::CloudEvent {
    let mut attributes = identity(1);
    attributes.insert(
        keys::SUB_MESSAGE_TYPE.to_owned(),
        string_value(keys::SUB_MESSAGE_TYPE_ACK),
    );
    attributes.insert(keys::ACK_ID.to_owned(), string_value(ids.join(",")));
    v1::CloudEvent {
        attributes,
        ..Default::default()
    }
}

/// A raw stream: sends `first`, checks the answer is "0", returns the request sender and the
/// response stream.
async fn open(
    h: &RuntimeHandle,
    first: v1::CloudEvent,
) -> (mpsc::Sender<v1::CloudEvent>, Streaming<v1::CloudEvent>) {
    let (tx, mut inbound) = open_stream(h, first).await;
    let answer = next_message(&mut inbound).await;
    assert_eq!(status(&answer).0, "0", "{:?}", status(&answer));
    (tx, inbound)
}

/// Whether another message arrives within `within` (for checks that something does *not*
/// happen; never used to wait for something that should).
async fn quiet(inbound: &mut Streaming<v1::CloudEvent>, within: Duration) -> bool {
    tokio::time::timeout(within, inbound.message())
        .await
        .is_err()
}

fn ack_id(pushed: &v1::CloudEvent) -> String {
    convert::attribute(pushed, keys::ACK_ID).expect("a pushed event carries an ackid")
}

async fn publish_texts(h: &RuntimeHandle, topic: &str, texts: impl IntoIterator<Item = String>) {
    let p = publisher(h, "p-life").await;
    let events: Vec<CloudEvent> = texts.into_iter().map(eventmesh_sdk::text_event).collect();
    for chunk in events.chunks(10) {
        p.publish_batch(topic, chunk).await.expect("published");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_heartbeating_is_expired_and_its_events_go_to_another_member() {
    let (h, _dir) = start(|c| {
        c.server.grpc.client_expiry = Duration::from_millis(1500);
    })
    .await;
    // A raw client that subscribes, takes one event, and then says nothing: no heartbeat, no
    // ack.
    let (_tx, mut silent) = open(&h, explicit_sub("g-exp", "t-exp", 81, 1)).await;
    publish_texts(&h, "t-exp", ["held".to_owned()]).await;
    let held = next_message(&mut silent).await;
    assert_eq!(convert::text_data(&held), Some("held"));

    // A member that heartbeats (every 300 ms) stays.
    let (tx, mut rx) = mpsc::channel::<GrpcDelivery>(10);
    let alive = forwarding(sdk(&h, "g-exp"), "t-exp", C, None, tx).await;

    // The silent client's stream is ended once its expiry passed...
    let ended = tokio::time::timeout(WAIT, silent.message())
        .await
        .expect("the silent stream ends in time");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // ...its held event goes to the member that stayed...
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "held");
    // ...and a heartbeat of the expired client is asked to subscribe again.
    let mut hb = v1::heartbeat_service_client::HeartbeatServiceClient::new(channel(&h).await);
    let mut attributes = identity(81);
    attributes.insert(keys::CLIENT_TYPE.into(), convert::integer_value(2));
    attributes.insert(keys::CONSUMER_GROUP.into(), string_value("g-exp"));
    let beat = v1::CloudEvent {
        attributes,
        data: Some(Data::TextData(
            r#"[{"topic":"t-exp","url":"grpc_stream"}]"#.to_owned(),
        )),
        ..Default::default()
    };
    let answer = hb.heartbeat(beat).await.expect("answered").into_inner();
    assert_eq!(status_of(&answer), "30");

    // The member that heartbeats was never expired: it gets new events without resubscribing.
    publish_texts(&h, "t-exp", ["after".to_owned()]).await;
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "after");
    assert_eq!(alive.resubscribes(), 0);
    alive.close().await;
    h.shutdown().await;
}

fn status_of(answer: &v1::CloudEvent) -> String {
    status(answer).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_does_not_ack_stops_at_its_window_and_resumes() {
    let (h, _dir) = start(|_| {}).await;
    let window = 4;
    let n = 40;
    let (tx, mut inbound) = open(&h, explicit_sub("g-bp", "t-bp", 91, window)).await;
    publish_texts(&h, "t-bp", (0..n).map(|i| format!("e{i}"))).await;
    let core = h.core().clone();
    eventually("the window is full", || core.in_flight() == window).await;
    // The client reads what was pushed: exactly the window, then nothing until it acks.
    let mut got = Vec::new();
    let mut held = Vec::new();
    for _ in 0..window {
        let m = next_message(&mut inbound).await;
        held.push(ack_id(&m));
        got.push(convert::text_data(&m).expect("text").to_owned());
    }
    assert!(
        quiet(&mut inbound, Duration::from_millis(300)).await,
        "nothing beyond the window is pushed"
    );
    assert_eq!(core.in_flight(), window);
    let (committed, _) = cursor(&h, "t-bp", "g-bp").await;
    assert_eq!(committed, 0, "nothing was taken without an ack");
    // Acks reopen the window: everything arrives, once.
    while got.len() < n {
        tx.send(ack(&held)).await.expect("sent");
        held.clear();
        let m = next_message(&mut inbound).await;
        held.push(ack_id(&m));
        got.push(convert::text_data(&m).expect("text").to_owned());
    }
    tx.send(ack(&held)).await.expect("sent");
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), n, "no duplicates: {got:?}");
    eventually("every event acked", || core.in_flight() == 0).await;
    drop(tx);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_does_not_read_is_held_back_by_http2_flow_control() {
    // An Apache-style client (no acks: an event counts as taken once HTTP/2 took it) that does
    // not read: the server may only push what the client's HTTP/2 windows and the small
    // response channel hold, never the whole backlog.
    let (h, _dir) = start(|c| c.delivery.window = 8).await;
    let n: usize = 160;
    let big = "x".repeat(64 * 1024);
    let (tx, mut inbound) = open(&h, subscription_msg("g-fc", r#"[{"topic":"t-fc"}]"#, 92)).await;
    publish_texts(&h, "t-fc", (0..n).map(|i| format!("{i:04}{big}"))).await;
    let core = h.core().clone();
    // The stream stops taking pushes: the member's window fills and stays full.
    eventually("the window is full", || core.in_flight() == 8).await;
    stays("the window stays full", Duration::from_millis(300), || {
        core.in_flight() == 8
    })
    .await;
    let (taken, _) = cursor(&h, "t-fc", "g-fc").await;
    assert!(
        taken < (n / 2) as u64,
        "{taken} of {n} 64 KiB events taken by a client that reads nothing"
    );
    // Reading lets the rest through, each event once.
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        let m = next_message(&mut inbound).await;
        let t = convert::text_data(&m).expect("text");
        assert!(seen.insert(t[..4].to_owned()), "duplicate {}", &t[..4]);
    }
    eventually("every event taken", || core.in_flight() == 0).await;
    drop(tx);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_streams_within_the_grace_and_keeps_what_was_not_acked() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = config(dir.path());
    c.storage.kind = StorageKind::Embedded;
    // The grace is a quarter of the shutdown timeout (at most 3 s): 1 s here.
    c.shutdown.timeout = Duration::from_secs(4);
    let h = Runtime::start(c.clone()).await.expect("starts");
    assert!(h.wait_ready().await);
    let window = 4;
    let (tx, mut inbound) = open(&h, explicit_sub("g-sd", "t-sd", 93, window)).await;
    publish_texts(&h, "t-sd", (1..=6).map(|i| format!("e{i}"))).await;
    let mut held = Vec::new();
    for _ in 0..window {
        let m = next_message(&mut inbound).await;
        held.push((ack_id(&m), convert::text_data(&m).expect("text").to_owned()));
    }

    // Publishes in flight while the node stops: each is answered, and each one answered
    // "0" is durable.
    let publisher = publisher(&h, "p-sd").await;
    let mut before = Vec::new();
    for i in 0..3 {
        let e = eventmesh_sdk::text_event(format!("b{i}"));
        before.push(e.id.clone());
        publisher.publish("t-sd-pub", e).await.expect("published");
    }
    let publishing = tokio::spawn(async move {
        let mut acked = before;
        let mut refused = 0;
        for i in 0..200 {
            let e = eventmesh_sdk::text_event(format!("p{i}"));
            let id = e.id.clone();
            match tokio::time::timeout(WAIT, publisher.publish("t-sd-pub", e)).await {
                Ok(Ok(())) => acked.push(id),
                Ok(Err(_)) => {
                    refused += 1;
                    if refused >= 3 {
                        break;
                    }
                }
                Err(_) => panic!("publish {i} got no answer"),
            }
        }
        acked
    });

    let shutdown = tokio::spawn(h.shutdown());
    // Draining: a subscription is now answered "8" (stop) on the stream, which still reads.
    loop {
        tx.send(explicit_sub("g-sd", "t-sd-probe", 93, window))
            .await
            .expect("sent");
        let answer = next_message(&mut inbound).await;
        match status(&answer).0.as_str() {
            "8" => break,
            "0" => tokio::task::yield_now().await,
            other => panic!("unexpected answer {other}: {:?}", status(&answer)),
        }
    }
    // Acks still count during the grace: e1 and e2 are done, e3 and e4 stay held.
    let (done, kept) = held.split_at(2);
    tx.send(ack(&done
        .iter()
        .map(|(id, _)| id.clone())
        .collect::<Vec<_>>()))
        .await
        .expect("sent");
    // The stream ends with UNAVAILABLE once the grace is over (it still holds events).
    let end = tokio::time::timeout(WAIT, inbound.message())
        .await
        .expect("the stream ends in time");
    let status = end.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let report = shutdown.await.expect("joined");
    assert!(report.is_clean(), "{report:?}");
    assert!(report.elapsed < c.shutdown.timeout, "{report:?}");
    let acked = publishing.await.expect("joined");
    drop(tx);

    // After a restart on the same data: what was acked in the grace is done, what the client
    // still held (and what it never got) comes again.
    let h = Runtime::start(c).await.expect("restarts");
    assert!(h.wait_ready().await);
    let (stx, mut rx) = mpsc::channel::<GrpcDelivery>(10);
    let sub = forwarding(sdk(&h, "g-sd"), "t-sd", C, None, stx).await;
    // Wait until all six are done for the group (acked by the store), then look at what came.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (committed, in_flight) = cursor(&h, "t-sd", "g-sd").await;
        if committed == 6 && in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never finished: committed {committed}, in flight {in_flight}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = Vec::new();
    while let Ok(d) = rx.try_recv() {
        again.push(text_of(&d.event));
    }
    again.sort();
    let mut want: Vec<String> = kept.iter().map(|(_, t)| t.clone()).collect();
    want.extend(["e5".to_owned(), "e6".to_owned()]);
    want.sort();
    assert_eq!(
        again, want,
        "e1 and e2 (acked in the grace) are not delivered again"
    );
    sub.close().await;

    // Every publish answered "0" before or during the shutdown is in the store.
    let reader = ConsumerRef::clustering(
        Topic::new("t-sd-pub").expect("a topic"),
        GroupName::new("g-sd-reader").expect("a group"),
    );
    h.store()
        .subscribe(&reader, StartFrom::Earliest)
        .await
        .expect("a cursor");
    let mut stored = BTreeSet::new();
    loop {
        let batch = h
            .store()
            .fetch(
                &reader,
                500,
                Duration::from_secs(30),
                Duration::from_millis(50),
            )
            .await
            .expect("fetched");
        if batch.is_empty() {
            break;
        }
        stored.extend(batch.into_iter().map(|d| d.record.event.id.clone()));
    }
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let report = h.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stream_that_does_not_read() {
    let (h, _dir) = start(|c| {
        c.delivery.window = 8;
        c.shutdown.timeout = Duration::from_secs(4);
    })
    .await;
    let big = "x".repeat(64 * 1024);
    let (tx, _inbound) = open(
        &h,
        subscription_msg("g-stuck", r#"[{"topic":"t-stuck"}]"#, 94),
    )
    .await;
    publish_texts(&h, "t-stuck", (0..160).map(|i| format!("{i:04}{big}"))).await;
    let core = h.core().clone();
    eventually("the window is full", || core.in_flight() == 8).await;
    let timeout = h.config().shutdown.timeout;
    let report = h.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(report.elapsed < timeout, "{report:?}");
    drop(tx);
}
