//! A real-clock scenario on a multi-threaded runtime: 4 concurrent publishers, a CLUSTERING group
//! of 3 members, 10% of first deliveries nacked, one member dropped mid-stream without acking
//! what it holds. Every event must be done exactly once (acked by one member), the group's
//! position must pass every event, and nothing may stay in flight.

mod core_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use core_common::*;
use eventmesh_runtime::core::{Core, CoreOptions};
use eventmesh_runtime::meta::EmbeddedMeta;
use eventmesh_storage::{ConsumerRef, EventStore};
use eventmesh_storage_memory::MemoryStore;
use parking_lot::Mutex;

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 500;
const BATCH: usize = 10;
const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;

fn options() -> CoreOptions {
    CoreOptions {
        ack_timeout: Duration::from_millis(500),
        crash_lease: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        window: 20,
        prefetch: 64,
        fetch_wait: Duration::from_millis(200),
        ..CoreOptions::default()
    }
}

/// Runs the scenario against `store`; returns how many deliveries were nacked.
pub async fn scenario(store: Arc<dyn EventStore>) -> usize {
    // `RUST_LOG=eventmesh_runtime=debug` shows the core's decisions when this fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let core = core_on("node-a", store.clone(), EmbeddedMeta::new(), options()).await;
    // Done events: mesh id → number of acks.
    let done: Arc<Mutex<HashMap<eventmesh_core::EventId, u32>>> = Arc::default();
    let nacked = Arc::new(Mutex::new(0usize));
    let mut members = Vec::new();
    for m in 0..3 {
        let s = session(&core, &format!("member-{m}"));
        let (ep, mut rx) = endpoint(20);
        core.subscribe(&s, clustering("workers", "jobs"), ep)
            .await
            .expect("subscribe");
        let core = core.clone();
        let done = done.clone();
        let nacked = nacked.clone();
        members.push(tokio::spawn(async move {
            let mut received = 0;
            while let Some(push) = rx.recv().await {
                received += 1;
                if m == 2 && received == 150 {
                    // Dropped mid-stream: whatever it holds goes to the others.
                    drop(s);
                    return;
                }
                let seq: usize = push
                    .record
                    .event
                    .id
                    .trim_start_matches('e')
                    .parse()
                    .expect("numbered");
                if push.attempt == 1 && seq.is_multiple_of(10) {
                    *nacked.lock() += 1;
                    core.nack(&s, push.delivery).expect("nack");
                } else if core.ack(&s, push.delivery).is_ok() {
                    *done.lock().entry(push.record.id).or_default() += 1;
                }
            }
        }));
    }
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let core: Arc<Core> = core.clone();
        publishers.push(tokio::spawn(async move {
            let s = session(&core, &format!("publisher-{p}"));
            for b in 0..PER_PUBLISHER / BATCH {
                let events = (0..BATCH)
                    .map(|i| ev(p * PER_PUBLISHER + b * BATCH + i))
                    .collect();
                core.publish(&s, &topic("jobs"), events)
                    .await
                    .expect("publish");
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let consumer = ConsumerRef::clustering(topic("jobs"), group("workers"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.lock().len() < TOTAL {
        if tokio::time::Instant::now() >= deadline {
            let info = store.cursor_info(&consumer).await;
            panic!(
                "only {} of {TOTAL} events done; core in flight {}; store cursor {info:?}",
                done.lock().len(),
                core.in_flight()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let twice: Vec<_> = done
        .lock()
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(twice.is_empty(), "events acked twice: {twice:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = store.cursor_info(&consumer).await.expect("cursor");
        if info.committed == vec![(0, TOTAL as u64)] && info.in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cursor never caught up: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(core.in_flight(), 0);
    core.shutdown().await;
    assert_eq!(core.task_count(), 0);
    // Shutdown closed every push channel, so the members end.
    for m in members {
        tokio::time::timeout(Duration::from_secs(10), m)
            .await
            .expect("member ends after shutdown")
            .expect("member");
    }
    *nacked.lock()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_every_event_done_exactly_once_under_nacks_and_a_dropped_member() {
    let nacked = scenario(Arc::new(MemoryStore::new())).await;
    assert!(nacked >= TOTAL / 10 - 50, "about 10% nacked: {nacked}");
}

#[cfg(feature = "embedded")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_every_event_done_exactly_once_under_nacks_and_a_dropped_member() {
    use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore};
    let dir = tempfile::tempdir().expect("tempdir");
    // The default fsync policy (every batch, acks included).
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).expect("store opens");
    let store: Arc<dyn EventStore> = Arc::new(store);
    let nacked = scenario(store.clone()).await;
    assert!(nacked >= TOTAL / 10 - 50, "about 10% nacked: {nacked}");
    store.close().await.expect("close");
}
