//! Quick checks of single behaviours against a private nats-server.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_nats::NatsStore;

fn record(topic: &Topic, i: usize) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("e{i}"), "/smoke", "smoke")
            .with_data("text/plain", Bytes::from(format!("{i}"))),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fetch_ack_nack_extend() {
    let server = common::NatsServer::start();
    let store = NatsStore::connect(common::test_options(&server.url()))
        .await
        .unwrap();
    let topic = Topic::new("smoke.topic/ü").unwrap();
    assert!(store.create_topic(&topic).await.unwrap());
    assert!(!store.create_topic(&topic).await.unwrap());
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g.1").unwrap());
    store.subscribe(&c, StartFrom::Earliest).await.unwrap();
    let recs: Vec<_> = (0..5).map(|i| record(&topic, i)).collect();
    let t = Instant::now();
    let offs = store.publish(&topic, &recs).await.unwrap();
    eprintln!("publish 5: {:?} {:?}", offs, t.elapsed());
    let t = Instant::now();
    let got = store
        .fetch(&c, 3, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    eprintln!("fetch 3 (no_wait path): {} in {:?}", got.len(), t.elapsed());
    assert_eq!(got.len(), 3);
    let t = Instant::now();
    let more = store
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    eprintln!(
        "fetch 10 with 2 available: {} in {:?}",
        more.len(),
        t.elapsed()
    );
    assert_eq!(more.len(), 2);
    let t = Instant::now();
    store.ack(&c, &[got[0].token.clone()]).await.unwrap();
    eprintln!("ack: {:?}", t.elapsed());
    let t = Instant::now();
    store
        .nack(&c, &got[1].token, Duration::from_millis(400))
        .await
        .unwrap();
    eprintln!("nack delay: {:?}", t.elapsed());
    let t = Instant::now();
    store
        .extend_lease(&c, &[got[2].token.clone()], Duration::from_secs(30))
        .await
        .unwrap();
    eprintln!("extend: {:?}", t.elapsed());
    let t = Instant::now();
    let again = store
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    eprintln!(
        "redelivery after nack: {} in {:?} dc={:?}",
        again.len(),
        t.elapsed(),
        again.iter().map(|d| d.delivery_count).collect::<Vec<_>>()
    );
    let t = Instant::now();
    let none = store
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_millis(300))
        .await
        .unwrap();
    eprintln!("empty fetch: {} in {:?}", none.len(), t.elapsed());
    eprintln!("cursor: {:?}", store.cursor_info(&c).await.unwrap());
    eprintln!("topics: {:?}", store.list_topics().await.unwrap());
    let m = ConsumerRef::broadcasting(topic.clone(), GroupName::new("b").unwrap(), "member/1");
    store.subscribe(&m, StartFrom::Time(0)).await.unwrap();
    store.seek(&m, StartFrom::Offset(u64::MAX)).await.unwrap();
    eprintln!(
        "member cursor past end: {:?}",
        store.cursor_info(&m).await.unwrap()
    );
    store.close().await.unwrap();
}
