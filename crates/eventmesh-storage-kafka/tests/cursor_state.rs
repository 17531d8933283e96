//! Cursor state topics: tansu 0.6 drops offset commit metadata, so `cursor_state = "auto"`
//! picks state topics there, and a cursor's acks above its committed offset and its delivery
//! counts survive a new store (a restart) through them. Unsubscribing deletes the state topic;
//! `cursor_state = "metadata"` makes none.

mod common;

use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, Delivery, EventStore, StartFrom};
use eventmesh_storage_kafka::{CursorState, KafkaOptions, KafkaStore};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const LEASE: Duration = Duration::from_secs(30);

/// The state topics (names starting with `prefix`) on the broker.
fn state_topics(bootstrap: &str, prefix: &str) -> Vec<String> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    let md = client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|t| t.starts_with(prefix))
        .collect()
}

/// A topic `name` with `n` events and a CLUSTERING cursor on it from the start.
async fn cursor_with_events(store: &KafkaStore, name: &str, n: usize) -> ConsumerRef {
    let topic = Topic::new(name).expect("topic");
    store.create_topic(&topic).await.expect("create topic");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    store
        .publish(&topic, &records(&topic, n))
        .await
        .expect("publish");
    c
}

async fn fetch_n(store: &KafkaStore, c: &ConsumerRef, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(
            store
                .fetch(c, n - got.len(), LEASE, Duration::from_millis(300))
                .await
                .expect("fetch"),
        );
    }
    assert_eq!(got.len(), n, "expected {n} deliveries");
    got
}

fn records(topic: &Topic, n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("e-{i}"), "/cursor-state", "t")
                    .with_data("text/plain", Bytes::from_static(b"x")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_above_the_floor_and_counts_survive_a_new_store_through_the_state_topic() {
    let broker = common::Tansu::start(common::Engine::Memory);
    let opts = common::test_options(&broker.url());
    let bootstrap = broker.url().trim_start_matches("kafka://").to_owned();
    let state_prefix = format!("__{}state.", opts.group_prefix);
    let store = KafkaStore::connect(opts.clone()).await.expect("connect");
    assert!(
        store.uses_state_topics(),
        "tansu 0.6 drops commit metadata: `auto` must pick state topics"
    );
    let c = cursor_with_events(&store, "cursor-state", 6).await;

    // Deliver 0..6, nack 1 so that it comes again (count 2), ack 2 and 4 (above the floor 0).
    let first = fetch_n(&store, &c, 6).await;
    store
        .nack(&c, &first[1].token, Duration::ZERO)
        .await
        .expect("nack");
    let again = fetch_n(&store, &c, 1).await;
    assert_eq!(again[0].offset, first[1].offset);
    assert_eq!(again[0].delivery_count, 2);
    store
        .ack(&c, &[first[2].token.clone(), first[4].token.clone()])
        .await
        .expect("ack");
    let made = state_topics(&bootstrap, &state_prefix);
    assert_eq!(made.len(), 1, "one state topic: {made:?}");
    store.close().await.expect("close");
    drop(store);

    // A new store (a restart): 2 and 4 stay done; 0, 1, 3, 5 come again, counted on.
    let store = KafkaStore::connect(opts).await.expect("connect again");
    let got = fetch_n(&store, &c, 4).await;
    let offsets: Vec<u64> = got.iter().map(|d| d.offset.seq).collect();
    assert_eq!(
        offsets,
        vec![
            first[0].offset.seq,
            first[1].offset.seq,
            first[3].offset.seq,
            first[5].offset.seq
        ]
    );
    let counts: Vec<u32> = got.iter().map(|d| d.delivery_count).collect();
    assert_eq!(
        counts,
        vec![2, 3, 2, 2],
        "delivery counts go on after the restart"
    );
    let tokens: Vec<_> = got.iter().map(|d| d.token.clone()).collect();
    store.ack(&c, &tokens).await.expect("ack the rest");
    let nothing = store
        .fetch(&c, 10, LEASE, Duration::from_millis(500))
        .await
        .expect("fetch");
    assert!(nothing.is_empty(), "everything was acked: {nothing:?}");

    // Unsubscribing deletes the group's state topic.
    store.unsubscribe(&c).await.expect("unsubscribe");
    let left = state_topics(&bootstrap, &state_prefix);
    assert!(left.is_empty(), "state topics left: {left:?}");
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_mode_makes_no_state_topic() {
    let broker = common::Tansu::start(common::Engine::Memory);
    let opts = KafkaOptions {
        cursor_state: CursorState::Metadata,
        ..common::test_options(&broker.url())
    };
    let bootstrap = broker.url().trim_start_matches("kafka://").to_owned();
    let state_prefix = format!("__{}state.", opts.group_prefix);
    let store = KafkaStore::connect(opts).await.expect("connect");
    assert!(!store.uses_state_topics());
    let c = cursor_with_events(&store, "no-state", 3).await;
    let got = fetch_n(&store, &c, 3).await;
    store
        .ack(&c, &[got[1].token.clone()])
        .await
        .expect("ack out of order");
    let made = state_topics(&bootstrap, &state_prefix);
    assert!(made.is_empty(), "{made:?}");
    store.close().await.expect("close");
}
