//! Append and read-back throughput of the embedded store.
//!
//! `cargo bench -p eventmesh-storage-embedded --bench append -- --warm-up-time 1 --measurement-time 3`
//!
//! * `append/<policy>/<size>`: one `publish` of 1,000 events whose data is `<size>` bytes, with
//!   fsync per batch (`batch`, the default policy) or never (`never`).
//! * `append_concurrent/batch/128`: 4 publishers of 1,000-event batches at once (group commit
//!   shares the fsync).
//! * `fetch/128`: `fetch` of 1,000 events from a cursor (seeking back when the log is consumed);
//!   `consume/128`: `fetch` and `ack` of 1,000 events (fsync `never`).
//!
//! Goals on the 2-core reference machine: >= 1,000,000 appends/s of 128 B without fsync and
//! >= 300,000/s with an fsync per batch of 1,000.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore, FsyncPolicy};

const BATCH: usize = 1000;

fn batch(topic: &Topic, size: usize) -> Vec<EventRecord> {
    (0..BATCH)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("id-{i}"), "/bench", "bench.event").with_data(
                    "application/octet-stream",
                    Bytes::from(vec![(i % 251) as u8; size]),
                ),
            )
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> EmbeddedStore {
    // Keep the disk use of a long run bounded: retain at most 1 GiB per topic.
    let opts = EmbeddedOptions {
        fsync,
        retention_bytes: Some(1 << 30),
        ..EmbeddedOptions::new(dir)
    };
    EmbeddedStore::open(opts).expect("open the store")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, policy) in [("batch", FsyncPolicy::Batch), ("never", FsyncPolicy::Never)] {
        for size in [128usize, 1024] {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = open(dir.path(), policy);
            let topic = Topic::new("bench").expect("topic");
            rt.block_on(store.create_topic(&topic))
                .expect("create topic");
            let records = batch(&topic, size);
            g.bench_with_input(BenchmarkId::new(name, size), &records, |b, records| {
                b.iter(|| {
                    rt.block_on(store.publish(&topic, black_box(records)))
                        .expect("publish")
                });
            });
            rt.block_on(store.close()).expect("close");
        }
    }
    g.finish();

    let mut g = c.benchmark_group("append_concurrent");
    g.throughput(Throughput::Elements(4 * BATCH as u64));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(open(dir.path(), FsyncPolicy::Batch));
    let topic = Topic::new("bench").expect("topic");
    rt.block_on(store.create_topic(&topic))
        .expect("create topic");
    let records = Arc::new(batch(&topic, 128));
    g.bench_function(BenchmarkId::new("batch", 128), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (s, t, r) = (Arc::clone(&store), topic.clone(), Arc::clone(&records));
                        tokio::spawn(async move { s.publish(&t, &r).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task").expect("publish");
                }
            })
        });
    });
    rt.block_on(store.close()).expect("close");
    g.finish();
}

fn read_back(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path(), FsyncPolicy::Never);
    let topic = Topic::new("bench").expect("topic");
    rt.block_on(store.create_topic(&topic))
        .expect("create topic");
    let records = batch(&topic, 128);
    for _ in 0..200 {
        rt.block_on(store.publish(&topic, &records))
            .expect("publish");
    }
    let mut g = c.benchmark_group("fetch");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cursor = ConsumerRef::clustering(topic.clone(), GroupName::new("fetch").expect("group"));
    rt.block_on(store.subscribe(&cursor, StartFrom::Earliest))
        .expect("subscribe");
    g.bench_function(BenchmarkId::from_parameter(128), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut d = store
                    .fetch(&cursor, BATCH, Duration::from_secs(3600), Duration::ZERO)
                    .await
                    .expect("fetch");
                if d.is_empty() {
                    store
                        .seek(&cursor, StartFrom::Earliest)
                        .await
                        .expect("seek");
                    d = store
                        .fetch(&cursor, BATCH, Duration::from_secs(3600), Duration::ZERO)
                        .await
                        .expect("fetch");
                }
                black_box(d)
            })
        });
    });
    g.finish();

    let mut g = c.benchmark_group("consume");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cursor = ConsumerRef::clustering(topic.clone(), GroupName::new("consume").expect("group"));
    rt.block_on(store.subscribe(&cursor, StartFrom::Earliest))
        .expect("subscribe");
    g.bench_function(BenchmarkId::from_parameter(128), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut d = store
                    .fetch(&cursor, BATCH, Duration::from_secs(3600), Duration::ZERO)
                    .await
                    .expect("fetch");
                if d.is_empty() {
                    store
                        .seek(&cursor, StartFrom::Earliest)
                        .await
                        .expect("seek");
                    d = store
                        .fetch(&cursor, BATCH, Duration::from_secs(3600), Duration::ZERO)
                        .await
                        .expect("fetch");
                }
                let tokens: Vec<_> = d.iter().map(|d| d.token.clone()).collect();
                store.ack(&cursor, &tokens).await.expect("ack");
            })
        });
    });
    g.finish();
    rt.block_on(store.close()).expect("close");
}

criterion_group!(benches, append, read_back);
criterion_main!(benches);
