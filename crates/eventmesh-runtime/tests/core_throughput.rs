//! A throughput probe of the delivery core alone (no transport), on the memory store:
//! `cargo test --release -p eventmesh-runtime --test core_throughput -- --ignored --nocapture`.
//! Ignored by default: it measures, it does not check behaviour.

mod core_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use core_common::*;
use eventmesh_core::CloudEvent;
use eventmesh_runtime::core::CoreOptions;
use eventmesh_runtime::meta::EmbeddedMeta;
use eventmesh_storage_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it explicitly in release mode"]
async fn clustering_throughput_on_the_memory_store() {
    const EVENTS: usize = 200_000;
    const BATCH: usize = 100;
    let options = CoreOptions {
        window: 1000,
        prefetch: 1024,
        ..CoreOptions::default()
    };
    let core = core_on(
        "bench",
        Arc::new(MemoryStore::new()),
        EmbeddedMeta::new(),
        options,
    )
    .await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut members = Vec::new();
    for m in 0..3 {
        let s = session(&core, &format!("m{m}"));
        let (ep, mut rx) = endpoint(1000);
        core.subscribe(&s, clustering("g", "bench"), ep)
            .await
            .expect("subscribe");
        let core = core.clone();
        let done = done.clone();
        members.push(tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                core.ack(&s, push.delivery).expect("ack");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let payload = vec![b'x'; 128];
    let publisher = session(&core, "pub");
    let start = Instant::now();
    for b in 0..EVENTS / BATCH {
        let events = (0..BATCH)
            .map(|i| {
                CloudEvent::new(format!("{b}-{i}"), "/bench", "t")
                    .with_data("application/octet-stream", payload.clone())
            })
            .collect();
        core.publish(&publisher, &topic("bench"), events)
            .await
            .expect("publish");
    }
    let published = start.elapsed();
    while done.load(Ordering::Relaxed) < EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = start.elapsed();
    eprintln!(
        "published {EVENTS} x 128 B in {published:?} ({:.0}/s); delivered and acked all in {total:?} ({:.0}/s)",
        EVENTS as f64 / published.as_secs_f64(),
        EVENTS as f64 / total.as_secs_f64()
    );
    core.shutdown().await;
}
