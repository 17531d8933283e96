//! The broker dies (SIGKILL) while events are published and consumed through the store, and comes
//! back on the same port and store directory: every publish the store acknowledged is delivered
//! at least once afterwards, publishes during the outage fail with `Unavailable` within a bound,
//! and the store reconnects, publishes and fetches again without being reopened.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_nats::NatsStore;
use parking_lot::Mutex;

const BATCH: usize = 10;
/// Acknowledged events wanted before the kill, and again after the restart.
const BEFORE: usize = 1_000;
const AFTER: usize = 1_000;
/// Failed publishes wanted while the broker is down.
const OUTAGE_FAILURES: usize = 5;
/// The longest a publish may take to fail while the broker is down.
const FAIL_WITHIN: Duration = Duration::from_secs(4);
/// The longest the test waits for anything (delivery after the restart included).
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Log {
    acked: Vec<EventId>,
    failures: Vec<(Duration, String)>,
    slow_failures: Vec<(Duration, String)>,
    wrong_errors: Vec<String>,
}

fn record(topic: &Topic, n: usize) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("restart-{n}"), "/broker-restart", "test.restart")
            .with_data("text/plain", Bytes::from(format!("event {n}"))),
    )
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_kill() {
    let mut server = common::NatsServer::start();
    let mut opts = common::test_options(&server.url());
    opts.request_timeout = Duration::from_secs(2);
    opts.ack_wait = Duration::from_secs(3);
    let store: Arc<dyn EventStore> = Arc::new(NatsStore::connect(opts).await.expect("connect"));
    let topic = Topic::new(&format!("restart.{}", std::process::id())).expect("topic");
    let group = GroupName::new("restart-group").expect("group");
    let c = ConsumerRef::clustering(topic.clone(), group);
    assert!(store.create_topic(&topic).await.expect("create topic"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");

    let log = Arc::new(Mutex::new(Log::default()));
    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    // Publisher: batches of 10, one after the other, recording what was acknowledged.
    let publisher = {
        let (store, topic, log, down, stop) = (
            store.clone(),
            topic.clone(),
            log.clone(),
            down.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<EventRecord> = (n..n + BATCH).map(|i| record(&topic, i)).collect();
                n += BATCH;
                let was_down = down.load(Ordering::SeqCst);
                let t = Instant::now();
                let r = store.publish(&topic, &batch).await;
                let took = t.elapsed();
                let failed = {
                    let mut l = log.lock();
                    match r {
                        Ok(offsets) => {
                            assert_eq!(offsets.len(), BATCH);
                            l.acked.extend(batch.iter().map(|r| r.id));
                            false
                        }
                        Err(e @ StorageError::Unavailable(_)) => {
                            if took > FAIL_WITHIN {
                                l.slow_failures.push((took, e.to_string()));
                            }
                            if was_down {
                                l.failures.push((took, e.to_string()));
                            }
                            true
                        }
                        Err(e) => {
                            l.wrong_errors.push(format!("{e:?}"));
                            true
                        }
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };

    // Consumer: fetches and acks all along, through the outage, recording what it got.
    let delivered: Arc<Mutex<HashSet<EventId>>> = Arc::default();
    let fetch_errors = Arc::new(AtomicUsize::new(0));
    let consumer = {
        let (store, c, delivered, stop, fetch_errors) = (
            store.clone(),
            c.clone(),
            delivered.clone(),
            stop.clone(),
            fetch_errors.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match store
                    .fetch(&c, 256, Duration::from_secs(3), Duration::from_millis(200))
                    .await
                {
                    Ok(batch) => {
                        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
                        delivered.lock().extend(batch.iter().map(|d| d.record.id));
                        if !tokens.is_empty() && store.ack(&c, &tokens).await.is_err() {
                            fetch_errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        fetch_errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        })
    };

    wait_for("acknowledged publishes before the kill", || {
        log.lock().acked.len() >= BEFORE
    })
    .await;
    let acked_before_kill = log.lock().acked.len();
    down.store(true, Ordering::SeqCst);
    server.kill();
    let killed_at = Instant::now();
    wait_for("publishes failing while the broker is down", || {
        log.lock().failures.len() >= OUTAGE_FAILURES
    })
    .await;
    let outage = killed_at.elapsed();
    {
        let s = tokio::task::spawn_blocking(move || {
            server.start_again();
            server
        });
        server = s.await.expect("restart");
    }
    let restarted_at = Instant::now();
    down.store(false, Ordering::SeqCst);
    let acked_at_restart = log.lock().acked.len();
    wait_for("acknowledged publishes after the restart", || {
        log.lock().acked.len() >= acked_at_restart + AFTER
    })
    .await;
    let first_publish_after = restarted_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    publisher.await.expect("publisher");

    // Every acknowledged event comes at least once (the consumer keeps running until then).
    let acked: Vec<EventId> = log.lock().acked.clone();
    let started = Instant::now();
    loop {
        let missing = {
            let d = delivered.lock();
            acked.iter().filter(|id| !d.contains(id)).count()
        };
        if missing == 0 {
            break;
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "{missing} of {} acknowledged events were never delivered within {} s after publishing stopped; server log:\n{}",
                acked.len(),
                DEADLINE.as_secs(),
                server.log_tail()
            );
        }
        // The consumer task stopped with the publisher; fetch here until everything came.
        let batch = store
            .fetch(&c, 256, Duration::from_secs(3), Duration::from_millis(200))
            .await
            .expect("fetch after the restart");
        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
        delivered.lock().extend(batch.iter().map(|d| d.record.id));
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.expect("ack after the restart");
        }
    }
    consumer.await.expect("consumer");
    {
        let l = log.lock();
        eprintln!(
            "broker kill: {acked_before_kill} events acknowledged before the kill, {} in all; outage {} ms with {} failed publishes (slowest failure {} ms); {} ms from the restart until {AFTER} more were acknowledged; {} fetch/ack errors during the outage; first failure: {:?}",
            l.acked.len(),
            outage.as_millis(),
            l.failures.len(),
            l.failures
                .iter()
                .map(|f| f.0)
                .max()
                .unwrap_or_default()
                .as_millis(),
            first_publish_after.as_millis(),
            fetch_errors.load(Ordering::SeqCst),
            l.failures.first().map(|f| &f.1),
        );
        assert!(
            l.wrong_errors.is_empty(),
            "publishes failed with errors other than Unavailable: {:?}",
            l.wrong_errors
        );
        assert!(
            l.slow_failures.is_empty(),
            "publishes took longer than {} s to fail: {:?}",
            FAIL_WITHIN.as_secs(),
            l.slow_failures
        );
        for (_, msg) in &l.failures {
            assert!(
                msg.contains("NATS"),
                "an outage error does not say what is unavailable: {msg}"
            );
        }
    }
    store.close().await.expect("close");
}
