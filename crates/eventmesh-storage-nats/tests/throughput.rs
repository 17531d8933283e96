//! Throughput probe (ignored by default): publish, fetch and ack through the store, then the
//! same workload straight through async-nats, against one private nats-server.
//!
//! ```sh
//! cargo test --release -p eventmesh-storage-nats --test throughput -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_nats::NatsStore;
use futures_util::StreamExt;

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
    let server = common::NatsServer::start();

    // Through the store.
    let store = NatsStore::connect(common::test_options(&server.url()))
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

    // Directly through async-nats: the same messages, pipelined publishes, pull fetch, acks.
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    let s = js
        .create_stream(stream::Config {
            name: "DIRECT".into(),
            subjects: vec!["direct".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let consumer = s
        .create_consumer(pull::Config {
            durable_name: Some("direct".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let payloads: Vec<Bytes> = recs.iter().map(EventRecord::to_bytes).collect();
    let t = Instant::now();
    for chunk in payloads.chunks(BATCH) {
        let mut acks = Vec::with_capacity(chunk.len());
        for p in chunk {
            acks.push(js.publish("direct", p.clone()).await.expect("publish"));
        }
        for a in acks {
            a.await.expect("publish ack");
        }
    }
    let publish_direct = t.elapsed();
    // The same with the headers the store sets (Nats-Msg-Id for dedup, expected stream).
    let t = Instant::now();
    for (n, chunk) in payloads.chunks(BATCH).enumerate() {
        let mut acks = Vec::with_capacity(chunk.len());
        for (k, p) in chunk.iter().enumerate() {
            let msg = jetstream::message::PublishMessage::build()
                .payload(p.clone())
                .message_id(format!("{n}-{k}"))
                .expected_stream("DIRECT");
            acks.push(js.send_publish("direct", msg).await.expect("publish"));
        }
        for a in acks {
            a.await.expect("publish ack");
        }
    }
    let publish_direct_headers = t.elapsed();
    let t = Instant::now();
    let mut got = 0;
    while got < 2 * EVENTS {
        let mut msgs = consumer
            .fetch()
            .max_messages(FETCH)
            .messages()
            .await
            .expect("fetch");
        while let Some(m) = msgs.next().await {
            let m = m.expect("message");
            m.ack().await.expect("ack");
            got += 1;
        }
    }
    let consume_direct = t.elapsed() / 2;

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    eprintln!(
        "{EVENTS} events of {payload_bytes} bytes stored, publish batches of {BATCH}, fetch {FETCH}:\n\
         store : publish {:>8.0} ev/s, fetch+ack {:>8.0} ev/s\n\
         direct: publish {:>8.0} ev/s ({:.0} ev/s with the store's headers), fetch+ack {:>8.0} ev/s (async-nats fetch, plain ack per message)",
        rate(publish_store),
        rate(consume_store),
        rate(publish_direct),
        rate(publish_direct_headers),
        rate(consume_direct),
    );
}
