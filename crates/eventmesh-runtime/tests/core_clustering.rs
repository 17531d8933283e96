//! Delivery-core behaviour for CLUSTERING groups against the memory store: balance, windows,
//! ack timeouts, nacks and backoff, dead-lettering, members leaving, and shutdown.

mod core_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use core_common::*;
use eventmesh_core::{ErrorCode, ExtensionValue};
use eventmesh_runtime::core::{
    CoreOptions, EXT_DLQ_ATTEMPTS, EXT_DLQ_EVENT_ID, EXT_DLQ_GROUP, EXT_DLQ_TOPIC, PushKind,
};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn clustering_balances_across_three_members() {
    let n = node(fast_options()).await;
    let mut sessions = Vec::new();
    let mut rxs = Vec::new();
    for i in 0..3 {
        let s = session(&n.core, &format!("m{i}"));
        let (ep, rx) = endpoint(100);
        n.core
            .subscribe(&s, clustering("g", "orders"), ep)
            .await
            .unwrap();
        sessions.push(s);
        rxs.push(rx);
    }
    let publisher = session(&n.core, "pub");
    let ids = n
        .core
        .publish(&publisher, &topic("orders"), (0..30).map(ev).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 30);

    let mut seen = BTreeSet::new();
    let mut per_member = Vec::new();
    for (s, rx) in sessions.iter().zip(rxs.iter_mut()) {
        let mut count = 0;
        while let Ok(Some(p)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            assert_eq!(p.attempt, 1);
            assert!(matches!(p.kind, PushKind::Async));
            assert!(seen.insert(p.record.id), "event delivered twice");
            n.core.ack(s, p.delivery).unwrap();
            count += 1;
        }
        per_member.push(count);
    }
    assert_eq!(seen.len(), 30, "every event delivered once");
    assert_eq!(
        per_member,
        vec![10, 10, 10],
        "round-robin over members with room"
    );
    // Acks reach the store: the group's position moves past every event.
    eventually("acks reach the store", || async {
        cursor(&n.store, "orders", "g").await.committed == vec![(0, 30)]
    })
    .await;
    assert_eq!(n.core.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_acks_gets_its_events_redelivered_to_others() {
    let options = fast_options();
    let n = node(options.clone()).await;
    let silent = session(&n.core, "silent");
    let (ep, mut silent_rx) = endpoint(100);
    n.core
        .subscribe(&silent, clustering("g", "t"), ep)
        .await
        .unwrap();
    let worker = session(&n.core, "worker");
    let (ep, mut worker_rx) = endpoint(100);
    n.core
        .subscribe(&worker, clustering("g", "t"), ep)
        .await
        .unwrap();

    let start = Instant::now();
    let p = session(&n.core, "pub");
    n.core
        .publish(&p, &topic("t"), (0..4).map(ev).collect())
        .await
        .unwrap();
    let held: BTreeSet<_> = [recv(&mut silent_rx).await, recv(&mut silent_rx).await]
        .iter()
        .map(|p| p.record.id)
        .collect();
    let mut done = BTreeMap::new();
    while done.len() < 4 {
        let push = recv(&mut worker_rx).await;
        n.core.ack(&worker, push.delivery).unwrap();
        done.insert(push.record.id, (push.attempt, start.elapsed()));
    }
    for id in &held {
        let (attempt, at) = done[id];
        assert_eq!(attempt, 2, "redelivery counts as a new attempt");
        assert!(
            at >= options.ack_timeout + options.backoff_initial,
            "redelivered after the timeout and backoff, at {at:?}"
        );
    }
    // The silent member gets nothing more, and its late ack is refused.
    assert!(quiet(&mut silent_rx, Duration::from_secs(30)).await);
    eventually("acks reach the store", || async {
        cursor(&n.store, "t", "g").await.committed == vec![(0, 4)]
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn nack_redelivers_with_exponential_backoff() {
    let options = CoreOptions {
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        ..fast_options()
    };
    let n = node(options).await;
    let s = session(&n.core, "m");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(&s, clustering("g", "t"), ep)
        .await
        .unwrap();
    let p = session(&n.core, "pub");
    n.core.publish(&p, &topic("t"), vec![ev(1)]).await.unwrap();

    let first = recv(&mut rx).await;
    let t0 = Instant::now();
    n.core.nack(&s, first.delivery).unwrap();
    let second = recv(&mut rx).await;
    let gap1 = t0.elapsed();
    assert_eq!((second.record.id, second.attempt), (first.record.id, 2));
    let t1 = Instant::now();
    n.core.nack(&s, second.delivery).unwrap();
    let third = recv(&mut rx).await;
    let gap2 = t1.elapsed();
    assert_eq!(third.attempt, 3);
    assert!(
        gap1 >= Duration::from_secs(1) && gap1 < Duration::from_secs(2),
        "first backoff {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(2) && gap2 < Duration::from_secs(3),
        "second backoff {gap2:?}"
    );
    // A settled delivery cannot be acked again.
    let err = n.core.ack(&s, second.delivery).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotSubscribed);
    n.core.ack(&s, third.delivery).unwrap();
}

#[tokio::test(start_paused = true)]
async fn past_max_attempts_the_event_goes_to_the_dead_letter_topic_and_is_acked() {
    let options = CoreOptions {
        max_attempts: 3,
        ..fast_options()
    };
    let n = node(options).await;
    // A reader of the group's dead-letter topic (an ordinary topic).
    let reader = session(&n.core, "dlq-reader");
    let (ep, mut dlq_rx) = endpoint(10);
    n.core
        .subscribe(&reader, clustering("ops", "g.DLQ"), ep)
        .await
        .unwrap();

    let s = session(&n.core, "m");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(&s, clustering("g", "t"), ep)
        .await
        .unwrap();
    let p = session(&n.core, "pub");
    let ids = n.core.publish(&p, &topic("t"), vec![ev(7)]).await.unwrap();

    for attempt in 1..=3 {
        let push = recv(&mut rx).await;
        assert_eq!(push.attempt, attempt);
        n.core.nack(&s, push.delivery).unwrap();
    }
    let dead = recv(&mut dlq_rx).await;
    let e = &dead.record.event;
    assert_eq!(dead.topic, topic("g.DLQ"));
    assert_eq!(e.id, "e7", "the original CloudEvent is kept");
    assert_eq!(e.data.as_deref(), Some(&b"payload 7"[..]));
    assert_eq!(e.extension_str(EXT_DLQ_TOPIC), Some("t"));
    assert_eq!(e.extension_str(EXT_DLQ_GROUP), Some("g"));
    assert_eq!(
        e.extension(EXT_DLQ_ATTEMPTS),
        Some(&ExtensionValue::Integer(3))
    );
    assert_eq!(
        e.extension_str(EXT_DLQ_EVENT_ID),
        Some(ids[0].to_string().as_str())
    );
    n.core.ack(&reader, dead.delivery).unwrap();
    // The original is done: acked in the store, never delivered again.
    assert!(quiet(&mut rx, Duration::from_secs(30)).await);
    let info = cursor(&n.store, "t", "g").await;
    assert_eq!((info.committed, info.in_flight), (vec![(0, 1)], 0));
}

#[tokio::test(start_paused = true)]
async fn a_member_never_holds_more_than_its_window() {
    let n = node(fast_options()).await;
    let s = session(&n.core, "m");
    let (ep, mut rx) = endpoint(3);
    n.core
        .subscribe(&s, clustering("g", "t"), ep.clone())
        .await
        .unwrap();
    let p = session(&n.core, "pub");
    n.core
        .publish(&p, &topic("t"), (0..10).map(ev).collect())
        .await
        .unwrap();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(recv(&mut rx).await);
    }
    assert!(
        quiet(&mut rx, Duration::from_secs(2)).await,
        "window of 3 is full"
    );
    assert_eq!(ep.in_flight(), 3);
    // The backlog waits in the store, not in the core.
    let info = cursor(&n.store, "t", "g").await;
    assert!(
        info.in_flight <= 3,
        "fetched only for the room members have: {info:?}"
    );
    // One ack makes room for exactly one more.
    n.core.ack(&s, held.remove(0).delivery).unwrap();
    held.push(recv(&mut rx).await);
    assert!(quiet(&mut rx, Duration::from_secs(2)).await);
    assert_eq!(ep.in_flight(), 3);
    // Draining everything never exceeds the window.
    let mut total = 4;
    while total < 10 {
        n.core.ack(&s, held.remove(0).delivery).unwrap();
        held.push(recv(&mut rx).await);
        assert!(ep.in_flight() <= 3);
        total += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_leaving_returns_its_in_flight_to_the_others_at_once() {
    let options = CoreOptions {
        backoff_initial: Duration::from_secs(1),
        ..fast_options()
    };
    let n = node(options).await;
    let leaving = session(&n.core, "leaving");
    let (ep, mut leaving_rx) = endpoint(100);
    n.core
        .subscribe(&leaving, clustering("g", "t"), ep)
        .await
        .unwrap();
    let staying = session(&n.core, "staying");
    let (ep, mut staying_rx) = endpoint(100);
    n.core
        .subscribe(&staying, clustering("g", "t"), ep)
        .await
        .unwrap();
    let p = session(&n.core, "pub");
    n.core
        .publish(&p, &topic("t"), (0..6).map(ev).collect())
        .await
        .unwrap();

    let mut held = BTreeSet::new();
    for _ in 0..3 {
        held.insert(recv(&mut leaving_rx).await.record.id);
    }
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let push = recv(&mut staying_rx).await;
        n.core.ack(&staying, push.delivery).unwrap();
        got.insert(push.record.id);
    }
    let t0 = Instant::now();
    drop(leaving); // the adapter's connection closed
    for _ in 0..3 {
        let push = recv(&mut staying_rx).await;
        assert_eq!(push.attempt, 2);
        assert!(held.contains(&push.record.id));
        n.core.ack(&staying, push.delivery).unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "no backoff for a member that left: {:?}",
        t0.elapsed()
    );
    assert!(quiet(&mut staying_rx, Duration::from_secs(30)).await);
    assert_eq!(n.core.session_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_member_leaving_stops_the_dispatcher_and_the_backlog_waits_in_the_store() {
    let n = node(fast_options()).await;
    let s = session(&n.core, "m");
    let (ep, mut rx) = endpoint(10);
    n.core
        .subscribe(&s, clustering("g", "t"), ep)
        .await
        .unwrap();
    assert_eq!(n.core.dispatcher_count(), 1);
    n.core
        .unsubscribe(&s, &group("g"), &topic("t"))
        .await
        .unwrap();
    assert_eq!(n.core.dispatcher_count(), 0);
    let p = session(&n.core, "pub");
    n.core
        .publish(&p, &topic("t"), (0..5).map(ev).collect())
        .await
        .unwrap();
    assert!(quiet(&mut rx, Duration::from_secs(5)).await);
    assert_eq!(
        cursor(&n.store, "t", "g").await.in_flight,
        0,
        "nothing pulled without members"
    );
    // The group keeps its position: a new member gets the backlog.
    let s2 = session(&n.core, "m2");
    let (ep, mut rx2) = endpoint(10);
    n.core
        .subscribe(&s2, clustering("g", "t"), ep)
        .await
        .unwrap();
    for _ in 0..5 {
        let push = recv(&mut rx2).await;
        n.core.ack(&s2, push.delivery).unwrap();
    }
    let err = n
        .core
        .unsubscribe(&s, &group("g"), &topic("t"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotSubscribed);
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_in_flight_events_to_the_store_for_other_nodes() {
    let store = eventmesh_storage_memory::MemoryStore::new();
    let meta = eventmesh_runtime::meta::EmbeddedMeta::new();
    let a = node_on("node-a", store.clone(), meta.clone(), fast_options()).await;
    let s = session(&a.core, "m");
    let (ep, mut rx) = endpoint(10);
    a.core
        .subscribe(&s, clustering("g", "t"), ep)
        .await
        .unwrap();
    let p = session(&a.core, "pub");
    n_publish(&a, &p, 3).await;
    let mut held = BTreeSet::new();
    for _ in 0..3 {
        held.insert(recv(&mut rx).await.record.id);
    }
    assert_eq!(a.core.in_flight(), 3);

    // Node b shares the store's group cursor.
    let b = node_on("node-b", store.clone(), meta.clone(), fast_options()).await;
    let sb = session(&b.core, "mb");
    let (ep, mut rx_b) = endpoint(10);
    b.core
        .subscribe(&sb, clustering("g", "t"), ep)
        .await
        .unwrap();

    let t0 = Instant::now();
    a.core.shutdown().await;
    assert_eq!(a.core.task_count(), 0, "every task ended");
    assert!(!a.core.is_ready());
    for _ in 0..3 {
        let push = recv(&mut rx_b).await;
        assert!(held.contains(&push.record.id));
        assert_eq!(push.attempt, 2);
        b.core.ack(&sb, push.delivery).unwrap();
    }
    assert!(
        t0.elapsed() < fast_options().ack_timeout,
        "returned at once, not by a timeout"
    );
    let err = a
        .core
        .publish(&p, &topic("t"), vec![ev(9)])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ShuttingDown);
    // The node left the meta store with its lease.
    use eventmesh_runtime::meta::MetaStore;
    assert!(meta.get("nodes/node-a").await.unwrap().is_none());
    assert!(meta.get("nodes/node-b").await.unwrap().is_some());
    b.core.shutdown().await;
}

async fn n_publish(n: &Node, s: &eventmesh_runtime::core::SessionHandle, count: usize) {
    n.core
        .publish(s, &topic("t"), (0..count).map(ev).collect())
        .await
        .expect("publish");
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_closed_by_its_timeout_and_its_in_flight_redelivered() {
    // Default 30 s ack timeout: the idle timeout (10 s) acts first.
    let n = node(CoreOptions::default()).await;
    let idle = session(&n.core, "idle");
    idle.set_idle_timeout(Some(Duration::from_secs(10)));
    let (ep, mut idle_rx) = endpoint(10);
    n.core
        .subscribe(&idle, clustering("g", "t"), ep)
        .await
        .unwrap();
    let alive = session(&n.core, "alive");
    alive.set_idle_timeout(Some(Duration::from_secs(10)));
    let p = session(&n.core, "pub");
    n.core.publish(&p, &topic("t"), vec![ev(1)]).await.unwrap();
    let held = recv(&mut idle_rx).await;
    let t0 = Instant::now();
    // Only now does the other member join (so the event went to `idle`).
    let (ep, mut alive_rx) = endpoint(10);
    n.core
        .subscribe(&alive, clustering("g", "t"), ep)
        .await
        .unwrap();
    let again = tokio::select! {
        push = recv(&mut alive_rx) => push,
        // A heartbeat every 4 s keeps `alive` open meanwhile.
        _ = async { loop { tokio::time::sleep(Duration::from_secs(4)).await; alive.touch(); } } => unreachable!(),
    };
    assert_eq!((again.record.id, again.attempt), (held.record.id, 2));
    assert!(
        t0.elapsed() >= Duration::from_secs(9) && t0.elapsed() < Duration::from_secs(13),
        "{:?}",
        t0.elapsed()
    );
    assert!(idle.is_closed());
    assert!(!alive.is_closed());
    n.core.ack(&alive, again.delivery).unwrap();
    let err = n
        .core
        .publish(&idle, &topic("t"), vec![ev(2)])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert_eq!(n.core.session_count(), 2, "alive and the publisher");
}
