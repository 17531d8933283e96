//! A benchmark probe (ignored by default): publish + fetch + ack through the store against the
//! same workload sent straight to Redis with the `redis` crate (`XADD` in an atomic pipeline per
//! batch, `XREADGROUP … BLOCK`, `XACK`), on one private `redis-server` with `appendonly yes`,
//! `appendfsync always`. Run:
//!
//! `cargo test --release -p eventmesh-storage-redis --test bench -- --ignored --nocapture --test-threads 1`

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventId, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_redis::{RedisOptions, RedisStore};
use parking_lot::Mutex;
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use common::RedisServer;

const THROUGHPUT_EVENTS: usize = 20_000;
const BATCH: usize = 100;
const RATE_EVENTS: usize = 5_000;
const RATE_INTERVAL: Duration = Duration::from_millis(1);

fn records(topic: &Topic, n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("b-{i}"), "/bench", "bench.event")
                    .with_data("application/octet-stream", Bytes::from(vec![7u8; 128])),
            )
        })
        .collect()
}

type Sent = Arc<Mutex<HashMap<EventId, Instant>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A workload: publish (in batches) while one consumer fetches and acks; returns the time to
/// deliver everything and each event's publish-to-delivery latency.
#[async_trait::async_trait]
trait Path: Send + Sync + 'static {
    async fn publish(&self, batch: &[EventRecord]);
    /// Fetches, acks, and returns the ids delivered.
    async fn consume(&self) -> Vec<EventId>;
}

struct StorePath {
    store: Arc<RedisStore>,
    topic: Topic,
    c: ConsumerRef,
}

#[async_trait::async_trait]
impl Path for StorePath {
    async fn publish(&self, batch: &[EventRecord]) {
        self.store
            .publish(&self.topic, batch)
            .await
            .expect("publish");
    }

    async fn consume(&self) -> Vec<EventId> {
        let ds = self
            .store
            .fetch(
                &self.c,
                256,
                Duration::from_secs(60),
                Duration::from_millis(100),
            )
            .await
            .expect("fetch");
        let tokens: Vec<_> = ds.iter().map(|d| d.token.clone()).collect();
        self.store.ack(&self.c, &tokens).await.expect("ack");
        ds.iter().map(|d| d.record.id).collect()
    }
}

struct DirectPath {
    conn: MultiplexedConnection,
    blocking: MultiplexedConnection,
    stream: String,
}

#[async_trait::async_trait]
impl Path for DirectPath {
    async fn publish(&self, batch: &[EventRecord]) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in batch {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("r")
                .arg(&r.to_bytes()[..]);
        }
        let mut conn = self.conn.clone();
        let _: Vec<String> = pipe.query_async(&mut conn).await.expect("xadd");
    }

    async fn consume(&self) -> Vec<EventId> {
        let mut conn = self.blocking.clone();
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(256)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .expect("xreadgroup");
        let mut ids = Vec::new();
        let mut entry_ids = Vec::new();
        if let Value::Array(streams) = v {
            for s in streams {
                let Value::Array(mut kv) = s else { continue };
                let Some(Value::Array(entries)) = kv.pop() else {
                    continue;
                };
                for e in entries {
                    let Value::Array(mut parts) = e else { continue };
                    let (Some(Value::Array(fields)), Some(Value::BulkString(id))) =
                        (parts.pop(), parts.pop())
                    else {
                        continue;
                    };
                    if let Some(Value::BulkString(b)) = fields.get(1) {
                        let r = EventRecord::decode(&Bytes::copy_from_slice(b)).expect("decode");
                        ids.push(r.id);
                    }
                    entry_ids.push(id);
                }
            }
        }
        if !entry_ids.is_empty() {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&self.stream).arg("g");
            for id in &entry_ids {
                cmd.arg(&id[..]);
            }
            let _: i64 = cmd.query_async(&mut conn).await.expect("xack");
        }
        ids
    }
}

/// Publishes `recs` in batches of `batch` (one batch every `pace` when given, concurrently)
/// while one consumer drains.
async fn run<P: Path>(
    p: Arc<P>,
    recs: Vec<EventRecord>,
    batch: usize,
    pace: Option<Duration>,
) -> (Duration, Vec<Duration>) {
    let n = recs.len();
    let sent: Sent = Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let consumer = {
        let (p, sent) = (p.clone(), sent.clone());
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            while lat.len() < n {
                let ids = p.consume().await;
                let now = Instant::now();
                let s = sent.lock();
                for id in ids {
                    if let Some(t) = s.get(&id) {
                        lat.push(now.duration_since(*t));
                    }
                }
            }
            lat
        })
    };
    let started = Instant::now();
    let mut next = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for chunk in recs.chunks(batch) {
        {
            let now = Instant::now();
            let mut s = sent.lock();
            for r in chunk {
                s.insert(r.id, now);
            }
        }
        match pace {
            // Paced: publishes are offered at the rate, each in its own task (as concurrent
            // clients would), so a slow fsync does not lower the offered rate.
            Some(pace) => {
                let (p, chunk) = (p.clone(), chunk.to_vec());
                in_flight.spawn(async move { p.publish(&chunk).await });
                next += pace;
                tokio::time::sleep_until(next).await;
            }
            None => p.publish(chunk).await,
        }
    }
    while let Some(r) = in_flight.join_next().await {
        r.expect("publish task");
    }
    let mut lat = consumer.await.expect("consumer");
    let took = started.elapsed();
    lat.sort_unstable();
    (took, lat)
}

async fn store_path(server: &RedisServer, label: &str) -> Arc<StorePath> {
    let store = Arc::new(
        RedisStore::open(RedisOptions::new(server.url()))
            .await
            .expect("open"),
    );
    let topic = Topic::new(&format!("bench-store-{label}")).expect("topic");
    store.create_topic(&topic).await.expect("create");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store
        .subscribe(&c, StartFrom::Latest)
        .await
        .expect("subscribe");
    Arc::new(StorePath { store, topic, c })
}

async fn direct_path(server: &RedisServer, label: &str) -> Arc<DirectPath> {
    let client = redis::Client::open(server.url()).expect("client");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let blocking = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let stream = format!("direct:{label}");
    let mut c = conn.clone();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .expect("xgroup");
    Arc::new(DirectPath {
        conn,
        blocking,
        stream,
    })
}

fn line(what: &str, took: Duration, n: usize, lat: &[Duration]) {
    println!(
        "{what:<44} {:>9.0} events/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        n as f64 / took.as_secs_f64(),
        percentile(lat, 0.50).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it alone, in release mode"]
async fn store_against_direct_redis() {
    let server = RedisServer::start().await;
    let payload_topic = Topic::new("bench-direct").expect("topic");
    for round in 0..2 {
        let (t, l) = run(
            direct_path(&server, &format!("t{round}")).await,
            records(&payload_topic, THROUGHPUT_EVENTS),
            BATCH,
            None,
        )
        .await;
        line(
            &format!("direct, batches of {BATCH}"),
            t,
            THROUGHPUT_EVENTS,
            &l,
        );
        let sp = store_path(&server, &format!("t{round}")).await;
        let recs = records(&sp.topic, THROUGHPUT_EVENTS);
        let (t, l) = run(sp, recs, BATCH, None).await;
        line(
            &format!("store, batches of {BATCH}"),
            t,
            THROUGHPUT_EVENTS,
            &l,
        );
        let (t, l) = run(
            direct_path(&server, &format!("r{round}")).await,
            records(&payload_topic, RATE_EVENTS),
            1,
            Some(RATE_INTERVAL),
        )
        .await;
        line(
            "direct, 1,000 events/s, one per publish",
            t,
            RATE_EVENTS,
            &l,
        );
        let sp = store_path(&server, &format!("r{round}")).await;
        let recs = records(&sp.topic, RATE_EVENTS);
        let (t, l) = run(sp, recs, 1, Some(RATE_INTERVAL)).await;
        line("store, 1,000 events/s, one per publish", t, RATE_EVENTS, &l);
    }
}
