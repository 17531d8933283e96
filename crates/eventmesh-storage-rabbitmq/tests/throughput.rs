//! A throughput probe, ignored by default (it measures, it does not check):
//! `cargo test --release -p eventmesh-storage-rabbitmq --test throughput -- --ignored --nocapture`.
//! Four publishers publish batches of 100 events of 256 bytes while one consumer fetches and acks;
//! prints events/s and the p50/p99 time from the start of a publish to the event's delivery.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_rabbitmq::{RabbitOptions, RabbitStore};
use parking_lot::Mutex;
use tokio::time::Instant;

const PUBLISHERS: usize = 4;
const BATCHES: usize = 50;
const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check; run it by hand"]
async fn publish_and_consume_throughput() {
    let url = common::shared().vhost("throughput");
    let store = Arc::new(
        RabbitStore::open(RabbitOptions::new(&url))
            .await
            .expect("open"),
    );
    let topic = Topic::new("throughput").expect("topic");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store.create_topic(&topic).await.expect("create");
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    let sent: Arc<Mutex<HashMap<EventId, Instant>>> = Arc::default();
    let total = PUBLISHERS * BATCHES * BATCH;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (store, topic, sent) = (store.clone(), topic.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<EventRecord> = (0..BATCH)
                    .map(|i| {
                        EventRecord::new(
                            topic.clone(),
                            CloudEvent::new(format!("{p}-{b}-{i}"), "/probe", "probe")
                                .with_data("application/octet-stream", Bytes::from(vec![7u8; 256])),
                        )
                    })
                    .collect();
                let at = Instant::now();
                sent.lock().extend(batch.iter().map(|r| (r.id, at)));
                store.publish(&topic, &batch).await.expect("publish");
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    while latencies.len() < total {
        let got = store
            .fetch(&c, 512, Duration::from_secs(30), Duration::from_millis(200))
            .await
            .expect("fetch");
        let now = Instant::now();
        {
            let s = sent.lock();
            for d in &got {
                if let Some(at) = s.get(&d.record.id) {
                    latencies.push(now.duration_since(*at));
                }
            }
        }
        let tokens: Vec<_> = got.into_iter().map(|d| d.token).collect();
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.expect("ack");
        }
    }
    let published_in = started.elapsed();
    for t in tasks {
        t.await.expect("publisher");
    }
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    println!(
        "rabbitmq store: {total} events in {:.2} s = {:.0} events/s end to end; publish-to-delivery p50 {:.1} ms, p99 {:.1} ms",
        published_in.as_secs_f64(),
        total as f64 / published_in.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
    store.close().await.expect("close");
}
