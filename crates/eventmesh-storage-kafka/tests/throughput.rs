//! Throughput probe (ignored by default): publish, fetch and ack through the store, then the
//! same workload straight through rdkafka (producer with acks=all, a group consumer committing
//! after each batch), against one private tansu broker (memory engine).
//!
//! ```sh
//! cargo test --release -p eventmesh-storage-kafka --test throughput -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_kafka::KafkaStore;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const EVENTS: usize = 20_000;
const BATCH: usize = 100;
const FETCH: usize = 256;

fn records(topic: &Topic) -> Vec<EventRecord> {
    (0..EVENTS)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("tp-{i}"), "/throughput", "tp")
                    .with_data("application/octet-stream", Bytes::from(vec![7u8; 256])),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput probe; run with --release --ignored --nocapture"]
async fn publish_fetch_ack_through_the_store_and_directly() {
    let broker = common::Tansu::start(common::Engine::Memory);

    // Through the store.
    let store = KafkaStore::connect(common::test_options(&broker.url()))
        .await
        .expect("connect");
    let topic = Topic::new("throughput").expect("topic");
    store.create_topic(&topic).await.expect("create");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    let recs = records(&topic);
    let payload_bytes = recs[0].to_bytes().len();
    let t = Instant::now();
    for chunk in recs.chunks(BATCH) {
        store.publish(&topic, chunk).await.expect("publish");
    }
    let publish_store = t.elapsed();
    let t = Instant::now();
    let mut got = 0;
    while got < EVENTS {
        let batch = store
            .fetch(
                &c,
                FETCH,
                Duration::from_secs(30),
                Duration::from_millis(500),
            )
            .await
            .expect("fetch");
        got += batch.len();
        let tokens: Vec<_> = batch.iter().map(|d| d.token.clone()).collect();
        store.ack(&c, &tokens).await.expect("ack");
    }
    let consume_store = t.elapsed();
    store.close().await.expect("close");

    // Directly through rdkafka: the same payloads, the same settings where they matter.
    let bootstrap = format!("127.0.0.1:{}", broker.port());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    admin
        .create_topics(
            [&NewTopic::new("direct", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let payloads: Vec<Bytes> = recs.iter().map(EventRecord::to_bytes).collect();
    let t = Instant::now();
    for chunk in payloads.chunks(BATCH) {
        let mut pending = Vec::with_capacity(chunk.len());
        for p in chunk {
            let r = FutureRecord::<(), [u8]>::to("direct").payload(p.as_ref());
            pending.push(
                producer
                    .send_result(r)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
        }
        for f in pending {
            f.await.expect("delivery").expect("stored");
        }
    }
    let publish_direct = t.elapsed();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "direct")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    consumer.subscribe(&["direct"]).expect("subscribe");
    let t = Instant::now();
    let mut got = 0;
    while got < EVENTS {
        let mut n = 0;
        while n < FETCH && got + n < EVENTS {
            let m = consumer.recv().await.expect("message");
            std::hint::black_box(EventRecord::decode(&Bytes::copy_from_slice(
                m.payload().unwrap_or_default(),
            )))
            .expect("decode");
            n += 1;
        }
        got += n;
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
    }
    let consume_direct = t.elapsed();

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    eprintln!(
        "{EVENTS} events of {payload_bytes} bytes stored, publish batches of {BATCH}, fetch {FETCH}:\n\
         store : publish {:>8.0} ev/s, fetch+ack {:>8.0} ev/s\n\
         direct: publish {:>8.0} ev/s, consume+commit {:>8.0} ev/s (rdkafka, sync commit per {FETCH})",
        rate(publish_store),
        rate(consume_store),
        rate(publish_direct),
        rate(consume_direct),
    );
}
