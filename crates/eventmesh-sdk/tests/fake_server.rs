//! The SDK against a scripted fake server: what goes on the wire, reconnects, redirects,
//! heartbeats, timeouts, acks.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventmesh_protocol::tcp::{
    Body, Command, Header, PROTOCOL_TYPE, Package, RedirectInfo, SubscriptionMode as WireMode,
};
use eventmesh_sdk::{
    Client, ClientConfig, CloudEvent, ConnectionState, Delivery, DeliveryKind, Error, Protocol,
    Purpose, ReconnectPolicy, SubscriptionMode, SubscriptionType, text_event,
};
use support::{FakeServer, Seen, WAIT, push};
use tokio::sync::mpsc;

fn config(server: &FakeServer, purpose: Purpose) -> eventmesh_sdk::ClientConfigBuilder {
    ClientConfig::builder(server.address(), "test-group")
        .purpose(purpose)
        .request_timeout(Duration::from_secs(5))
        .reconnect(ReconnectPolicy {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_attempts: None,
            jitter: true,
        })
}

async fn connect(server: &FakeServer, purpose: Purpose) -> Client {
    Client::connect(config(server, purpose).build().expect("config"))
        .await
        .expect("connect")
}

/// A subscriber whose handler forwards deliveries to the test.
async fn subscriber(
    server: &mut FakeServer,
    topics: &[&str],
) -> (Client, mpsc::Receiver<Delivery>) {
    let client = connect(server, Purpose::Sub).await;
    let (tx, rx) = mpsc::channel(64);
    for topic in topics {
        let tx = tx.clone();
        client
            .subscribe(
                topic,
                SubscriptionMode::Clustering,
                SubscriptionType::Async,
                move |d: Delivery| {
                    let tx = tx.clone();
                    async move {
                        let fail = d.event.data.as_deref() == Some(&b"fail"[..]);
                        tx.send(d).await?;
                        if fail {
                            return Err("the handler refuses this one".into());
                        }
                        Ok(())
                    }
                },
            )
            .await
            .expect("subscribe");
    }
    (client, rx)
}

async fn recv<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test]
async fn should_say_hello_with_the_configured_user_agent() {
    let mut server = FakeServer::start().await;
    let client = Client::connect(
        config(&server, Purpose::Sub)
            .env("PRD")
            .idc("FT")
            .subsystem("5099")
            .credentials("user", "secret")
            .unack_window(42)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (_, hello) = server.frame(Command::HelloRequest).await;
    let seq = hello.header.seq.clone().unwrap();
    assert!(
        hello
            .header
            .property_string("clientid")
            .is_some_and(|id| !id.is_empty()),
        "a client identity for BROADCASTING cursors"
    );
    assert_eq!(seq.len(), 10);
    assert!(seq.bytes().all(|b| (b'0'..=b'8').contains(&b)), "{seq}");
    let Body::UserAgent(ua) = hello.body else {
        panic!("HELLO carries a user agent")
    };
    assert_eq!(ua.group.as_deref(), Some("test-group"));
    assert_eq!(ua.purpose.as_deref(), Some("sub"));
    assert_eq!(ua.env.as_deref(), Some("PRD"));
    assert_eq!(ua.idc.as_deref(), Some("FT"));
    assert_eq!(ua.subsystem.as_deref(), Some("5099"));
    assert_eq!(ua.username.as_deref(), Some("user"));
    assert_eq!(ua.password.as_deref(), Some("secret"));
    assert_eq!(ua.unack, 42);
    assert!(ua.version.is_some());
    assert_eq!(
        client.state(),
        ConnectionState::Connected {
            address: server.address()
        }
    );
    client.close().await;
}

#[tokio::test]
async fn should_fail_to_connect_when_hello_is_refused_or_nobody_listens() {
    let server = FakeServer::start().await;
    server
        .behaviour
        .answer_session
        .store(false, Ordering::Relaxed);
    let cfg = config(&server, Purpose::Pub)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(matches!(Client::connect(cfg).await, Err(Error::Timeout(_))));

    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = unused.local_addr().unwrap().to_string();
    drop(unused);
    let cfg = ClientConfig::builder(address, "g").build().unwrap();
    assert!(matches!(
        Client::connect(cfg).await,
        Err(Error::Connect { .. })
    ));
}

#[tokio::test]
async fn should_publish_and_surface_the_server_codes_as_typed_errors() {
    let mut server = FakeServer::start().await;
    let client = connect(&server, Purpose::Pub).await;
    client.publish("orders", text_event("one")).await.unwrap();
    let (_, published) = server.frame(Command::AsyncMessageToServer).await;
    assert_eq!(
        published.header.property_string(PROTOCOL_TYPE).as_deref(),
        Some("eventmeshmessage")
    );
    let msg = eventmesh_protocol::tcp::EventMeshMessage::from_json(published.raw_body().unwrap())
        .unwrap();
    assert_eq!(msg.topic.as_deref(), Some("orders"));
    assert_eq!(msg.body.as_deref(), Some("one"));

    client.broadcast("orders", text_event("two")).await.unwrap();
    server.frame(Command::BroadcastMessageToServer).await;

    server.behaviour.publish_code.store(3, Ordering::Relaxed);
    *server.behaviour.publish_desc.lock().unwrap() = "tpsOverload: session publish rate".into();
    let err = client
        .publish("orders", text_event("three"))
        .await
        .unwrap_err();
    assert!(err.is_rate_limited(), "{err}");
    let answer = err.server().unwrap();
    assert_eq!(answer.code, 3);
    assert_eq!(answer.command, Command::AsyncMessageToServerAck);
    assert_eq!(
        answer.desc.as_deref(),
        Some("tpsOverload: session publish rate")
    );

    server.behaviour.publish_code.store(1, Ordering::Relaxed);
    *server.behaviour.publish_desc.lock().unwrap() = "storage failed".into();
    let err = client
        .publish("orders", text_event("four"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Server(s) if s.code == 1), "{err}");

    assert!(matches!(
        client.publish("", text_event("x")).await,
        Err(Error::InvalidArgument(_))
    ));
    client.close().await;
}

#[tokio::test]
async fn should_publish_cloudevents_as_structured_json() {
    let mut server = FakeServer::start().await;
    let client = Client::connect(
        config(&server, Purpose::Pub)
            .protocol(Protocol::CloudEvents)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let event = CloudEvent::new("id-7", "/src", "com.example.created")
        .with_data("application/json", r#"{"a":1}"#);
    client.publish("orders", event).await.unwrap();
    let (_, published) = server.frame(Command::AsyncMessageToServer).await;
    assert_eq!(
        published.header.property_string(PROTOCOL_TYPE).as_deref(),
        Some("cloudevents")
    );
    let back =
        eventmesh_protocol::cloudevents::decode_event(published.raw_body().unwrap()).unwrap();
    assert_eq!(back.id, "id-7");
    assert_eq!(back.subject.as_deref(), Some("orders"));
    assert_eq!(back.data.as_deref(), Some(&br#"{"a":1}"#[..]));
    client.close().await;
}

#[tokio::test]
async fn should_time_out_when_the_server_does_not_answer() {
    let mut server = FakeServer::start().await;
    let client = Client::connect(
        config(&server, Purpose::Pub)
            .request_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    server.behaviour.publish_code.store(-1, Ordering::Relaxed);
    let err = client
        .publish("orders", text_event("lost"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    server.frame(Command::AsyncMessageToServer).await;
    client.close().await;
}

#[tokio::test]
async fn should_send_heartbeats() {
    let mut server = FakeServer::start().await;
    let client = Client::connect(
        config(&server, Purpose::Pub)
            .heartbeat_interval(Duration::from_millis(30))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut seqs = std::collections::HashSet::new();
    for _ in 0..3 {
        let (_, hb) = server.frame(Command::HeartbeatRequest).await;
        seqs.insert(hb.header.seq.unwrap());
    }
    assert_eq!(seqs.len(), 3, "each heartbeat has its own seq");
    client.close().await;
}

#[tokio::test]
async fn should_reconnect_when_heartbeats_go_unanswered() {
    let mut server = FakeServer::start().await;
    server
        .behaviour
        .answer_heartbeats
        .store(false, Ordering::Relaxed);
    let client = Client::connect(
        config(&server, Purpose::Pub)
            .heartbeat_interval(Duration::from_millis(30))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (first, _) = server.frame(Command::HelloRequest).await;
    let (second, _) = server.frame(Command::HelloRequest).await;
    assert_ne!(first, second, "a new connection says hello again");
    client.close().await;
}

async fn expect_session_restored(server: &mut FakeServer, topics: &[&str]) -> u64 {
    let (conn, _) = server.frame(Command::HelloRequest).await;
    let (c2, subscribe) = server.frame_except_heartbeat().await;
    assert_eq!(
        (c2, subscribe.header.command),
        (conn, Command::SubscribeRequest)
    );
    let Body::Subscription(s) = subscribe.body else {
        panic!("SUBSCRIBE carries a subscription")
    };
    let mut got: Vec<_> = s.topic_list.iter().map(|i| i.topic.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, topics);
    assert!(s.topic_list.iter().all(|i| i.mode == WireMode::Clustering));
    let (c3, listen) = server.frame_except_heartbeat().await;
    assert_eq!((c3, listen.header.command), (conn, Command::ListenRequest));
    conn
}

#[tokio::test]
async fn should_resend_hello_subscribe_and_listen_after_a_reconnect() {
    let mut server = FakeServer::start().await;
    let (client, mut deliveries) = subscriber(&mut server, &["a-topic", "b-topic"]).await;
    let (first, _) = server.frame(Command::HelloRequest).await;
    server.frame(Command::ListenRequest).await;
    let mut changes = client.state_changes();
    server.close(first).await;
    let second = expect_session_restored(&mut server, &["a-topic", "b-topic"]).await;
    assert_ne!(first, second);
    tokio::time::timeout(
        WAIT,
        changes.wait_for(|s| matches!(s, ConnectionState::Connected { .. })),
    )
    .await
    .unwrap()
    .unwrap();

    // Pushes on the new connection reach the handler and are acked there.
    server
        .send(
            second,
            push(
                Command::AsyncMessageToClient,
                "77",
                "b-topic",
                text_event("after"),
            ),
        )
        .await;
    let d = recv(&mut deliveries).await;
    assert_eq!(d.topic, "b-topic");
    assert_eq!(d.kind, DeliveryKind::Async);
    let (conn, ack) = server.frame(Command::AsyncMessageToClientAck).await;
    assert_eq!((conn, ack.header.seq.as_deref()), (second, Some("77")));
    client.close().await;
}

#[tokio::test]
async fn should_reconnect_after_a_server_goodbye() {
    let mut server = FakeServer::start().await;
    let (client, _deliveries) = subscriber(&mut server, &["t"]).await;
    let (first, _) = server.frame(Command::ListenRequest).await;
    server
        .send(
            first,
            Package::header_only(
                Header::new(Command::ServerGoodbyeRequest, None).with_status(
                    eventmesh_protocol::tcp::OpStatus::Success,
                    "graceful normal quit from eventmesh",
                ),
            ),
        )
        .await;
    let second = expect_session_restored(&mut server, &["t"]).await;
    assert_ne!(first, second);
    client.close().await;
}

#[tokio::test]
async fn should_follow_a_redirect_to_another_server() {
    let mut a = FakeServer::start().await;
    let mut b = FakeServer::start().await;
    let (client, _deliveries) = subscriber(&mut a, &["t"]).await;
    let (conn, _) = a.frame(Command::ListenRequest).await;
    a.send(
        conn,
        Package::new(
            Header::new(Command::RedirectToClient, None),
            Body::Redirect(RedirectInfo::new("127.0.0.1", b.addr.port())),
        ),
    )
    .await;
    expect_session_restored(&mut b, &["t"]).await;
    let mut changes = client.state_changes();
    let expected = ConnectionState::Connected {
        address: b.address(),
    };
    tokio::time::timeout(WAIT, changes.wait_for(|s| *s == expected))
        .await
        .unwrap()
        .unwrap();
    client.close().await;
    b.frame(Command::ClientGoodbyeRequest).await;
}

#[tokio::test]
async fn should_ack_only_after_the_handler_succeeds() {
    let mut server = FakeServer::start().await;
    let (client, mut deliveries) = subscriber(&mut server, &["t"]).await;
    let (conn, _) = server.frame(Command::ListenRequest).await;
    server
        .send(
            conn,
            push(Command::AsyncMessageToClient, "1", "t", text_event("fail")),
        )
        .await;
    server
        .send(
            conn,
            push(Command::AsyncMessageToClient, "2", "t", text_event("ok")),
        )
        .await;
    assert_eq!(
        recv(&mut deliveries).await.event.data.as_deref(),
        Some(&b"fail"[..])
    );
    assert_eq!(
        recv(&mut deliveries).await.event.data.as_deref(),
        Some(&b"ok"[..])
    );
    // The handler runs one event at a time, so the failed one would have been acked first.
    let (_, ack) = server.frame_except_heartbeat().await;
    assert_eq!(ack.header.command, Command::AsyncMessageToClientAck);
    assert_eq!(
        ack.header.seq.as_deref(),
        Some("2"),
        "no ack for the failed event"
    );
    let echoed =
        eventmesh_protocol::tcp::EventMeshMessage::from_json(ack.raw_body().unwrap()).unwrap();
    assert_eq!(
        echoed.body.as_deref(),
        Some("ok"),
        "the ack echoes the push"
    );

    // A redelivery of the failed event is handled again.
    server
        .send(
            conn,
            push(
                Command::BroadcastMessageToClient,
                "3",
                "t",
                text_event("again"),
            ),
        )
        .await;
    let d = recv(&mut deliveries).await;
    assert_eq!(d.kind, DeliveryKind::Broadcast);
    let (_, ack) = server.frame_except_heartbeat().await;
    assert_eq!(
        (ack.header.command, ack.header.seq.as_deref()),
        (Command::BroadcastMessageToClientAck, Some("3"))
    );
    client.close().await;
}

#[tokio::test]
async fn should_answer_requests_on_sync_subscriptions() {
    let mut server = FakeServer::start().await;
    let client = connect(&server, Purpose::Sub).await;
    client
        .subscribe(
            "rpc",
            SubscriptionMode::Clustering,
            SubscriptionType::Sync,
            |d: Delivery| async move {
                let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                    .to_uppercase();
                Ok(text_event(text))
            },
        )
        .await
        .unwrap();
    let (conn, subscribe) = server.frame(Command::SubscribeRequest).await;
    let Body::Subscription(s) = subscribe.body else {
        panic!("a subscription")
    };
    assert_eq!(
        s.topic_list[0].ty,
        eventmesh_protocol::tcp::SubscriptionType::Sync
    );
    server.frame(Command::ListenRequest).await;
    let request = text_event("ping")
        .with_extension("correlationid", "corr-1")
        .with_extension("replyto", "node-a")
        .with_extension("expiresat", "99999999999999");
    server
        .send(conn, push(Command::RequestToClient, "5", "rpc", request))
        .await;
    let (_, reply) = server.frame_except_heartbeat().await;
    assert_eq!(reply.header.command, Command::ResponseToServer);
    let reply_seq = reply.header.seq.clone().unwrap();
    assert_eq!(reply_seq.len(), 10);
    let event = eventmesh_protocol::convert::event_from_package(
        &reply,
        eventmesh_protocol::convert::KeyPolicy::Reject,
    )
    .unwrap();
    assert_eq!(event.data.as_deref(), Some(&b"PING"[..]));
    assert_eq!(event.extension_str("correlationid"), Some("corr-1"));
    assert_eq!(event.extension_str("replyto"), Some("node-a"));
    assert_eq!(event.subject.as_deref(), Some("rpc"));
    let (_, ack) = server.frame_except_heartbeat().await;
    assert_eq!(
        (ack.header.command, ack.header.seq.as_deref()),
        (Command::RequestToClientAck, Some("5"))
    );
    client.close().await;
}

#[tokio::test]
async fn should_return_the_reply_to_a_request_and_ack_it() {
    let mut server = FakeServer::start().await;
    let client = connect(&server, Purpose::Pub).await;
    let requester = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .request("rpc", text_event("ping"), Duration::from_secs(5))
                .await
        }
    });
    let (conn, request) = server.frame(Command::RequestToServer).await;
    let event = eventmesh_protocol::convert::event_from_package(
        &request,
        eventmesh_protocol::convert::KeyPolicy::Reject,
    )
    .unwrap();
    assert_eq!(event.extension_str("ttl"), Some("5000"));
    let seq = request.header.seq.clone().unwrap();
    server
        .send(
            conn,
            push(Command::ResponseToClient, &seq, "rpc", text_event("pong")),
        )
        .await;
    let reply = requester.await.unwrap().unwrap();
    assert_eq!(reply.data.as_deref(), Some(&b"pong"[..]));
    let (_, ack) = server.frame_except_heartbeat().await;
    assert_eq!(
        (ack.header.command, ack.header.seq.as_deref()),
        (Command::ResponseToClientAck, Some(seq.as_str()))
    );

    // No reply in time: a timeout error.
    let err = client
        .request("rpc", text_event("nobody"), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    client.close().await;
}

#[tokio::test]
async fn should_refuse_to_subscribe_on_a_pub_client_or_twice() {
    let mut server = FakeServer::start().await;
    let publisher = connect(&server, Purpose::Pub).await;
    let ack = |_d: Delivery| async { Ok(()) };
    assert!(matches!(
        publisher
            .subscribe(
                "t",
                SubscriptionMode::Clustering,
                SubscriptionType::Async,
                ack
            )
            .await,
        Err(Error::InvalidArgument(_))
    ));
    let (sub, _rx) = subscriber(&mut server, &["t"]).await;
    assert!(matches!(
        sub.subscribe(
            "t",
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
            ack
        )
        .await,
        Err(Error::AlreadySubscribed(_))
    ));
    publisher.close().await;
    sub.close().await;
}

#[tokio::test]
async fn should_say_goodbye_on_close_and_refuse_calls_after() {
    let mut server = FakeServer::start().await;
    let client = connect(&server, Purpose::Pub).await;
    let other = client.clone();
    client.close().await;
    server.frame(Command::ClientGoodbyeRequest).await;
    loop {
        if let Seen::Closed(_) = server.next().await {
            break;
        }
    }
    assert_eq!(other.state(), ConnectionState::Closed);
    assert!(matches!(
        other.publish("t", text_event("late")).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn should_say_goodbye_when_the_last_handle_is_dropped() {
    let mut server = FakeServer::start().await;
    let client = connect(&server, Purpose::Pub).await;
    server.frame(Command::HelloRequest).await;
    let clone = client.clone();
    drop(client);
    server.expect_no_frame(Duration::from_millis(100)).await;
    drop(clone);
    server.frame(Command::ClientGoodbyeRequest).await;
}

#[tokio::test]
async fn should_close_when_reconnecting_is_given_up() {
    let mut server = FakeServer::start().await;
    let client = Client::connect(
        config(&server, Purpose::Pub)
            .request_timeout(Duration::from_millis(200))
            .reconnect(ReconnectPolicy {
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
                max_attempts: Some(2),
                jitter: false,
            })
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (conn, _) = server.frame(Command::HelloRequest).await;
    server
        .behaviour
        .answer_session
        .store(false, Ordering::Relaxed);
    server.close(conn).await;
    tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(client.state(), ConnectionState::Closed);
}
