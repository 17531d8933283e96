//! Behaviour specific to the RabbitMQ store: one server per cursor (standby and take-over),
//! idle release, masked passwords, unreachable brokers. Runs against this binary's private
//! node (see `common`), a fresh vhost per test.

mod common;

use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_rabbitmq::{RabbitOptions, RabbitStore};

fn records(topic: &Topic, n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("e{i}"), "/rabbitmq/test", "test.event")
                    .with_data("text/plain", Bytes::from(format!("event {i}"))),
            )
        })
        .collect()
}

async fn open(url: &str, idle: Option<Duration>) -> RabbitStore {
    let mut o = RabbitOptions::new(url);
    if let Some(idle) = idle {
        o.release_idle_after = idle;
    }
    RabbitStore::open(o).await.expect("open the store")
}

fn names() -> (Topic, ConsumerRef) {
    let topic = Topic::new("orders.created").expect("topic");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("billing").expect("group"));
    (topic, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_is_a_standby_and_takes_over_what_was_not_acked() {
    let url = common::shared().vhost("standby");
    let (topic, c) = names();
    let a = open(&url, None).await;
    let b = open(&url, None).await;
    assert!(a.create_topic(&topic).await.expect("create"));
    a.subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    b.subscribe(&c, StartFrom::Latest)
        .await
        .expect("subscribe (existing)");
    let published = records(&topic, 10);
    a.publish(&topic, &published).await.expect("publish");

    let mut held = Vec::new();
    while held.len() < 5 {
        held.extend(
            a.fetch(
                &c,
                5 - held.len(),
                Duration::from_secs(30),
                Duration::from_secs(2),
            )
            .await
            .expect("fetch on a"),
        );
    }
    let tokens: Vec<_> = held[..2].iter().map(|d| d.token.clone()).collect();
    a.ack(&c, &tokens).await.expect("ack on a");
    let standby = b
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_millis(700))
        .await
        .expect("fetch on b");
    assert!(
        standby.is_empty(),
        "the standby got {} events",
        standby.len()
    );

    a.close().await.expect("close a");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b took over only {} events",
            got.len()
        );
        let batch = b
            .fetch(&c, 10, Duration::from_secs(30), Duration::from_millis(500))
            .await
            .expect("fetch on b after a closed");
        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
        got.extend(batch);
        if !tokens.is_empty() {
            b.ack(&c, &tokens).await.expect("ack on b");
        }
    }
    let ids: Vec<_> = got.iter().map(|d| d.record.id).collect();
    let expected: Vec<_> = published[2..].iter().map(|r| r.id).collect();
    assert_eq!(
        ids, expected,
        "b must get exactly the events a had not acked, in order"
    );
    for d in &got[..3] {
        assert_eq!(d.delivery_count, 2, "held by a, so redelivered: {d:?}");
    }
    for d in &got[3..] {
        assert_eq!(d.delivery_count, 1, "never handed out: {d:?}");
    }
    let info = b.cursor_info(&c).await.expect("cursor_info");
    assert_eq!(info.in_flight, 0);
    assert!(info.committed[0].1 > got[7].offset.seq, "{info:?}");
    b.close().await.expect("close b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_store_releases_its_cursors() {
    let url = common::shared().vhost("idle");
    let (topic, c) = names();
    let a = open(&url, Some(Duration::from_millis(300))).await;
    let b = open(&url, None).await;
    a.create_topic(&topic).await.expect("create");
    a.subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    a.publish(&topic, &records(&topic, 3))
        .await
        .expect("publish");
    let first = a
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .expect("fetch on a");
    assert!(!first.is_empty());
    let tokens: Vec<_> = first.iter().map(|d| d.token.clone()).collect();
    a.ack(&c, &tokens).await.expect("ack");
    // a stops fetching; b, polling, gets the cursor once a lets it go.
    let later = records(&topic, 2);
    b.publish(&topic, &later).await.expect("publish on b");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < later.len() + 3 - first.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never got the cursor"
        );
        got.extend(
            b.fetch(&c, 10, Duration::from_secs(30), Duration::from_millis(500))
                .await
                .expect("fetch on b"),
        );
    }
    let last: Vec<_> = got[got.len() - 2..].iter().map(|d| d.record.id).collect();
    assert_eq!(last, later.iter().map(|r| r.id).collect::<Vec<_>>());
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_unavailable_with_the_password_masked() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut o = RabbitOptions::new(format!("amqp://user:s3cret@127.0.0.1:{port}/%2f"));
    o.connect_timeout = Duration::from_secs(2);
    match RabbitStore::open(o).await {
        Err(StorageError::Unavailable(m)) => {
            assert!(!m.contains("s3cret"), "{m}");
            assert!(m.contains("user:***@"), "{m}");
        }
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("opened a store on a port nothing listens on"),
    }
    match RabbitStore::open(RabbitOptions::new("amqps://h/")).await {
        Err(StorageError::Invalid(_)) => {}
        other => panic!("expected Invalid for amqps://, got {other:?}"),
    }
}
