//! Concurrent first fetches of one cursor on one store make a single Kafka consumer.
//!
//! A second consumer of the cursor's group would join as another member: Kafka would rebalance
//! and could hand the partitions to a consumer nobody reads (nothing delivered until its
//! session timed out) or move them while acks were in flight (acked events delivered again).
//! Both were seen in CI before the store made cursors one at a time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_kafka::KafkaStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_fetches_make_one_consumer() {
    let broker = common::Tansu::start(common::Engine::Memory);
    let store = Arc::new(
        KafkaStore::connect(common::test_options(&broker.url()))
            .await
            .expect("connect"),
    );
    let topic = Topic::new("one-consumer").expect("topic");
    store.create_topic(&topic).await.expect("create topic");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    let records: Vec<EventRecord> = (0..20)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("e-{i}"), "/one-consumer", "t")
                    .with_data("text/plain", Bytes::from_static(b"x")),
            )
        })
        .collect();
    store.publish(&topic, &records).await.expect("publish");

    let mut fetches = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let c = c.clone();
        fetches.spawn(async move {
            store
                .fetch(&c, 4, Duration::from_secs(30), Duration::from_millis(300))
                .await
        });
    }
    let mut seen = 0;
    while let Some(done) = fetches.join_next().await {
        let got = done.expect("fetch task").expect("fetch");
        let tokens: Vec<_> = got.iter().map(|d| d.token.clone()).collect();
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.expect("ack");
        }
        seen += got.len();
    }
    assert_eq!(
        store.consumers_made(),
        1,
        "eight concurrent first fetches of one cursor must share one Kafka consumer"
    );

    // Every event still comes, to this one consumer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen < records.len() && tokio::time::Instant::now() < deadline {
        let got = store
            .fetch(&c, 64, Duration::from_secs(30), Duration::from_millis(200))
            .await
            .expect("fetch");
        let tokens: Vec<_> = got.iter().map(|d| d.token.clone()).collect();
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.expect("ack");
        }
        seen += got.len();
    }
    assert!(seen >= records.len(), "only {seen} of 20 events came back");
    store.close().await.expect("close");
}
