//! Bad input to the gRPC server: each case is answered with the documented string status code
//! and a message naming the problem, and the server carries on.

mod grpc_common;

use std::time::Duration;

use eventmesh_protocol_grpc::convert::{integer_value, string_value};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event::Data;
use grpc_common::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn expect(answer: &v1::CloudEvent, code: &str, needle: &str) {
    let (c, msg) = status(answer);
    assert_eq!(c, code, "{msg}");
    assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_are_checked() {
    let (h, _dir) = start(|c| {
        c.limits.max_event_bytes = 64 * 1024;
        c.server.grpc.max_message_bytes = 0; // raised to max_event_bytes + 64 KiB
        c.server.grpc.max_batch_events = 3;
    })
    .await;
    let p = v1::publisher_service_client::PublisherServiceClient::new(channel(&h).await);
    let call = |m: v1::CloudEvent| {
        let mut p = p.clone();
        async move { p.publish(m).await.expect("answered").into_inner() }
    };

    expect(&call(publish_msg("t-ok", "fine")).await, "0", "");

    let mut m = publish_msg("t", "x");
    m.attributes.remove("idc");
    expect(&call(m).await, "6", "idc");
    let mut m = publish_msg("t", "x");
    m.attributes.insert("pid".into(), string_value("abc"));
    expect(&call(m).await, "6", "pid");
    let mut m = publish_msg("t", "x");
    m.attributes.remove(keys::TTL);
    expect(&call(m).await, "7", "ttl");
    let mut m = publish_msg("t", "x");
    m.attributes.remove(keys::SUBJECT);
    expect(&call(m).await, "7", "subject");
    let mut m = publish_msg("t", "x");
    m.attributes.insert(
        keys::DATA_CONTENT_TYPE.into(),
        string_value("application/json"),
    );
    m.data = Some(Data::BinaryData(b"{}".to_vec()));
    expect(&call(m).await, "7", "text_data");
    let mut m = publish_msg("t", "x");
    m.attributes.insert(
        keys::DATA_CONTENT_TYPE.into(),
        string_value("application/octet-stream"),
    );
    expect(&call(m).await, "7", "binary_data");
    let mut m = publish_msg("t", "x");
    m.data = None;
    expect(&call(m).await, "7", "no data");
    expect(&call(publish_msg("bad topic!", "x")).await, "7", "topic");
    let mut m = publish_msg("t", "x");
    m.spec_version = "9.9".into();
    expect(&call(m).await, "7", "spec_version");
    // Over max_event_bytes but inside the message limit: the core refuses it.
    expect(
        &call(publish_msg("t", &"x".repeat(80 * 1024))).await,
        "7",
        "limit",
    );
    // Over the message limit: tonic refuses it before it is read.
    let status = p
        .clone()
        .publish(publish_msg("t", &"x".repeat(200 * 1024)))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{status}"
    );

    // Batches: empty, too many, two topics, a bad event inside.
    let batch = |events: Vec<v1::CloudEvent>| {
        let mut p = p.clone();
        async move {
            p.batch_publish(v1::CloudEventBatch { events })
                .await
                .expect("answered")
                .into_inner()
        }
    };
    expect(&batch(vec![]).await, "10", "no event");
    expect(
        &batch((0..4).map(|_| publish_msg("t", "x")).collect()).await,
        "10",
        "limit",
    );
    expect(
        &batch(vec![publish_msg("t1", "x"), publish_msg("t2", "x")]).await,
        "10",
        "one topic",
    );
    let mut bad = publish_msg("t", "x");
    bad.attributes.remove(keys::UNIQUE_ID);
    expect(
        &batch(vec![publish_msg("t", "x"), bad]).await,
        "7",
        "event 1",
    );
    expect(
        &batch(vec![publish_msg("t", "a"), publish_msg("t", "b")]).await,
        "0",
        "",
    );

    // The server carries on.
    expect(&call(publish_msg("t-ok", "still fine")).await, "0", "");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_overload() {
    let (h, _dir) = start(|c| c.limits.session_publish_rate = 1).await;
    let mut p = v1::publisher_service_client::PublisherServiceClient::new(channel(&h).await);
    let mut codes = Vec::new();
    for _ in 0..5 {
        let a = p
            .publish(publish_msg("t-rate", "x"))
            .await
            .expect("answered")
            .into_inner();
        codes.push(status(&a).0);
    }
    assert_eq!(codes[0], "0");
    assert!(codes.iter().any(|c| c == "1"), "{codes:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_heartbeats_are_checked() {
    let (h, _dir) = start(|_| {}).await;
    let ch = channel(&h).await;
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(ch.clone());
    let mut hb = v1::heartbeat_service_client::HeartbeatServiceClient::new(ch);

    // Webhook subscribe without a url; bad items; no group.
    let a = consumer
        .subscribe(subscription_msg("g", r#"[{"topic":"t"}]"#, 1))
        .await
        .expect("answered")
        .into_inner();
    expect(&a, "7", "url");
    let a = consumer
        .subscribe(subscription_msg(
            "g",
            r#"[{"topic":"t","mode":"SIDEWAYS"}]"#,
            1,
        ))
        .await
        .expect("answered")
        .into_inner();
    expect(&a, "7", "SIDEWAYS");
    let mut m = subscription_msg("g", r#"[{"topic":"t"}]"#, 1);
    m.attributes.remove(keys::CONSUMER_GROUP);
    expect(
        &consumer
            .unsubscribe(m)
            .await
            .expect("answered")
            .into_inner(),
        "7",
        "consumergroup",
    );
    let a = consumer
        .unsubscribe(subscription_msg("g", r#"[{"topic":"t"}]"#, 1))
        .await
        .expect("answered")
        .into_inner();
    expect(&a, "18", "no stream");

    // On a stream: bad messages are answered on the stream, which stays usable.
    let (tx, rx) = mpsc::channel(10);
    let mut inbound = consumer
        .subscribe_stream(ReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    tx.send(subscription_msg("g", "not json", 1))
        .await
        .expect("queued");
    expect(
        &inbound.message().await.expect("ok").expect("an answer"),
        "7",
        "JSON",
    );
    let mut ack = subscription_msg("g", "", 1);
    ack.attributes.insert(
        keys::SUB_MESSAGE_TYPE.into(),
        string_value(keys::SUB_MESSAGE_TYPE_ACK),
    );
    ack.attributes
        .insert(keys::ACK_ID.into(), string_value("x1"));
    tx.send(ack).await.expect("queued");
    expect(
        &inbound.message().await.expect("ok").expect("an answer"),
        "7",
        "ackid",
    );
    let mut noid = subscription_msg("g", r#"[{"topic":"t"}]"#, 1);
    noid.attributes.remove("ip");
    tx.send(noid).await.expect("queued");
    expect(
        &inbound.message().await.expect("ok").expect("an answer"),
        "6",
        "ip",
    );
    tx.send(subscription_msg("g", r#"[{"topic":"t"}]"#, 1))
        .await
        .expect("queued");
    expect(
        &inbound.message().await.expect("ok").expect("an answer"),
        "0",
        "",
    );
    tx.send(subscription_msg("other-group", r#"[{"topic":"t"}]"#, 1))
        .await
        .expect("queued");
    expect(
        &inbound.message().await.expect("ok").expect("an answer"),
        "17",
        "another stream",
    );

    // Heartbeats: bad client type, missing group.
    let beat = |ty: i32, group: Option<&str>| {
        let mut attributes = identity(1);
        attributes.insert(keys::CLIENT_TYPE.into(), integer_value(ty));
        if let Some(g) = group {
            attributes.insert(keys::CONSUMER_GROUP.into(), string_value(g));
        }
        v1::CloudEvent {
            attributes,
            data: Some(Data::TextData("[]".into())),
            ..Default::default()
        }
    };
    expect(
        &hb.heartbeat(beat(7, Some("g")))
            .await
            .expect("answered")
            .into_inner(),
        "7",
        "clienttype",
    );
    expect(
        &hb.heartbeat(beat(2, None))
            .await
            .expect("answered")
            .into_inner(),
        "7",
        "consumergroup",
    );
    expect(
        &hb.heartbeat(beat(2, Some("g")))
            .await
            .expect("answered")
            .into_inner(),
        "0",
        "",
    );
    drop(tx);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_messages_are_checked() {
    let (h, _dir) = start(|_| {}).await;
    let ch = channel(&h).await;
    let mut p = legacy::publisher_service_client::PublisherServiceClient::new(ch.clone());
    let mut hb = legacy::heartbeat_service_client::HeartbeatServiceClient::new(ch);
    let mut m = simple("t", "x");
    m.header = None;
    assert_eq!(
        p.publish(m).await.expect("answered").into_inner().resp_code,
        "6"
    );
    let mut m = simple("t", "x");
    m.ttl.clear();
    let r = p.publish(m).await.expect("answered").into_inner();
    assert_eq!(r.resp_code, "7", "{r:?}");
    assert!(r.resp_msg.contains("ttl"), "{r:?}");
    let r = p
        .batch_publish(legacy::BatchMessage {
            header: Some(legacy_header(1)),
            producer_group: "g".into(),
            topic: "t".into(),
            message_item: vec![],
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "10", "{r:?}");
    let r = hb
        .heartbeat(legacy::Heartbeat {
            header: Some(legacy_header(1)),
            client_type: 5,
            ..Default::default()
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "7", "{r:?}");
    let r = p
        .request_reply({
            let mut m = simple("t-nobody", "q");
            m.ttl = "100".into();
            m
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(r.content.contains(r#""respCode":"22""#), "{}", r.content);
    let _ = Duration::ZERO;
    h.shutdown().await;
}
