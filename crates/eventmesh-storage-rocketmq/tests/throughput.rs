//! A throughput probe, ignored by default (it measures, it does not check):
//! `cargo test --release -p eventmesh-storage-rocketmq --test throughput -- --ignored --nocapture`.
//! Four publishers publish batches of 100 events of 256 bytes of data while one consumer fetches
//! and acks through the store; then the same bodies are sent straight through the RocketMQ
//! producer (batches of 100 to one queue) for comparison. Prints events/s.

#![recursion_limit = "512"]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use tokio::time::Instant;

const PUBLISHERS: usize = 4;
const BATCHES: usize = 50;
const BATCH: usize = 100;

fn batch(topic: &Topic, p: usize, b: usize) -> Vec<EventRecord> {
    (0..BATCH)
        .map(|i| {
            EventRecord::new(
                topic.clone(),
                CloudEvent::new(format!("{p}-{b}-{i}"), "/probe", "probe")
                    .with_data("application/octet-stream", Bytes::from(vec![7u8; 256])),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run it by hand"]
async fn publish_and_consume_throughput() {
    let broker = common::RocketBroker::start();
    let opts = common::test_options(&broker.url());
    let store = Arc::new(common::open_store(opts).await.expect("open"));
    let topic = Topic::new("throughput").expect("topic");
    let c = ConsumerRef::clustering(topic.clone(), GroupName::new("g").expect("group"));
    store.create_topic(&topic).await.expect("create");
    store
        .subscribe(&c, StartFrom::Earliest)
        .await
        .expect("subscribe");
    let total = PUBLISHERS * BATCHES * BATCH;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (store, topic) = (store.clone(), topic.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                store
                    .publish(&topic, &batch(&topic, p, b))
                    .await
                    .expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let publish = started.elapsed();

    let started = Instant::now();
    let mut got = 0;
    while got < total {
        let ds = store
            .fetch(&c, 512, Duration::from_secs(30), Duration::from_millis(500))
            .await
            .expect("fetch");
        got += ds.len();
        let tokens: Vec<_> = ds.into_iter().map(|d| d.token).collect();
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.expect("ack");
        }
    }
    let consume = started.elapsed();
    println!(
        "rocketmq store: {total} events; publish {:.0} events/s ({:.2} s), fetch+ack {:.0} events/s ({:.2} s)",
        total as f64 / publish.as_secs_f64(),
        publish.as_secs_f64(),
        total as f64 / consume.as_secs_f64(),
        consume.as_secs_f64()
    );
    store.close().await.expect("close");

    // The same bodies straight through the RocketMQ producer, to one queue of a topic made by
    // the broker's auto-create.
    let direct = direct_publish(&broker.url()).await;
    println!(
        "rocketmq producer directly: {total} events; publish {:.0} events/s ({:.2} s)",
        total as f64 / direct.as_secs_f64(),
        direct.as_secs_f64()
    );
}

async fn direct_publish(url: &str) -> Duration {
    use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig, DefaultMQProducer};
    use rocketmq_model::common::message::message_queue::MessageQueue;
    use rocketmq_model::common::message::message_single::Message;
    use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

    let namesrv = url.trim_start_matches("rocketmq://").to_owned();
    let owner = RuntimeOwner::plan(RuntimeConfig::for_parallelism("probe", 2))
        .expect("plan")
        .build()
        .expect("runtime");
    let telemetry = rocketmq_observability::TelemetryRuntimeGuard::noop();
    let runtime = ClientRuntime::try_new(
        owner.root_context().component("probe"),
        ClientRuntimeConfig {
            shutdown_timeout: Duration::from_secs(3),
            ..ClientRuntimeConfig::default()
        },
        telemetry.handle(),
    )
    .expect("client runtime");
    let mut producer = DefaultMQProducer::builder(runtime.clone())
        .producer_group("probe-direct")
        .name_server_addr(namesrv)
        .build();
    producer.start().await.expect("start");
    let topic_name = "probe-direct";
    // A first send creates the topic (broker auto-create) and gives its broker name.
    let first = producer
        .send_with_timeout(
            Message::builder()
                .topic(topic_name)
                .body(Bytes::from_static(b"x"))
                .build()
                .expect("message"),
            3000,
        )
        .await
        .expect("first send")
        .expect("result");
    let broker = first
        .message_queue
        .as_ref()
        .map(|q| q.broker_name().to_string())
        .expect("queue");
    let topic = Topic::new("probe").expect("topic");
    let producer = Arc::new(producer);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (producer, topic, broker) = (producer.clone(), topic.clone(), broker.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let msgs: Vec<Message> = batch(&topic, p, b)
                    .iter()
                    .map(|r| {
                        let mut body = BytesMut::new();
                        r.encode(&mut body);
                        Message::builder()
                            .topic(topic_name)
                            .body(body.freeze())
                            .build()
                            .expect("message")
                    })
                    .collect();
                let mq = MessageQueue::from_parts(topic_name, broker.as_str(), 0);
                producer
                    .send_batch_to_queue_with_timeout(msgs, mq, 3000)
                    .await
                    .expect("send");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let took = started.elapsed();
    let _ = runtime.shutdown().await;
    let _ = owner.shutdown_tasks().await;
    let _ = owner.shutdown_background();
    took
}
