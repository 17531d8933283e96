//! Store-specific behaviour against a real RocketMQ name server and broker (beyond the kit):
//! names on the brokers, unreachable name servers, snapshots across stores.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_rocketmq::{RocketOptions, RocketStore};

fn record(topic: &Topic, n: usize) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("e-{n}"), "/rocket", "test.rocket")
            .with_data("text/plain", Bytes::from(format!("event {n}"))),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_fails_with_unavailable_naming_rocketmq_when_no_name_server_answers() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut opts = RocketOptions::new(format!("rocketmq://127.0.0.1:{port}"));
    opts.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    match RocketStore::open(opts).await {
        Err(StorageError::Unavailable(m)) => assert!(m.contains("RocketMQ"), "{m}"),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("opened a store with no name server"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "open took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_with_any_name_round_trip_and_cursors_move_between_stores() {
    let broker = common::RocketBroker::start();
    let opts = common::test_options(&broker.url());
    let store = common::open_store(opts.clone())
        .await
        .unwrap_or_else(|e| panic!("open: {e}\n{}", broker.log_tail()));
    let topic = Topic::new("orders.eu_west/1").expect("topic");
    assert!(store.create_topic(&topic).await.expect("create"));
    let listed = store.list_topics().await.expect("list");
    assert!(
        listed.iter().any(|t| t.topic == topic),
        "{listed:?} lacks {topic}"
    );
    let records: Vec<EventRecord> = (0..20).map(|n| record(&topic, n)).collect();
    let offsets = store.publish(&topic, &records).await.expect("publish");
    assert_eq!(offsets.len(), 20);
    assert!(
        offsets.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "{offsets:?}"
    );

    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g.1").expect("group"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    let got = store
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("fetch");
    assert_eq!(got.len(), 10);
    for (d, r) in got.iter().zip(&records) {
        assert_eq!(d.record.id, r.id);
        assert_eq!(d.delivery_count, 1);
    }
    // Ack the first five; the other five stay out when the store goes away.
    let tokens: Vec<_> = got[..5].iter().map(|d| d.token.clone()).collect();
    store.ack(&c, &tokens).await.expect("ack");
    let info = store.cursor_info(&c).await.expect("info");
    assert_eq!(info.committed, vec![(0, offsets[5].seq)]);
    assert_eq!(info.in_flight, 5);
    drop(store);

    // Another store (another node) loads the cursor from its snapshot: the five un-acked events
    // come back at once with count 2, then the ten never handed out with count 1.
    let other = common::open_store(opts).await.expect("open again");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 15 && Instant::now() < deadline {
        let batch = other
            .fetch(&c, 20, Duration::from_secs(30), Duration::from_secs(2))
            .await
            .expect("fetch");
        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
        other.ack(&c, &tokens).await.expect("ack");
        seen.extend(batch.into_iter().map(|d| (d.offset.seq, d.delivery_count)));
    }
    let want: Vec<(u64, u32)> = offsets[5..10]
        .iter()
        .map(|o| (o.seq, 2))
        .chain(offsets[10..].iter().map(|o| (o.seq, 1)))
        .collect();
    assert_eq!(seen, want);
    other.delete_topic(&topic).await.expect("delete");
    assert!(matches!(
        other
            .fetch(&c, 1, Duration::from_secs(1), Duration::ZERO)
            .await,
        Err(StorageError::UnknownTopic(_))
    ));
    other.close().await.expect("close");
}

/// Fetches from `store` until it has `want` events or `within` passed, acking each batch.
async fn drain(
    store: &RocketStore,
    c: &ConsumerRef,
    want: usize,
    within: Duration,
) -> Vec<(u64, u32)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    while seen.len() < want && Instant::now() < deadline {
        let batch = store
            .fetch(
                c,
                want - seen.len(),
                Duration::from_secs(30),
                Duration::from_millis(500),
            )
            .await
            .expect("fetch");
        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
        if !tokens.is_empty() {
            store.ack(c, &tokens).await.expect("ack");
        }
        seen.extend(batch.into_iter().map(|d| (d.offset.seq, d.delivery_count)));
    }
    seen
}

/// Two mesh nodes (two stores) on one CLUSTERING cursor: the one holding the broker's queue
/// lock serves it, the other gets nothing (and `Unavailable` for acks) until the first closes
/// (and releases the lock) or dies (and the broker lets the lock go), then takes over from the
/// last snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_store_serves_a_cursor_and_another_takes_over_when_it_goes() {
    let broker = common::RocketBroker::start();
    let opts = common::test_options(&broker.url());
    let a = common::open_store(opts.clone())
        .await
        .unwrap_or_else(|e| panic!("open: {e}\n{}", broker.log_tail()));
    let b = common::open_store(opts.clone()).await.expect("open b");
    let topic = Topic::new("locked").expect("topic");
    a.create_topic(&topic).await.expect("create");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    a.subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe a");
    b.subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe b (standby)");
    let records: Vec<EventRecord> = (0..30).map(|n| record(&topic, n)).collect();
    let offsets = store_publish(&a, &topic, &records).await;

    // A serves: it gets the first ten; B, fetching at the same time, gets nothing.
    let got = a
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("fetch a");
    assert_eq!(got.len(), 10);
    for _ in 0..3 {
        let none = b
            .fetch(&c, 10, Duration::from_secs(30), Duration::from_millis(300))
            .await
            .expect("fetch b");
        assert!(none.is_empty(), "a standby store delivered {none:?}");
    }
    let tokens: Vec<_> = got.iter().map(|d| d.token.clone()).collect();
    assert!(matches!(
        b.ack(&c, &tokens).await,
        Err(StorageError::Unavailable(_))
    ));
    a.ack(&c, &tokens[..5]).await.expect("ack a");

    // A closes: B takes over at once; the five handed out and not acked come back (count 2),
    // then the rest.
    a.close().await.expect("close a");
    let seen = drain(&b, &c, 10, Duration::from_secs(10)).await;
    let want: Vec<(u64, u32)> = offsets[5..10]
        .iter()
        .map(|o| (o.seq, 2))
        .chain(offsets[10..15].iter().map(|o| (o.seq, 1)))
        .collect();
    assert_eq!(seen, want);

    // B dies (dropped, no close): a third store waits for the broker to let B's lock go.
    drop(b);
    let c3 = common::open_store(opts).await.expect("open c");
    let started = Instant::now();
    let seen = drain(&c3, &c, 15, common::LOCK_MAX_LIVE * 5).await;
    let want: Vec<(u64, u32)> = offsets[15..].iter().map(|o| (o.seq, 1)).collect();
    assert_eq!(seen, want);
    assert!(
        started.elapsed() >= common::LOCK_MAX_LIVE / 2,
        "took over after {:?}, before the dead store's lock could expire",
        started.elapsed()
    );
    c3.close().await.expect("close c");
}

async fn store_publish(
    store: &RocketStore,
    topic: &Topic,
    records: &[EventRecord],
) -> Vec<eventmesh_storage::Offset> {
    store.publish(topic, records).await.expect("publish")
}

/// A store asking for a cursor that does not exist does not keep its queue lock: another store
/// creates and serves the cursor at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asking_for_an_unknown_cursor_leaves_its_lock_free() {
    let broker = common::RocketBroker::start();
    let opts = common::test_options(&broker.url());
    let a = common::open_store(opts.clone())
        .await
        .unwrap_or_else(|e| panic!("open: {e}\n{}", broker.log_tail()));
    let b = common::open_store(opts).await.expect("open b");
    let topic = Topic::new("unknown-first").expect("topic");
    a.create_topic(&topic).await.expect("create");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("late").expect("group"));
    assert!(matches!(
        a.fetch(&c, 1, Duration::from_secs(30), Duration::ZERO)
            .await,
        Err(StorageError::UnknownConsumer(_))
    ));
    b.subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe b");
    b.publish(&topic, &[record(&topic, 0)])
        .await
        .expect("publish");
    let got = b
        .fetch(&c, 1, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .expect("fetch b");
    assert_eq!(got.len(), 1, "b must serve the cursor it created");
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}
