//! Subscription filters in the delivery core: only matching events are pushed, the others are
//! done for the group (the store cursor moves past them), the filter belongs to the
//! (group, topic), and invalid or conflicting filters are refused.

mod core_common;

use std::collections::BTreeSet;
use std::time::Duration;

use core_common::*;
use eventmesh_core::{CloudEvent, ErrorCode, Subscription};

fn filtered(mut s: Subscription, filter: &str) -> Subscription {
    s.filter = Some(filter.to_owned());
    s
}

/// Event `i`: type `keep` when `i` is even, `drop` otherwise; odd multiples of 3 have no
/// `region` extension (a missing attribute is an error, so no match).
fn typed(i: usize) -> CloudEvent {
    let ty = if i.is_multiple_of(2) { "keep" } else { "drop" };
    let e =
        CloudEvent::new(format!("e{i}"), "/shop/eu", ty).with_data("text/plain", format!("{i}"));
    if i.is_multiple_of(3) && !i.is_multiple_of(2) {
        e
    } else {
        e.with_extension("region", "eu")
    }
}

#[tokio::test(start_paused = true)]
async fn only_matching_events_are_pushed_and_the_rest_are_done() {
    let n = node(fast_options()).await;
    let member = session(&n.core, "m");
    let (ep, mut rx) = endpoint(100);
    n.core
        .subscribe(
            &member,
            filtered(
                clustering("g", "orders"),
                "type = 'keep' AND source LIKE '/shop/%'",
            ),
            ep,
        )
        .await
        .unwrap();
    // Another group on the same topic without a filter gets everything.
    let other = session(&n.core, "o");
    let (ep, mut other_rx) = endpoint(100);
    n.core
        .subscribe(&other, clustering("all", "orders"), ep)
        .await
        .unwrap();

    let publisher = session(&n.core, "pub");
    n.core
        .publish(&publisher, &topic("orders"), (0..20).map(typed).collect())
        .await
        .unwrap();

    let mut got = BTreeSet::new();
    for _ in 0..10 {
        let p = recv(&mut rx).await;
        assert_eq!(p.record.event.ty, "keep");
        got.insert(p.record.event.id.clone());
        n.core.ack(&member, p.delivery).unwrap();
    }
    assert_eq!(got.len(), 10);
    assert!(
        quiet(&mut rx, Duration::from_secs(3)).await,
        "nothing else is pushed"
    );
    eventually("the filtered group's cursor passes every event", || async {
        cursor(&n.store, "orders", "g").await.committed == vec![(0, 20)]
    })
    .await;
    assert_eq!(cursor(&n.store, "orders", "g").await.in_flight, 0);

    for _ in 0..20 {
        let p = recv(&mut other_rx).await;
        n.core.ack(&other, p.delivery).unwrap();
    }
    eventually(
        "the unfiltered group's cursor passes every event",
        || async { cursor(&n.store, "orders", "all").await.committed == vec![(0, 20)] },
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn events_whose_evaluation_fails_do_not_match() {
    let n = node(fast_options()).await;
    let member = session(&n.core, "m");
    let (ep, mut rx) = endpoint(100);
    n.core
        .subscribe(&member, filtered(clustering("g", "t"), "region = 'eu'"), ep)
        .await
        .unwrap();
    let publisher = session(&n.core, "pub");
    n.core
        .publish(&publisher, &topic("t"), (0..12).map(typed).collect())
        .await
        .unwrap();
    // 3 and 9 lack `region`: the rest (10) match.
    let mut got = BTreeSet::new();
    for _ in 0..10 {
        let p = recv(&mut rx).await;
        got.insert(p.record.event.id.clone());
        n.core.ack(&member, p.delivery).unwrap();
    }
    assert!(!got.contains("e3") && !got.contains("e9"));
    assert!(quiet(&mut rx, Duration::from_secs(3)).await);
    eventually("the cursor passes every event", || async {
        cursor(&n.store, "t", "g").await.committed == vec![(0, 12)]
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn broadcasting_members_filter_too() {
    let n = node(fast_options()).await;
    let mut members = Vec::new();
    for i in 0..2 {
        let s = session(&n.core, &format!("b{i}"));
        let (ep, rx) = endpoint(100);
        n.core
            .subscribe(
                &s,
                filtered(broadcasting("bg", "news"), "type = 'keep'"),
                ep,
            )
            .await
            .unwrap();
        members.push((s, rx));
    }
    let publisher = session(&n.core, "pub");
    n.core
        .publish(&publisher, &topic("news"), (0..6).map(typed).collect())
        .await
        .unwrap();
    for (s, rx) in &mut members {
        for _ in 0..3 {
            let p = recv(rx).await;
            assert_eq!(p.record.event.ty, "keep");
            n.core.ack(s, p.delivery).unwrap();
        }
        assert!(quiet(rx, Duration::from_secs(3)).await);
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_filters_are_refused_with_the_parse_error() {
    let n = node(fast_options()).await;
    let s = session(&n.core, "m");
    for (filter, needle) in [
        ("type = ", "parse:"),
        ("type = 'x' AND", "parse:"),
        ("NOSUCH(type) = 'x'", "missingFunction"),
        ("1 / 0 = 1", "math"),
    ] {
        let (ep, _rx) = endpoint(10);
        let e = n
            .core
            .subscribe(&s, filtered(clustering("g", "t"), filter), ep)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{filter}: {e}");
        assert!(e.message.contains(needle), "{filter}: {}", e.message);
    }
    // Nothing was bound: a subscribe without a filter is accepted afterwards.
    let (ep, _rx) = endpoint(10);
    n.core
        .subscribe(&s, clustering("g", "t"), ep)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_different_filter_for_the_same_group_and_topic_is_refused() {
    let n = node(fast_options()).await;
    let a = session(&n.core, "a");
    let (ep, _rx_a) = endpoint(10);
    n.core
        .subscribe(&a, filtered(clustering("g", "t"), "type = 'x'"), ep)
        .await
        .unwrap();

    let b = session(&n.core, "b");
    // The same expression spelled differently is the same filter.
    let (ep, _rx_b) = endpoint(10);
    n.core
        .subscribe(&b, filtered(clustering("g", "t"), "TYPE=\"x\""), ep)
        .await
        .unwrap();

    let c = session(&n.core, "c");
    for other in [Some("type = 'y'"), None] {
        let mut sub = clustering("g", "t");
        sub.filter = other.map(str::to_owned);
        let (ep, _rx) = endpoint(10);
        let e = n.core.subscribe(&c, sub, ep).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::SubscriptionConflict, "{other:?}: {e}");
    }
    // Another group may use any filter.
    let (ep, _rx) = endpoint(10);
    n.core
        .subscribe(&c, filtered(clustering("g2", "t"), "type = 'y'"), ep)
        .await
        .unwrap();
}
