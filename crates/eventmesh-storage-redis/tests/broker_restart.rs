//! Redis killed with SIGKILL mid-stream and restarted on the same port and directory: the store
//! reconnects by itself, publishes during the outage fail with `Unavailable` within the request
//! timeout, and every publish that was acknowledged is delivered to the group at least once.
//! Run it alone (`cargo test -p eventmesh-storage-redis --test broker_restart -- --nocapture`)
//! to see the measured times.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_redis::{RedisOptions, RedisStore};
use parking_lot::Mutex;
use tokio::time::Instant;

use common::RedisServer;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than the request timeout a failing call may return.
const SLACK: Duration = Duration::from_millis(500);
const LEASE: Duration = Duration::from_secs(2);
const BEFORE_KILL: usize = 500;
const AFTER_RESTART: usize = 500;
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Log {
    /// Acknowledged publishes: event id → when the publish returned.
    acked: HashMap<EventId, Instant>,
    /// Failed publishes: how long the call took and the error.
    failures: Vec<(Instant, Duration, StorageError)>,
    /// Delivered events: id → first delivery.
    delivered: HashMap<EventId, Instant>,
    fetch_errors: usize,
}

fn record(topic: &Topic, n: u64) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("restart-{n}"), "/redis/restart-test", "test.event")
            .with_data("text/plain", Bytes::from(format!("event {n}"))),
    )
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {} s waiting for {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_kill_and_delivery_resumes() {
    let mut server = RedisServer::start().await;
    let opts = RedisOptions::new(server.url()).request_timeout(REQUEST_TIMEOUT);
    let store = Arc::new(RedisStore::open(opts).await.expect("open the store"));
    let topic = Topic::new(&format!("restart-{:x}", rand::random::<u64>())).expect("topic");
    store.create_topic(&topic).await.expect("create topic");
    let c = ConsumerRef::clustering(
        topic.clone(),
        GroupName::new("restart-group").expect("group"),
    );
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");

    let log = Arc::new(Mutex::new(Log::default()));
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));

    let publisher = {
        let (store, log, stop, topic) = (
            store.clone(),
            log.clone(),
            stop_publishing.clone(),
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<EventRecord> = (0..5).map(|k| record(&topic, n + k)).collect();
                n += 5;
                let t = Instant::now();
                match store.publish(&topic, &batch).await {
                    Ok(offsets) => {
                        assert_eq!(offsets.len(), batch.len());
                        let now = Instant::now();
                        let mut l = log.lock();
                        for r in &batch {
                            l.acked.insert(r.id, now);
                        }
                    }
                    Err(e) => log.lock().failures.push((t, t.elapsed(), e)),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let consumer = {
        let (store, log, stop, c) = (
            store.clone(),
            log.clone(),
            stop_consuming.clone(),
            c.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match store
                    .fetch(&c, 100, LEASE, Duration::from_millis(200))
                    .await
                {
                    Ok(ds) => {
                        let now = Instant::now();
                        {
                            let mut l = log.lock();
                            for d in &ds {
                                l.delivered.entry(d.record.id).or_insert(now);
                            }
                        }
                        let tokens: Vec<_> = ds.iter().map(|d| d.token.clone()).collect();
                        // A lost ack only means a redelivery after the lease.
                        let _ = store.ack(&c, &tokens).await;
                    }
                    Err(_) => {
                        log.lock().fetch_errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };

    wait_for("publishes before the kill", Duration::from_secs(60), || {
        log.lock().acked.len() >= BEFORE_KILL
    })
    .await;
    let killed_at = Instant::now();
    server.kill();
    wait_for(
        "publishes to fail during the outage",
        Duration::from_secs(30),
        || {
            log.lock()
                .failures
                .iter()
                .filter(|(t, _, _)| *t >= killed_at)
                .count()
                >= 3
        },
    )
    .await;
    server.restart().await;
    let restarted_at = Instant::now();
    let acked_at_restart = log.lock().acked.len();
    wait_for(
        "publishes after the restart",
        Duration::from_secs(60),
        || log.lock().acked.len() >= acked_at_restart + AFTER_RESTART,
    )
    .await;
    stop_publishing.store(true, Ordering::SeqCst);
    publisher.await.expect("publisher task");

    let acked: Vec<EventId> = log.lock().acked.keys().copied().collect();
    wait_for(
        "every acknowledged event to be delivered",
        DELIVERY_DEADLINE,
        || {
            let l = log.lock();
            acked.iter().all(|id| l.delivered.contains_key(id))
        },
    )
    .await;
    stop_consuming.store(true, Ordering::SeqCst);
    consumer.await.expect("consumer task");

    report(&log.lock(), killed_at, restarted_at, server.port());
    store.close().await.expect("close");
}

fn report(l: &Log, killed_at: Instant, restarted_at: Instant, port: u16) {
    let outage_failures: Vec<_> = l
        .failures
        .iter()
        .filter(|(t, _, _)| *t >= killed_at)
        .collect();
    for (_, took, e) in &l.failures {
        assert!(
            matches!(e, StorageError::Unavailable(_)),
            "a publish during the outage failed with `{e}` ({e:?}); expected Unavailable"
        );
        assert!(
            *took <= REQUEST_TIMEOUT + SLACK,
            "a publish during the outage took {} ms to fail (request timeout {} ms): `{e}`",
            took.as_millis(),
            REQUEST_TIMEOUT.as_millis()
        );
        assert!(
            e.to_string().contains(&format!("127.0.0.1:{port}")),
            "the error does not name the Redis it could not reach: `{e}`"
        );
    }
    let first_publish_after = l
        .acked
        .values()
        .filter(|t| **t >= restarted_at)
        .min()
        .map(|t| t.duration_since(restarted_at));
    let first_delivery_after = l
        .delivered
        .values()
        .filter(|t| **t >= restarted_at)
        .min()
        .map(|t| t.duration_since(restarted_at));
    let slowest_failure = l
        .failures
        .iter()
        .map(|(_, d, _)| *d)
        .max()
        .unwrap_or_default();
    println!(
        "redis broker restart: {} publishes acknowledged, all delivered; {} failed during the outage \
         ({} ms outage, slowest failure {} ms, first: `{}`); after the restart the first publish \
         succeeded in {} ms and the first delivery came in {} ms; {} fetch errors",
        l.acked.len(),
        outage_failures.len(),
        restarted_at.duration_since(killed_at).as_millis(),
        slowest_failure.as_millis(),
        outage_failures
            .first()
            .map(|(_, _, e)| e.to_string())
            .unwrap_or_default(),
        first_publish_after.map_or(-1, |d| d.as_millis() as i64),
        first_delivery_after.map_or(-1, |d| d.as_millis() as i64),
        l.fetch_errors
    );
}
