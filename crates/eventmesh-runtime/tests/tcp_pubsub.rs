//! The TCP server end to end over raw sockets: hello, publish, subscribe and push, groups,
//! broadcast, request-reply, the pre-1.9 framing, cross-protocol pushes, heartbeats, goodbyes.

mod tcp_common;

use std::collections::HashSet;
use std::time::Duration;

use eventmesh_protocol::cloudevents;
use eventmesh_protocol::tcp::{
    Body, Command, Dialect, Header, Package, ProtocolType, SubscriptionMode, SubscriptionType,
};
use tcp_common::{Client, ack_of, message, message_of, seq, start, user_agent};

const CLUSTERING: SubscriptionMode = SubscriptionMode::Clustering;
const BROADCASTING: SubscriptionMode = SubscriptionMode::Broadcasting;
const ASYNC: SubscriptionType = SubscriptionType::Async;
const SYNC: SubscriptionType = SubscriptionType::Sync;

#[tokio::test]
async fn should_publish_and_push_an_eventmeshmessage_then_ack_it() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().expect("TCP is enabled by default");
    let mut sub = Client::subscriber(addr, "g-sub", 11, "T-basic", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;

    let req = message(
        Command::AsyncMessageToServer,
        "T-basic",
        "hello mesh",
        &[("keys", "k1")],
    );
    let ack = publisher.call(&req).await;
    assert_eq!(ack.header.command, Command::AsyncMessageToServerAck);
    assert_eq!(ack.header.code, 0, "{:?}", ack.header);
    assert_eq!(ack.header.seq, req.header.seq, "the ack echoes the seq");
    assert_eq!(ack.body, req.body, "the ack echoes the body");

    let push = sub.expect(Command::AsyncMessageToClient).await;
    assert_eq!(push.header.code, 0);
    assert_eq!(
        push.header.property_string("protocoltype").as_deref(),
        Some("eventmeshmessage"),
        "the publisher's type when the subscriber names none"
    );
    let m = message_of(&push);
    assert_eq!(m.topic.as_deref(), Some("T-basic"));
    assert_eq!(m.body.as_deref(), Some("hello mesh"));
    assert_eq!(m.properties.get("keys").map(String::as_str), Some("k1"));
    sub.send(&ack_of(&push)).await;

    // Acked: nothing comes back, and the core holds nothing in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.core().in_flight() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the ack settles");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sub.try_recv(Duration::from_millis(200)).await.is_none());
    node.shutdown().await;
}

#[tokio::test]
async fn should_share_a_topic_among_a_group_and_copy_it_to_broadcast_members() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut members = Vec::new();
    for pid in 1..=3 {
        members
            .push(Client::subscriber(addr, "g-cluster", pid, "T-share", CLUSTERING, ASYNC).await);
    }
    let mut b1 = Client::subscriber(addr, "g-bcast", 21, "T-share", BROADCASTING, ASYNC).await;
    let mut b2 = Client::subscriber(addr, "g-bcast", 22, "T-share", BROADCASTING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;

    let n = 30;
    for i in 0..n {
        let ack = publisher.publish("T-share", &format!("e{i}")).await;
        assert_eq!(ack.header.code, 0, "{:?}", ack.header);
    }

    // CLUSTERING: every event once over the three members, each member getting some.
    let mut seen = HashSet::new();
    let mut per_member = [0usize; 3];
    let deadline = tokio::time::Instant::now() + tcp_common::WAIT;
    while seen.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} delivered",
            seen.len()
        );
        for (i, m) in members.iter_mut().enumerate() {
            if let Some(push) = m.try_recv(Duration::from_millis(50)).await {
                assert_eq!(push.header.command, Command::AsyncMessageToClient);
                let body = message_of(&push).body.unwrap();
                assert!(seen.insert(body.clone()), "{body} delivered twice");
                per_member[i] += 1;
                m.send(&ack_of(&push)).await;
            }
        }
    }
    assert!(
        per_member.iter().filter(|c| **c > 0).count() >= 2,
        "the group's members share the topic: {per_member:?}"
    );

    // BROADCASTING: each member gets all of them.
    for b in [&mut b1, &mut b2] {
        let mut got = HashSet::new();
        while got.len() < n {
            let push = b.expect(Command::BroadcastMessageToClient).await;
            got.insert(message_of(&push).body.unwrap());
            b.send(&ack_of(&push)).await;
        }
    }
    node.shutdown().await;
}

#[tokio::test]
async fn should_answer_a_request_with_the_responders_reply() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut responder = Client::subscriber(addr, "g-rr", 31, "T-rr", CLUSTERING, SYNC).await;
    let mut requester = Client::publisher(addr, "g-req").await;

    let req = message(Command::RequestToServer, "T-rr", "ping", &[("ttl", "5000")]);
    requester.send(&req).await;

    let push = responder.expect(Command::RequestToClient).await;
    let m = message_of(&push);
    assert_eq!(m.body.as_deref(), Some("ping"));
    // The Java SDK's handler answers with a message built from the request (its properties),
    // then acks.
    let mut reply = m.clone();
    reply.body = Some("pong".into());
    responder
        .send(&Package::new(
            Header::new(Command::ResponseToServer, Some(seq()))
                .with_protocol(ProtocolType::EventMeshMessage, "1.0"),
            Body::Raw(reply.to_json().into()),
        ))
        .await;
    responder.send(&ack_of(&push)).await;

    let resp = requester.expect(Command::ResponseToClient).await;
    assert_eq!(resp.header.code, 0, "{:?}", resp.header);
    assert_eq!(resp.header.seq, req.header.seq, "the request's seq");
    assert_eq!(message_of(&resp).body.as_deref(), Some("pong"));
    requester.send(&ack_of(&resp)).await;

    // A reply built from scratch (no echoed properties) still finds its request.
    let req = message(
        Command::RequestToServer,
        "T-rr",
        "ping2",
        &[("ttl", "5000")],
    );
    requester.send(&req).await;
    let push = responder.expect(Command::RequestToClient).await;
    responder
        .send(&message(Command::ResponseToServer, "T-rr", "pong2", &[]))
        .await;
    responder.send(&ack_of(&push)).await;
    let resp = requester.expect(Command::ResponseToClient).await;
    assert_eq!(resp.header.seq, req.header.seq);
    assert_eq!(message_of(&resp).body.as_deref(), Some("pong2"));

    // Nobody answers within the ttl: code 1, with a desc.
    let req = message(
        Command::RequestToServer,
        "T-rr",
        "ignored",
        &[("ttl", "300")],
    );
    requester.send(&req).await;
    let push = responder.expect(Command::RequestToClient).await;
    let resp = requester.expect(Command::ResponseToClient).await;
    assert_eq!(resp.header.seq, req.header.seq);
    assert_eq!(resp.header.code, 1);
    assert!(
        resp.header.desc.as_deref().unwrap_or("").contains("ttl"),
        "{:?}",
        resp.header
    );
    responder.send(&ack_of(&push)).await;
    node.shutdown().await;
}

#[tokio::test]
async fn should_speak_the_pre_1_9_framing_to_a_go_sdk_client() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut go = Client::connect_with(addr, Dialect::V12).await;
    let r = go.hello(user_agent("g-go", "sub", 41)).await;
    assert_eq!(r.header.code, 0);
    let r = go.subscribe("T-go", CLUSTERING, ASYNC, None).await;
    assert_eq!(r.header.code, 0);
    go.listen().await;
    let hb = go
        .call(&Package::header_only(Header::new(
            Command::HeartbeatRequest,
            Some(seq()),
        )))
        .await;
    assert_eq!(hb.header.command, Command::HeartbeatResponse);

    // A v1.9 publisher and the Go subscriber, each answered in its own framing.
    let mut java = Client::publisher(addr, "g-java").await;
    assert_eq!(java.publish("T-go", "to go").await.header.code, 0);
    let push = go.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&push).body.as_deref(), Some("to go"));
    go.send(&ack_of(&push)).await;

    // The Go client publishes too.
    let r = go
        .call(&message(
            Command::AsyncMessageToServer,
            "T-go2",
            "from go",
            &[],
        ))
        .await;
    assert_eq!(r.header.command, Command::AsyncMessageToServerAck);
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    node.shutdown().await;
}

#[tokio::test]
async fn should_push_in_the_protocol_type_each_subscriber_asked_for() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    // One subscriber asks for CloudEvents on SUBSCRIBE, another on HELLO, a third names none.
    let mut ce_sub = Client::connect(addr).await;
    ce_sub.hello(user_agent("g-ce", "sub", 51)).await;
    let r = ce_sub
        .subscribe("T-x", CLUSTERING, ASYNC, Some(ProtocolType::CloudEvents))
        .await;
    assert_eq!(r.header.code, 0);
    ce_sub.listen().await;

    let mut ce_hello = Client::connect(addr).await;
    let hello = Package::new(
        Header::new(Command::HelloRequest, Some(seq()))
            .with_property("protocoltype", "cloudevents"),
        Body::UserAgent(Box::new(user_agent("g-ce2", "sub", 52))),
    );
    assert_eq!(ce_hello.call(&hello).await.header.code, 0);
    ce_hello.subscribe("T-x", CLUSTERING, ASYNC, None).await;
    ce_hello.listen().await;

    let mut plain = Client::subscriber(addr, "g-plain", 53, "T-x", CLUSTERING, ASYNC).await;

    // An eventmeshmessage publish...
    let mut publisher = Client::publisher(addr, "g-pub").await;
    assert_eq!(publisher.publish("T-x", "as message").await.header.code, 0);
    for c in [&mut ce_sub, &mut ce_hello] {
        let push = c.expect(Command::AsyncMessageToClient).await;
        assert_eq!(
            push.header.property_string("protocoltype").as_deref(),
            Some("cloudevents")
        );
        let e = cloudevents::decode_event(push.raw_body().unwrap()).expect("a CloudEvent body");
        assert_eq!(e.data.as_deref(), Some(&b"as message"[..]));
        assert_eq!(e.subject.as_deref(), Some("T-x"));
        c.send(&ack_of(&push)).await;
    }
    let push = plain.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&push).body.as_deref(), Some("as message"));
    plain.send(&ack_of(&push)).await;

    // ...and a CloudEvents publish reaches the plain subscriber as a CloudEvent (publisher's type).
    let event = eventmesh_core::CloudEvent::new("ce-1", "/test", "com.example")
        .with_data("text/plain", "as cloudevent");
    let mut event = event;
    event.subject = Some("T-x".into());
    let pkg = Package::new(
        Header::new(Command::AsyncMessageToServer, Some(seq()))
            .with_protocol(ProtocolType::CloudEvents, "1.0"),
        Body::Raw(cloudevents::encode_event(&event).unwrap().into()),
    );
    let ack = publisher.call(&pkg).await;
    assert_eq!(ack.header.code, 0, "{:?}", ack.header);
    let push = plain.expect(Command::AsyncMessageToClient).await;
    assert_eq!(
        push.header.property_string("protocoltype").as_deref(),
        Some("cloudevents")
    );
    let e = cloudevents::decode_event(push.raw_body().unwrap()).unwrap();
    assert_eq!(e.id, "ce-1");
    node.shutdown().await;
}

#[tokio::test]
async fn should_answer_heartbeat_recommend_and_client_goodbye() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut c = Client::connect(addr).await;
    // RECOMMEND is allowed before HELLO and names a node.
    let r = c
        .call(&Package::new(
            Header::new(Command::RecommendRequest, Some(seq())),
            Body::UserAgent(Box::new(user_agent("g", "sub", 1))),
        ))
        .await;
    assert_eq!(r.header.command, Command::RecommendResponse);
    let addr_text: String = serde_json::from_slice(r.raw_body().unwrap()).unwrap();
    assert!(addr_text.contains(':'), "{addr_text}");

    c.hello(user_agent("g-hb", "pub", 61)).await;
    let r = c
        .call(&Package::header_only(Header::new(
            Command::HeartbeatRequest,
            Some(seq()),
        )))
        .await;
    assert_eq!(r.header.command, Command::HeartbeatResponse);
    assert_eq!(r.header.code, 0);
    assert_eq!(node.tcp_clients().unwrap().len(), 1);

    let r = c
        .call(&Package::header_only(Header::new(
            Command::ClientGoodbyeRequest,
            Some(seq()),
        )))
        .await;
    assert_eq!(r.header.command, Command::ClientGoodbyeResponse);
    assert!(c.closed().await, "the server closes after the goodbye");
    node.shutdown().await;
}

#[tokio::test]
async fn should_serve_a_v1_0_wemq_client() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut c = Client::connect_with(addr, Dialect::V10).await;
    let mut ua = user_agent("", "sub", 71);
    ua.group = None;
    ua.dcn = Some("AC0".into());
    let r = c.hello(ua).await;
    assert_eq!(r.header.code, 0, "{:?}", r.header);
    assert_eq!(
        c.subscribe("T-wemq", CLUSTERING, ASYNC, None)
            .await
            .header
            .code,
        0
    );
    c.listen().await;
    // A v1.0 message carries no protocol properties.
    let mut p = message(Command::AsyncMessageToServer, "T-wemq", "from wemq", &[]);
    p.header.properties.clear();
    let ack = c.call(&p).await;
    assert_eq!(ack.header.code, 0, "{:?}", ack.header);
    let push = c.expect(Command::AsyncMessageToClient).await;
    assert_eq!(message_of(&push).body.as_deref(), Some("from wemq"));
    c.send(&ack_of(&push)).await;
    let info = node.tcp_clients().unwrap().list();
    assert_eq!(info[0].dialect, Some("v1.0"));
    assert_eq!(info[0].group.as_deref(), Some("5023-AC0"));
    node.shutdown().await;
}

#[tokio::test]
async fn should_deliver_through_the_embedded_store_and_count_frames() {
    let (node, _dir) = start(|c| c.storage.kind = eventmesh_config::StorageKind::Embedded).await;
    let addr = node.tcp_addr().unwrap();
    let mut sub = Client::subscriber(addr, "g-durable", 81, "T-durable", CLUSTERING, ASYNC).await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    for i in 0..20 {
        assert_eq!(
            publisher
                .publish("T-durable", &format!("d{i}"))
                .await
                .header
                .code,
            0
        );
    }
    for i in 0..20 {
        let push = sub.expect(Command::AsyncMessageToClient).await;
        assert_eq!(message_of(&push).body, Some(format!("d{i}")), "in order");
        sub.send(&ack_of(&push)).await;
    }
    let metrics = eventmesh_runtime::telemetry::recorder::render(
        &eventmesh_runtime::telemetry::install_recorder().unwrap(),
    );
    for needle in [
        "eventmesh_tcp_connections ",
        "eventmesh_tcp_frames_received_total{command=\"ASYNC_MESSAGE_TO_SERVER\"}",
        "eventmesh_tcp_frames_sent_total{command=\"ASYNC_MESSAGE_TO_CLIENT\"}",
        "eventmesh_tcp_connections_total{outcome=\"accepted\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    node.shutdown().await;
}
