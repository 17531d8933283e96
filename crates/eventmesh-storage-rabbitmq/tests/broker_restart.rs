//! The broker killed with SIGKILL mid-stream and restarted on the same ports and data directory:
//! the store reconnects by itself, publishes during the outage fail with `Unavailable` within
//! the confirm timeout, and every publish that was acknowledged is delivered to the group at
//! least once. It has its own node (it kills it). Run it alone to see the measured times:
//! `cargo test -p eventmesh-storage-rabbitmq --test broker_restart -- --nocapture`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_rabbitmq::{RabbitOptions, RabbitStore};
use parking_lot::Mutex;
use tokio::time::Instant;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than the confirm timeout a failing call may return.
const SLACK: Duration = Duration::from_millis(1500);
const LEASE: Duration = Duration::from_secs(2);
const BEFORE_KILL: usize = 300;
const AFTER_RESTART: usize = 300;
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Log {
    /// Acknowledged publishes: event id → when the publish returned.
    acked: HashMap<EventId, Instant>,
    /// Failed publishes: when, how long the call took, and the error.
    failures: Vec<(Instant, Duration, StorageError)>,
    /// Delivered events: id → first delivery.
    delivered: HashMap<EventId, Instant>,
    fetch_errors: usize,
}

fn record(topic: &Topic, n: u64) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(
            format!("restart-{n}"),
            "/rabbitmq/restart-test",
            "test.event",
        )
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_restart() {
    let broker = Arc::new(common::Broker::start("restart"));
    let url = broker.vhost("restart");
    let mut opts = RabbitOptions::new(&url);
    opts.confirm_timeout = CONFIRM_TIMEOUT;
    opts.max_reconnect_backoff = Duration::from_millis(500);
    let store = Arc::new(RabbitStore::open(opts).await.expect("open the store"));
    let topic = Topic::new("restart-topic").expect("topic");
    let group = GroupName::new("restart-group").expect("group");
    let c = ConsumerRef::clustering(topic.clone(), group);
    assert!(store.create_topic(&topic).await.expect("create topic"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");

    // RabbitMQ 3.10 persists the registration of its stream coordinator lazily: a node killed
    // within minutes of its first stream declaration may come back with every stream `down`
    // for good. A production broker has long since written it; a clean restart does it here
    // (and shows the store riding out a clean restart too).
    {
        let b = broker.clone();
        tokio::task::spawn_blocking(move || {
            b.stop();
            b.spawn();
        })
        .await
        .expect("restart the broker cleanly");
    }
    let reconnect_deadline = Instant::now() + Duration::from_secs(30);
    while store.health().await.is_err() {
        assert!(
            Instant::now() < reconnect_deadline,
            "the store did not reconnect within 30 s of a clean broker restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let log = Arc::new(Mutex::new(Log::default()));
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));

    // One publisher, one event per publish, as fast as the store answers.
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
                let r = record(&topic, n);
                n += 1;
                let started = Instant::now();
                match store.publish(&topic, std::slice::from_ref(&r)).await {
                    Ok(_) => {
                        log.lock().acked.insert(r.id, Instant::now());
                    }
                    Err(e) => {
                        log.lock().failures.push((started, started.elapsed(), e));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };
    // One consumer acking everything.
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
                    .fetch(&c, 256, LEASE, Duration::from_millis(200))
                    .await
                {
                    Ok(batch) => {
                        {
                            let mut l = log.lock();
                            for d in &batch {
                                l.delivered.entry(d.record.id).or_insert_with(Instant::now);
                            }
                        }
                        let tokens: Vec<_> = batch.into_iter().map(|d| d.token).collect();
                        if !tokens.is_empty() && store.ack(&c, &tokens).await.is_err() {
                            log.lock().fetch_errors += 1;
                        }
                    }
                    Err(_) => {
                        log.lock().fetch_errors += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
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
    {
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.kill())
            .await
            .expect("kill the broker");
    }
    // Down for a while: publishes must fail, clearly and in bounded time.
    wait_for(
        "a failed publish during the outage",
        Duration::from_secs(30),
        || {
            log.lock()
                .failures
                .iter()
                .any(|(at, _, _)| *at >= killed_at)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked_before_restart = log.lock().acked.len();
    let restart_began = Instant::now();
    {
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.spawn())
            .await
            .expect("restart the broker");
    }
    let broker_ready = restart_began.elapsed();
    let target = acked_before_restart + AFTER_RESTART;
    let resumed = tokio::time::timeout(
        Duration::from_secs(60),
        wait_for(
            "publishes after the restart",
            Duration::from_secs(60),
            || log.lock().acked.len() >= target,
        ),
    )
    .await;
    if resumed.is_err() {
        let l = log.lock();
        let last: Vec<String> = l
            .failures
            .iter()
            .rev()
            .take(5)
            .map(|(_, _, e)| e.to_string())
            .collect();
        panic!(
            "publishing did not resume within 60 s of the restart ({} acknowledged since); last errors: {last:#?}",
            l.acked.len() - acked_before_restart
        );
    }
    let publishing_resumed = log
        .lock()
        .acked
        .values()
        .filter(|t| **t >= restart_began)
        .min()
        .map(|t| t.duration_since(restart_began));
    stop_publishing.store(true, Ordering::SeqCst);
    publisher.await.expect("publisher task");

    // Every acknowledged publish is delivered at least once.
    wait_for(
        "delivery of every acknowledged publish",
        DELIVERY_DEADLINE,
        || {
            let l = log.lock();
            l.acked.keys().all(|id| l.delivered.contains_key(id))
        },
    )
    .await;
    stop_consuming.store(true, Ordering::SeqCst);
    consumer.await.expect("consumer task");

    {
        let l = log.lock();
        let outage: Vec<_> = l
            .failures
            .iter()
            .filter(|(at, _, _)| *at >= killed_at)
            .collect();
        assert!(
            !outage.is_empty(),
            "no publish failed while the broker was down"
        );
        for (at, _, e) in &l.failures {
            if !matches!(e, StorageError::Unavailable(_)) {
                eprintln!(
                    "failure {} ms after the kill ({} ms after restart began): {e}",
                    at.duration_since(killed_at).as_millis(),
                    at.saturating_duration_since(restart_began).as_millis()
                );
            }
        }
        for (_, took, e) in &l.failures {
            assert!(
                matches!(e, StorageError::Unavailable(_)),
                "a publish failed with `{e}` ({e:?}); expected Unavailable"
            );
            assert!(
                *took <= CONFIRM_TIMEOUT + SLACK,
                "a failing publish took {} ms (confirm timeout {} ms)",
                took.as_millis(),
                CONFIRM_TIMEOUT.as_millis()
            );
        }
        let slowest = l
            .failures
            .iter()
            .map(|(_, t, _)| *t)
            .max()
            .unwrap_or_default();
        println!(
            "broker restart: {} publishes acknowledged, {} failed during the outage (slowest failure {} ms, e.g. `{}`), \
             broker ready {} ms after restart began, first acknowledged publish {} ms after restart began, \
             {} fetch/ack errors, every acknowledged event delivered",
            l.acked.len(),
            outage.len(),
            slowest.as_millis(),
            outage
                .first()
                .map(|(_, _, e)| e.to_string())
                .unwrap_or_default(),
            broker_ready.as_millis(),
            publishing_resumed.map_or(-1, |d| d.as_millis() as i128),
            l.fetch_errors,
        );
    }
    store.close().await.expect("close");
    broker.stop();
}
