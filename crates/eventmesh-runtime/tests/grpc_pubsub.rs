//! The gRPC server end to end, in process on port 0, with the SDK's gRPC client, raw v1
//! clients (as the Apache EventMesh Java SDK: no acks) and raw legacy clients (as the Go SDK).

mod grpc_common;
#[path = "http_common/mod.rs"]
mod http_common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventmesh_core::{CloudEvent, SubscriptionMode, SubscriptionType};
use eventmesh_protocol_grpc::convert::{self, string_value};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event::Data;
use eventmesh_runtime::{Runtime, RuntimeHandle};
use eventmesh_sdk::grpc::{GrpcPublisher, GrpcSubscriber};
use eventmesh_sdk::text_event;
use grpc_common::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const C: SubscriptionMode = SubscriptionMode::Clustering;
const B: SubscriptionMode = SubscriptionMode::Broadcasting;
const ASYNC: SubscriptionType = SubscriptionType::Async;
const SYNC: SubscriptionType = SubscriptionType::Sync;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publish_rpc_reaches_a_stream_subscriber_and_is_acked() {
    let (h, _dir) = start(|_| {}).await;
    let (sub, mut rx) = collecting(sdk(&h, "g-all"), "t-all", C).await;
    let p = publisher(&h, "p-all").await;
    p.publish("t-all", text_event("a")).await.expect("publish");
    p.publish_one_way("t-all", text_event("b"))
        .await
        .expect("one way");
    p.publish_batch(
        "t-all",
        &[text_event("c1"), text_event("c2"), text_event("c3")],
    )
    .await
    .expect("batch");
    p.publish_batch_one_way("t-all", &[text_event("d1"), text_event("d2")])
        .await
        .expect("batch one way");
    p.heartbeat().await.expect("publisher heartbeat");
    let mut got = BTreeSet::new();
    for _ in 0..7 {
        let d = recv_in_time(&mut rx).await;
        assert_eq!(d.topic, "t-all");
        assert!(!d.is_request);
        got.insert(text_of(&d.event));
    }
    let want: BTreeSet<String> = ["a", "b", "c1", "c2", "c3", "d1", "d2"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
    let core = h.core().clone();
    eventually("every push acked", || core.in_flight() == 0).await;
    sub.close().await;
    let report = h.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_gets_the_event_again() {
    let (h, _dir) = start(|c| {
        c.delivery.backoff_initial = Duration::from_millis(20);
    })
    .await;
    let seen = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::channel(10);
    let s2 = seen.clone();
    let sub = GrpcSubscriber::start(
        sdk(&h, "g-nack"),
        vec![("t-nack".into(), C, ASYNC)],
        move |d| {
            let n = s2.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                if n == 0 {
                    return Err("not yet".into());
                }
                let _ = tx.send(d).await;
                Ok(None)
            }
        },
    )
    .await
    .expect("subscribed");
    let p = publisher(&h, "p-nack").await;
    p.publish("t-nack", text_event("retry-me"))
        .await
        .expect("publish");
    let d = recv_in_time(&mut rx).await;
    assert_eq!(text_of(&d.event), "retry-me");
    assert_eq!(seen.load(Ordering::SeqCst), 2, "refused once, then handled");
    sub.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_members_share_the_load_and_nothing_is_lost_when_one_drops() {
    let (h, _dir) = start(|_| {}).await;
    // Member A acks everything; member B takes events and never finishes handling them.
    let (a, mut a_rx) = collecting(sdk(&h, "g-cl"), "t-cl", C).await;
    let (b_tx, mut b_rx) = mpsc::channel(1000);
    let mut b_config = sdk(&h, "g-cl");
    b_config.pid += 1;
    let b = GrpcSubscriber::start(b_config, vec![("t-cl".into(), C, ASYNC)], move |d| {
        let tx = b_tx.clone();
        async move {
            let _ = tx.send(d).await;
            std::future::pending::<()>().await;
            Ok(None)
        }
    })
    .await
    .expect("B subscribed");
    let p = publisher(&h, "p-cl").await;
    let n = 20;
    for i in 0..n {
        p.publish("t-cl", text_event(format!("e{i}")))
            .await
            .expect("publish");
    }
    // B got its share (and holds it un-acked); then it drops mid-stream.
    let first_b = recv_in_time(&mut b_rx).await;
    b.close().await;
    let mut got = BTreeSet::new();
    while got.len() < n {
        got.insert(text_of(&recv_in_time(&mut a_rx).await.event));
    }
    assert!(
        got.contains(&text_of(&first_b.event)),
        "B's event went to A"
    );
    let want: BTreeSet<String> = (0..n).map(|i| format!("e{i}")).collect();
    assert_eq!(got, want, "every event reached A");
    let core = h.core().clone();
    eventually("every push acked", || core.in_flight() == 0).await;
    a.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_members_each_get_every_event() {
    let (h, _dir) = start(|_| {}).await;
    let (a, mut a_rx) = collecting(sdk(&h, "g-bc"), "t-bc", B).await;
    let mut other = sdk(&h, "g-bc");
    other.pid += 7;
    let (b, mut b_rx) = collecting(other, "t-bc", B).await;
    let p = publisher(&h, "p-bc").await;
    for i in 0..3 {
        p.publish("t-bc", text_event(format!("b{i}")))
            .await
            .expect("publish");
    }
    for rx in [&mut a_rx, &mut b_rx] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(text_of(&recv_in_time(rx).await.event));
        }
        got.sort();
        assert_eq!(got, ["b0", "b1", "b2"]);
    }
    a.close().await;
    b.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_over_the_stream() {
    let (h, _dir) = start(|_| {}).await;
    let sub = GrpcSubscriber::start(
        sdk(&h, "g-rr"),
        vec![("t-rr".into(), C, SYNC)],
        |d| async move {
            assert!(d.is_request, "a SYNC push is a request");
            Ok(Some(text_event(format!("pong:{}", text_of(&d.event)))))
        },
    )
    .await
    .expect("subscribed");
    let p = publisher(&h, "p-rr").await;
    let reply = p
        .request_reply("t-rr", text_event("ping"), Duration::from_secs(5))
        .await
        .expect("a reply");
    assert_eq!(text_of(&reply), "pong:ping");
    // No responder: the requester hears a timeout (statuscode 22), not silence.
    let err = p
        .request_reply("t-nobody", text_event("ping"), Duration::from_millis(200))
        .await
        .expect_err("no reply");
    assert_eq!(err.status().map(|s| s.code()), Some("22"), "{err}");
    sub.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_java_style_stream_without_acks_and_subscription_reply() {
    let (h, _dir) = start(|_| {}).await;
    let ch = channel(&h).await;
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(ch.clone());
    let (tx, rx) = mpsc::channel(10);
    tx.send(subscription_msg(
        "g-raw",
        r#"[{"topic":"t-raw","mode":"CLUSTERING","type":"SYNC"}]"#,
        99,
    ))
    .await
    .expect("queued");
    let mut inbound = consumer
        .subscribe_stream(ReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    let answer = inbound.message().await.expect("ok").expect("an answer");
    assert_eq!(status(&answer).0, "0");
    // A request arrives; the Java SDK answers with `submessagetype=subscription_reply` and the
    // SubscriptionReply JSON, echoing the pushed attributes.
    let publisher = publisher(&h, "p-raw").await;
    let requester = tokio::spawn(async move {
        publisher
            .request_reply("t-raw", text_event("q"), Duration::from_secs(5))
            .await
    });
    let pushed = inbound.message().await.expect("ok").expect("a request");
    assert!(convert::attribute(&pushed, keys::ACK_ID).is_some());
    let mut reply = pushed.clone();
    reply.attributes.insert(
        keys::SUB_MESSAGE_TYPE.to_owned(),
        string_value(keys::SUB_MESSAGE_TYPE_REPLY),
    );
    reply.data = Some(Data::TextData(
        r#"{"producerGroup":"g-raw","topic":"t-raw","content":"answer","ttl":"4000","uniqueId":"r1","seqNum":"1","properties":{}}"#.to_owned(),
    ));
    tx.send(reply).await.expect("queued");
    let got = requester.await.expect("joined").expect("the reply");
    assert_eq!(text_of(&got), "answer");
    // No ack was ever sent: the push counted as taken when it was written.
    let core = h.core().clone();
    eventually("the push settled on write", || core.in_flight() == 0).await;
    drop(tx);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_heartbeat_resubscribe_code() {
    let (h, _dir) = start(|_| {}).await;
    let cfg = sdk(&h, "g-un");
    let (sub, _rx) = collecting(cfg.clone(), "t-un", C).await;
    let ch = channel(&h).await;
    let mut hb = v1::heartbeat_service_client::HeartbeatServiceClient::new(ch.clone());
    let beat = |topic: &str| {
        let mut attributes = identity(cfg.pid);
        attributes.insert("sys".into(), string_value(cfg.sys.clone()));
        attributes.insert(keys::CLIENT_TYPE.into(), convert::integer_value(2));
        attributes.insert(keys::CONSUMER_GROUP.into(), string_value("g-un"));
        v1::CloudEvent {
            attributes,
            data: Some(Data::TextData(format!(
                r#"[{{"topic":"{topic}","url":"grpc_stream"}}]"#
            ))),
            ..Default::default()
        }
    };
    let ok = hb
        .heartbeat(beat("t-un"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&ok).0, "0", "{:?}", status(&ok));
    let unknown = hb
        .heartbeat(beat("t-other"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&unknown).0, "30", "{:?}", status(&unknown));
    // Unsubscribe the SDK's stream by its identity.
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(ch);
    let mut un = subscription_msg("g-un", r#"[{"topic":"t-un"}]"#, cfg.pid);
    un.attributes
        .insert("sys".into(), string_value(cfg.sys.clone()));
    let a = consumer
        .unsubscribe(un.clone())
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&a).0, "0", "{:?}", status(&a));
    let again = consumer
        .unsubscribe(un)
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&again).0, "18", "{:?}", status(&again));
    // The server no longer holds it: its heartbeat now asks for a resubscribe.
    let gone = hb
        .heartbeat(beat("t-un"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&gone).0, "30");
    sub.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_subscribes_again_after_a_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = config(dir.path());
    let h = Runtime::start(c.clone()).await.expect("starts");
    assert!(h.wait_ready().await);
    let addr = h.grpc_addr().expect("gRPC");
    let (sub, mut rx) = collecting(sdk(&h, "g-rs"), "t-rs", C).await;
    assert_eq!(sub.resubscribes(), 0);
    h.shutdown().await;
    // The same port (the one the OS gave the first node) and data directory.
    c.server.grpc.listen = addr;
    let h2 = Runtime::start(c).await.expect("restarts");
    assert!(h2.wait_ready().await);
    eventually("the subscriber came back", || sub.resubscribes() >= 1).await;
    let core = h2.core().clone();
    eventually("its subscription is in place", || {
        core.dispatcher_count() >= 1
    })
    .await;
    let p = publisher(&h2, "p-rs").await;
    p.publish("t-rs", text_event("after"))
        .await
        .expect("publish");
    assert_eq!(text_of(&recv_in_time(&mut rx).await.event), "after");
    sub.close().await;
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_go_sdk_services() {
    let (h, _dir) = start(|_| {}).await;
    let ch = channel(&h).await;
    let mut publisher = legacy::publisher_service_client::PublisherServiceClient::new(ch.clone());
    let mut consumer = legacy::consumer_service_client::ConsumerServiceClient::new(ch.clone());
    let mut heartbeat = legacy::heartbeat_service_client::HeartbeatServiceClient::new(ch);
    let (tx, rx) = mpsc::channel(10);
    let item = |topic: &str, ty: i32| legacy::subscription::SubscriptionItem {
        topic: topic.into(),
        mode: 0,
        r#type: ty,
    };
    tx.send(legacy::Subscription {
        header: Some(legacy_header(1)),
        consumer_group: "g-go".into(),
        subscription_items: vec![item("t-go", 0), item("t-go-rr", 1)],
        url: String::new(),
        reply: None,
    })
    .await
    .expect("queued");
    let mut inbound = consumer
        .subscribe_stream(ReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    let answer = inbound.message().await.expect("ok").expect("an answer");
    assert!(
        answer.content.contains(r#""respCode":"0""#),
        "{}",
        answer.content
    );

    let r = publisher
        .publish(simple("t-go", "hello-go"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    let m = inbound.message().await.expect("ok").expect("a message");
    assert_eq!((m.topic.as_str(), m.content.as_str()), ("t-go", "hello-go"));

    let batch = legacy::BatchMessage {
        header: Some(legacy_header(777)),
        producer_group: "go-pub".into(),
        topic: "t-go".into(),
        message_item: (0..2)
            .map(|i| legacy::batch_message::MessageItem {
                content: format!("batch-{i}"),
                ttl: "4000".into(),
                unique_id: format!("b{i}"),
                seq_num: format!("{i}"),
                tag: String::new(),
                properties: HashMap::new(),
            })
            .collect(),
    };
    let r = publisher
        .batch_publish(batch)
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        got.insert(
            inbound
                .message()
                .await
                .expect("ok")
                .expect("a message")
                .content,
        );
    }
    assert_eq!(
        got,
        ["batch-0", "batch-1"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );

    for (ty, group) in [(0, ("go-pub", "")), (1, ("", "g-go"))] {
        let r = heartbeat
            .heartbeat(legacy::Heartbeat {
                header: Some(legacy_header(1)),
                client_type: ty,
                producer_group: group.0.into(),
                consumer_group: group.1.into(),
                heartbeat_items: vec![legacy::heartbeat::HeartbeatItem {
                    topic: "t-go".into(),
                    url: String::new(),
                }],
            })
            .await
            .expect("answered")
            .into_inner();
        assert_eq!(r.resp_code, "0", "client type {ty}: {r:?}");
    }

    // Request-reply: the stream subscriber answers with a Subscription carrying a reply.
    let mut requester = publisher.clone();
    let req = tokio::spawn(async move { requester.request_reply(simple("t-go-rr", "ask")).await });
    let pushed = inbound.message().await.expect("ok").expect("a request");
    assert_eq!(pushed.content, "ask");
    tx.send(legacy::Subscription {
        header: Some(legacy_header(1)),
        consumer_group: "g-go".into(),
        subscription_items: vec![],
        url: String::new(),
        reply: Some(legacy::subscription::Reply {
            producer_group: "g-go".into(),
            topic: "t-go-rr".into(),
            content: "answered".into(),
            ttl: "4000".into(),
            unique_id: "r1".into(),
            seq_num: "1".into(),
            tag: String::new(),
            properties: pushed.properties.clone(),
        }),
    })
    .await
    .expect("queued");
    let reply = req.await.expect("joined").expect("answered").into_inner();
    assert_eq!(reply.content, "answered");

    let r = consumer
        .unsubscribe(legacy::Subscription {
            header: Some(legacy_header(1)),
            consumer_group: "g-go".into(),
            subscription_items: vec![item("t-go", 0)],
            url: String::new(),
            reply: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.resp_code, "0", "{r:?}");
    drop(tx);
    h.shutdown().await;
}

async fn tcp_client(h: &RuntimeHandle, group: &str, sub: bool) -> eventmesh_sdk::Client {
    let addr = h.tcp_addr().expect("TCP").to_string();
    let mut b = eventmesh_sdk::ClientConfig::builder(addr, group);
    if sub {
        b = b.purpose(eventmesh_sdk::Purpose::Sub);
    }
    eventmesh_sdk::Client::connect(b.build().expect("a config"))
        .await
        .expect("TCP connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_protocol_with_tcp_and_http() {
    let (h, _dir) = start(|_| {}).await;
    // gRPC publish → TCP subscriber.
    let tcp_sub = tcp_client(&h, "g-x-tcp", true).await;
    let (ttx, mut trx) = mpsc::channel(10);
    tcp_sub
        .subscribe("t-x-grpc", C, ASYNC, move |d: eventmesh_sdk::Delivery| {
            let tx = ttx.clone();
            async move {
                let _ = tx.send(d.event).await;
                Ok(())
            }
        })
        .await
        .expect("TCP subscribed");
    let p = publisher(&h, "p-x").await;
    p.publish("t-x-grpc", text_event("grpc-to-tcp"))
        .await
        .expect("publish");
    assert_eq!(text_of(&recv_in_time(&mut trx).await), "grpc-to-tcp");

    // TCP publish → gRPC subscriber.
    let (gsub, mut grx) = collecting(sdk(&h, "g-x-grpc"), "t-x-tcp", C).await;
    let tcp_pub = tcp_client(&h, "p-x-tcp", false).await;
    tcp_pub
        .publish("t-x-tcp", text_event("tcp-to-grpc"))
        .await
        .expect("TCP publish");
    assert_eq!(text_of(&recv_in_time(&mut grx).await.event), "tcp-to-grpc");

    // HTTP publish → gRPC subscriber.
    let http = http_common::Http::default();
    let r = http
        .post(
            &format!("{}/eventmesh/publish/t-x-tcp", http_common::base(&h)),
            &[("content-type", "text/plain")],
            "http-to-grpc",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text_of(&recv_in_time(&mut grx).await.event), "http-to-grpc");

    // gRPC webhook subscribe → the HTTP push engine → a webhook.
    let mut hook = http_common::Receiver::ok().await;
    let ch = channel(&h).await;
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(ch);
    let mut s = subscription_msg("g-x-hook", r#"[{"topic":"t-x-hook"}]"#, 5);
    s.attributes
        .insert(keys::URL.into(), string_value(hook.url()));
    let a = consumer.subscribe(s).await.expect("answered").into_inner();
    assert_eq!(status(&a).0, "0", "{:?}", status(&a));
    p.publish("t-x-hook", text_event("grpc-to-webhook"))
        .await
        .expect("publish");
    let pushed = hook.next().await;
    assert!(
        pushed.content().contains("grpc-to-webhook"),
        "{:?}",
        pushed.content()
    );

    gsub.close().await;
    tcp_sub.close().await;
    tcp_pub.close().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_rustls() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http_tls");
    let (h, _dir) = start(|c| {
        c.server.grpc.tls.enabled = true;
        c.server.grpc.tls.cert_file = data.join("cert.pem").display().to_string();
        c.server.grpc.tls.key_file = data.join("key.pem").display().to_string();
    })
    .await;
    let port = h.grpc_addr().expect("gRPC").port();
    let mut config = sdk(&h, "g-tls");
    config.endpoint = format!("https://localhost:{port}");
    config.tls_ca_pem = Some(std::fs::read(data.join("cert.pem")).expect("the certificate"));
    config.tls_domain = Some("localhost".into());
    let (sub, mut rx) = collecting(config.clone(), "t-tls", C).await;
    let p = GrpcPublisher::connect(config)
        .await
        .expect("connects over TLS");
    p.publish("t-tls", text_event("secret"))
        .await
        .expect("publish");
    assert_eq!(text_of(&recv_in_time(&mut rx).await.event), "secret");
    // A plain-text client gets nowhere.
    let plain = GrpcPublisher::connect(sdk(&h, "g-plain")).await;
    let refused = match plain {
        Err(_) => true,
        Ok(p) => p.publish("t-tls", text_event("x")).await.is_err(),
    };
    assert!(refused, "plain text is refused on a TLS listener");
    sub.close().await;
    h.shutdown().await;

    // A certificate that cannot be read stops the start.
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = config_for_missing_cert(dir.path());
    c.server.grpc.tls.enabled = true;
    let err = Runtime::start(c).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("gRPC") || format!("{err:?}").contains("Tls"),
        "{err:?}"
    );
}

fn config_for_missing_cert(dir: &std::path::Path) -> eventmesh_config::Config {
    let mut c = grpc_common::config(dir);
    c.server.grpc.tls.cert_file = dir.join("nope.pem").display().to_string();
    c.server.grpc.tls.key_file = dir.join("nope.key").display().to_string();
    c
}

/// Throughput and latency probe (not a test): run with
/// `cargo test --release -p eventmesh-runtime --test grpc_pubsub -- --ignored --nocapture probe`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark probe; see docs/benchmarks.md"]
async fn probe_grpc_throughput_and_latency() {
    let (h, _dir) = start(|c| c.storage.kind = eventmesh_config::StorageKind::Memory).await;
    let p = publisher(&h, "p-bench").await;
    // Unary: 64 concurrent publishers on one channel.
    let n = 20_000usize;
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64 {
        let p = p.clone();
        tasks.spawn(async move {
            for i in (w..n).step_by(64) {
                p.publish("bench-unary", text_event(format!("u{i}")))
                    .await
                    .expect("publish");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let unary = n as f64 / started.elapsed().as_secs_f64();
    // Batches of 100, 8 concurrent.
    let batches = 1000usize;
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let p = p.clone();
        tasks.spawn(async move {
            let events: Vec<CloudEvent> = (0..100).map(|i| text_event(format!("b{i}"))).collect();
            for _ in (w..batches).step_by(8) {
                p.publish_batch("bench-batch", &events)
                    .await
                    .expect("batch");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let batched = (batches * 100) as f64 / started.elapsed().as_secs_f64();
    // Stream delivery latency: publish acknowledged → handler called, one at a time.
    let (sub, mut rx) = collecting(sdk(&h, "g-bench"), "bench-lat", C).await;
    let mut lat = Vec::new();
    for i in 0..2000 {
        let t = std::time::Instant::now();
        p.publish("bench-lat", text_event(format!("l{i}")))
            .await
            .expect("publish");
        recv_in_time(&mut rx).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_micros();
    println!(
        "grpc unary publish: {unary:.0} events/s; batch(100) publish: {batched:.0} events/s; \
         publish-to-handler latency p50 {} us, p99 {} us",
        pct(0.5),
        pct(0.99)
    );
    sub.close().await;
    h.shutdown().await;
}
