//! Delivery-core behaviour against the memory store: BROADCASTING fan-out, request-reply (on one
//! node and across two nodes sharing a store), rate limits, size limits and subscription
//! conflicts.

mod core_common;

use std::time::Duration;

use core_common::*;
use eventmesh_core::{CloudEvent, ErrorCode, SubscriptionMode, SubscriptionType, TopicPattern};
use eventmesh_runtime::core::{
    CoreOptions, EXT_CORRELATION_ID, EXT_EXPIRES_AT, EXT_REPLY_TO, PushKind, inbox_topic,
};
use eventmesh_runtime::meta::{EmbeddedMeta, MetaStore};
use eventmesh_storage::{ConsumerRef, EventStore};
use eventmesh_storage_memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn broadcasting_gives_every_member_every_event_published_after_subscribe() {
    // The default 30 s ack timeout: the slow member's pushes stay un-acked through the test.
    let n = node(CoreOptions::default()).await;
    let p = session(&n.core, "pub");
    // Published before anyone subscribed: nobody gets it.
    n.core
        .publish(&p, &topic("news"), vec![ev(100)])
        .await
        .unwrap();

    let mut members = Vec::new();
    for i in 0..3 {
        let s = session(&n.core, &format!("host{i}/pid{i}"));
        let (ep, rx) = endpoint(100);
        n.core
            .subscribe(&s, broadcasting("g", "news"), ep)
            .await
            .unwrap();
        members.push((s, rx));
    }
    // A slow member with a window of 2 that never acks slows only itself.
    let slow = session(&n.core, "slow");
    let (ep, mut slow_rx) = endpoint(2);
    n.core
        .subscribe(&slow, broadcasting("g", "news"), ep)
        .await
        .unwrap();

    n.core
        .publish(&p, &topic("news"), (0..5).map(ev).collect())
        .await
        .unwrap();
    for (s, rx) in members.iter_mut() {
        let mut got = Vec::new();
        for _ in 0..5 {
            let push = recv(rx).await;
            assert_eq!(push.mode, SubscriptionMode::Broadcasting);
            n.core.ack(s, push.delivery).unwrap();
            got.push(push.record.event.id.clone());
        }
        assert_eq!(
            got,
            vec!["e0", "e1", "e2", "e3", "e4"],
            "in order, all of them"
        );
        assert!(quiet(rx, Duration::from_secs(2)).await);
    }
    let first_two: Vec<String> = [recv(&mut slow_rx).await, recv(&mut slow_rx).await]
        .iter()
        .map(|p| p.record.event.id.clone())
        .collect();
    assert_eq!(first_two, vec!["e0", "e1"]);
    assert!(
        quiet(&mut slow_rx, Duration::from_secs(2)).await,
        "its window is full"
    );
}

#[tokio::test(start_paused = true)]
async fn a_broadcasting_member_that_reconnects_resumes_from_its_position() {
    let n = node(fast_options()).await;
    let p = session(&n.core, "pub");
    let s = session(&n.core, "host/1/path");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(&s, broadcasting("g", "news"), ep)
        .await
        .unwrap();
    n.core
        .publish(&p, &topic("news"), vec![ev(1)])
        .await
        .unwrap();
    let push = recv(&mut rx).await;
    n.core.ack(&s, push.delivery).unwrap();
    drop(s);
    // Published while the member is away.
    n.core
        .publish(&p, &topic("news"), vec![ev(2), ev(3)])
        .await
        .unwrap();
    let again = session(&n.core, "host/1/path");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(&again, broadcasting("g", "news"), ep)
        .await
        .unwrap();
    let ids: Vec<String> = [recv(&mut rx).await, recv(&mut rx).await]
        .iter()
        .map(|p| p.record.event.id.clone())
        .collect();
    assert_eq!(ids, vec!["e2", "e3"]);
    // An explicit unsubscribe deletes the member's cursor.
    n.core
        .unsubscribe(&again, &group("g"), &topic("news"))
        .await
        .unwrap();
    let c = ConsumerRef::broadcasting(topic("news"), group("g"), "host/1/path");
    assert!(n.store.cursor_info(&c).await.is_err());
}

/// A responder: subscribes SYNC to `t` and answers every request with `answer: <data>`.
async fn responder(n: &Node, t: &str) -> tokio::task::JoinHandle<usize> {
    let s = session(&n.core, "responder");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(
            &s,
            sub(
                "responders",
                t,
                SubscriptionMode::Clustering,
                SubscriptionType::Sync,
            ),
            ep,
        )
        .await
        .expect("responder subscribes");
    let core = n.core.clone();
    tokio::spawn(async move {
        let mut answered = 0;
        while let Some(push) = rx.recv().await {
            let PushKind::Request {
                correlation_id,
                reply_to,
                expires_at_ms,
            } = &push.kind
            else {
                panic!("SYNC members get requests")
            };
            assert!(correlation_id.is_some() && reply_to.is_some() && expires_at_ms.is_some());
            core.ack(&s, push.delivery).expect("ack");
            let req = &push.record.event;
            let mut reply = CloudEvent::new(format!("re-{}", req.id), "/responder", "answer")
                .with_data(
                    "text/plain",
                    format!(
                        "answer: {}",
                        String::from_utf8_lossy(req.data.as_deref().unwrap_or_default())
                    ),
                );
            for ext in [EXT_REPLY_TO, EXT_CORRELATION_ID, EXT_EXPIRES_AT] {
                if let Some(v) = req.extension(ext) {
                    reply.extensions.insert(ext.to_owned(), v.clone());
                }
            }
            core.reply(&s, reply).await.expect("reply");
            answered += 1;
        }
        answered
    })
}

#[tokio::test(start_paused = true)]
async fn request_reply_round_trip_on_one_node() {
    let n = node(fast_options()).await;
    let _r = responder(&n, "rpc").await;
    let requester = session(&n.core, "requester");
    let reply = n
        .core
        .request(
            &requester,
            &topic("rpc"),
            ev(1),
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(reply.data.as_deref(), Some(&b"answer: payload 1"[..]));
    assert_eq!(n.core.pending_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn request_reply_crosses_nodes_through_the_requester_inbox() {
    let store = MemoryStore::new();
    let meta = EmbeddedMeta::new();
    let a = node_on("node-a", store.clone(), meta.clone(), fast_options()).await;
    let b = node_on("node-b", store.clone(), meta.clone(), fast_options()).await;
    let _r = responder(&b, "rpc").await;
    let requester = session(&a.core, "requester");
    for i in 0..3 {
        let reply = a
            .core
            .request(&requester, &topic("rpc"), ev(i), None)
            .await
            .unwrap();
        assert_eq!(
            reply.data.as_deref(),
            Some(format!("answer: payload {i}").as_bytes())
        );
    }
    // The replies went through node a's inbox topic, and nothing is left waiting.
    let inbox = inbox_topic("node-a").unwrap();
    let topics = store.list_topics().await.unwrap();
    let info = topics
        .iter()
        .find(|t| t.topic == inbox)
        .expect("inbox exists");
    assert_eq!(info.retained_events, 3);
    assert_eq!(a.core.pending_requests(), 0);
    a.core.shutdown().await;
    b.core.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_without_reply_times_out_and_a_late_reply_is_dropped() {
    let n = node(fast_options()).await;
    // A responder that holds the request and answers too late.
    let s = session(&n.core, "slow-responder");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(
            &s,
            sub(
                "r",
                "rpc",
                SubscriptionMode::Clustering,
                SubscriptionType::Sync,
            ),
            ep,
        )
        .await
        .unwrap();
    let requester = session(&n.core, "requester");
    let t0 = tokio::time::Instant::now();
    let err = n
        .core
        .request(
            &requester,
            &topic("rpc"),
            ev(1),
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RequestTimeout);
    assert!(t0.elapsed() >= Duration::from_secs(2) && t0.elapsed() < Duration::from_secs(3));
    assert_eq!(n.core.pending_requests(), 0);
    // The late reply is accepted from the responder and dropped (logged), nobody is completed.
    let push = recv(&mut rx).await;
    let mut reply = CloudEvent::new("late", "/r", "answer");
    reply.extensions.insert(
        EXT_REPLY_TO.into(),
        push.record.event.extension(EXT_REPLY_TO).unwrap().clone(),
    );
    reply.extensions.insert(
        EXT_CORRELATION_ID.into(),
        push.record
            .event
            .extension(EXT_CORRELATION_ID)
            .unwrap()
            .clone(),
    );
    n.core.reply(&s, reply).await.unwrap();
    // A reply that echoes nothing is refused.
    let err = n
        .core
        .reply(&s, CloudEvent::new("x", "/r", "answer"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    // Nobody answers at all: also a timeout, with the default ttl.
    let err = n
        .core
        .request(&requester, &topic("nobody-listens"), ev(2), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RequestTimeout);
}

#[tokio::test(start_paused = true)]
async fn over_the_rate_limits_publishes_are_refused_with_overloaded() {
    let options = CoreOptions {
        session_publish_rate: 5,
        publish_rate: 8,
        ..fast_options()
    };
    let n = node(options).await;
    let a = session(&n.core, "a");
    let b = session(&n.core, "b");
    let t = topic("t");
    n.core
        .publish(&a, &t, (0..5).map(ev).collect())
        .await
        .unwrap();
    let err = n.core.publish(&a, &t, vec![ev(5)]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Overloaded, "session limit: {err}");
    // Another session still has its own budget, up to the global limit (8/s).
    n.core
        .publish(&b, &t, (0..3).map(ev).collect())
        .await
        .unwrap();
    let err = n.core.publish(&b, &t, vec![ev(9)]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Overloaded, "global limit: {err}");
    assert!(err.message.contains("global"));
    // A refused batch is refused whole: nothing of it was stored.
    let stored = n
        .store
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.topic == t)
        .unwrap();
    assert_eq!(stored.retained_events, 8);
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.core.publish(&a, &t, vec![ev(10)]).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn oversized_and_invalid_events_are_refused_and_nothing_is_stored() {
    let options = CoreOptions {
        max_event_bytes: 1024,
        ..fast_options()
    };
    let n = node(options).await;
    let s = session(&n.core, "a");
    let t = topic("t");
    let big =
        CloudEvent::new("big", "/s", "t").with_data("application/octet-stream", vec![7u8; 2000]);
    let err = n.core.publish(&s, &t, vec![ev(1), big]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::EventTooLarge);
    assert!(err.message.contains("1024"), "{err}");
    let err = n
        .core
        .publish(&s, &t, vec![CloudEvent::new("", "/s", "t")])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidEvent);
    let stored = n.store.list_topics().await.unwrap();
    assert!(
        stored
            .iter()
            .all(|i| i.topic != t || i.retained_events == 0),
        "{stored:?}"
    );
    // Requests are held to the same limit, extensions included.
    let almost =
        CloudEvent::new("r", "/s", "t").with_data("application/octet-stream", vec![7u8; 1000]);
    let err = n.core.request(&s, &t, almost, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::EventTooLarge);
    // The reply inboxes are the mesh's own.
    let err = n
        .core
        .publish(&s, &inbox_topic("node-a").unwrap(), vec![ev(1)])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
}

#[tokio::test(start_paused = true)]
async fn a_different_filter_for_the_same_group_and_topic_is_refused() {
    let store = MemoryStore::new();
    let meta = EmbeddedMeta::new();
    let a = node_on("node-a", store.clone(), meta.clone(), fast_options()).await;
    let with_filter = |f: Option<&str>| {
        let mut s = clustering("g", "t");
        s.filter = f.map(str::to_owned);
        s
    };
    let s1 = session(&a.core, "one");
    let s2 = session(&a.core, "two");
    a.core
        .subscribe(&s1, with_filter(Some("type = 'a'")), endpoint(10).0)
        .await
        .unwrap();
    let err = a
        .core
        .subscribe(&s2, with_filter(Some("type = 'b'")), endpoint(10).0)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SubscriptionConflict);
    let err = a
        .core
        .subscribe(&s2, with_filter(None), endpoint(10).0)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SubscriptionConflict);
    let mut broadcast = with_filter(Some("type = 'a'"));
    broadcast.mode = SubscriptionMode::Broadcasting;
    let err = a
        .core
        .subscribe(&s2, broadcast, endpoint(10).0)
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::SubscriptionConflict,
        "the mode belongs to the group and topic too"
    );
    // The same filter is fine, and another group may use any filter.
    a.core
        .subscribe(&s2, with_filter(Some("type = 'a'")), endpoint(10).0)
        .await
        .unwrap();
    let mut other = with_filter(Some("type = 'z'"));
    other.group = group("other");
    a.core.subscribe(&s2, other, endpoint(10).0).await.unwrap();

    // Another node sees the binding through the meta store.
    let b = node_on("node-b", store.clone(), meta.clone(), fast_options()).await;
    let sb = session(&b.core, "three");
    let err = b
        .core
        .subscribe(&sb, with_filter(Some("type = 'b'")), endpoint(10).0)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SubscriptionConflict);
    b.core
        .subscribe(&sb, with_filter(Some("type = 'a'")), endpoint(10).0)
        .await
        .unwrap();
    assert_eq!(meta.list("bindings/g/t/").await.unwrap().len(), 2);

    // When every member is gone, the binding is released and a new filter may be chosen.
    drop((s1, s2, sb));
    eventually("bindings released", || async {
        meta.list("bindings/g/t/").await.unwrap().is_empty()
    })
    .await;
    let s4 = session(&a.core, "four");
    a.core
        .subscribe(&s4, with_filter(Some("type = 'b'")), endpoint(10).0)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_node_registers_itself_and_bad_subscriptions_are_refused() {
    let n = node(CoreOptions::default()).await;
    assert!(n.core.is_ready());
    assert_eq!(
        n.meta.get("nodes/node-a").await.unwrap().as_deref(),
        Some(&b"node-a.local:10000"[..])
    );
    // The registration outlives many lease ttls while the core runs.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(n.meta.get("nodes/node-a").await.unwrap().is_some());
    let s = session(&n.core, "x");
    let mut inbox = clustering("g", "t");
    inbox.topic = TopicPattern::Exact(inbox_topic("node-a").unwrap());
    let err = n
        .core
        .subscribe(&s, inbox, endpoint(1).0)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    s.close();
    let err = n
        .core
        .publish(&s, &topic("t"), vec![ev(1)])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest, "closed session");
    n.core.shutdown().await;
    assert!(n.meta.get("nodes/node-a").await.unwrap().is_none());
    assert_eq!(n.core.task_count(), 0);
}
