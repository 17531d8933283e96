//! Behaviour specific to the Redis store, beyond the conformance kit: key naming, errors with
//! masked passwords, member-cursor expiry, stale tokens, foreign stream entries, wake-ups.

mod common;

use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom, StorageError};
use eventmesh_storage_redis::{RedisOptions, RedisStore};
use tokio::time::Instant;

use common::RedisServer;

fn topic(label: &str) -> Topic {
    Topic::new(&format!("{label}-{:x}", rand::random::<u32>())).expect("topic")
}

fn group(name: &str) -> GroupName {
    GroupName::new(name).expect("group")
}

fn record(topic: &Topic, n: usize) -> EventRecord {
    EventRecord::new(
        topic.clone(),
        CloudEvent::new(format!("e-{n}"), "/redis/store-test", "test.event")
            .with_data("text/plain", Bytes::from(format!("event {n}"))),
    )
}

/// A stream entry as XRANGE returns it: id and (field, value) pairs.
type Entry = (String, Vec<(String, Vec<u8>)>);

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_quickly_with_the_password_masked() {
    // A port nobody listens on: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe")
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let started = Instant::now();
    let err =
        match RedisStore::open(RedisOptions::new(url).request_timeout(Duration::from_millis(500)))
            .await
        {
            Ok(_) => panic!("opening a store on a closed port succeeded"),
            Err(e) => e,
        };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[tokio::test]
async fn bad_options_are_refused_as_invalid() {
    for url in ["nats://127.0.0.1:4222", "redis://a:6379,b:6379"] {
        match RedisStore::open(RedisOptions::new(url)).await {
            Err(StorageError::Invalid(_)) => {}
            Err(e) => panic!("{url}: expected Invalid, got {e:?}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }
}

#[tokio::test]
async fn keys_carry_the_prefix_and_events_the_record_encoding() {
    let server = RedisServer::start().await;
    let store = RedisStore::open(RedisOptions::new(server.url()).key_prefix("meshA"))
        .await
        .expect("open");
    let t = topic("keys");
    store.create_topic(&t).await.expect("create");
    let r = record(&t, 1);
    store
        .publish(&t, std::slice::from_ref(&r))
        .await
        .expect("publish");
    let mut conn = raw(&server).await;
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("meshA:topics")
        .query_async(&mut conn)
        .await
        .expect("smembers");
    assert_eq!(members, vec![t.to_string()]);
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(format!("meshA:stream:{t}"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("xrange");
    assert_eq!(entries.len(), 1);
    let (field, bytes) = &entries[0].1[0];
    assert_eq!(field, "r");
    assert_eq!(
        EventRecord::decode(&Bytes::from(bytes.clone())).expect("decode"),
        r
    );
    // Another prefix is another mesh: it does not see the topic.
    let other = RedisStore::open(RedisOptions::new(server.url()).key_prefix("meshB"))
        .await
        .expect("open");
    assert!(other.list_topics().await.expect("list").is_empty());
}

#[tokio::test]
async fn unused_broadcasting_member_cursors_expire() {
    let server = RedisServer::start().await;
    let store =
        RedisStore::open(RedisOptions::new(server.url()).member_expiry(Duration::from_millis(400)))
            .await
            .expect("open");
    let t = topic("expiry");
    store.create_topic(&t).await.expect("create");
    let idle = ConsumerRef::broadcasting(t.clone(), group("g"), "gone-member");
    let busy = ConsumerRef::broadcasting(t.clone(), group("g"), "busy-member");
    let shared = ConsumerRef::clustering(t.clone(), group("g"));
    for c in [&idle, &busy, &shared] {
        store
            .subscribe(c, StartFrom::Earliest)
            .await
            .expect("subscribe");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The busy member keeps fetching; the idle one never does.
        store
            .fetch(&busy, 10, Duration::from_secs(1), Duration::from_millis(20))
            .await
            .expect("busy member fetch");
        match store.cursor_info(&idle).await {
            Err(StorageError::UnknownConsumer(_)) => break,
            Ok(_) => {}
            Err(e) => panic!("cursor_info: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the idle member's cursor did not expire"
        );
    }
    store
        .cursor_info(&busy)
        .await
        .expect("the busy member's cursor is kept");
    store
        .cursor_info(&shared)
        .await
        .expect("CLUSTERING cursors never expire");
}

#[tokio::test]
async fn a_nack_with_the_token_of_an_older_delivery_is_ignored() {
    let server = RedisServer::start().await;
    let store = RedisStore::open(RedisOptions::new(server.url()))
        .await
        .expect("open");
    let t = topic("stale");
    store.create_topic(&t).await.expect("create");
    let c = ConsumerRef::clustering(t.clone(), group("g"));
    store.subscribe(&c, StartFrom::Earliest).await.expect("sub");
    store.publish(&t, &[record(&t, 0)]).await.expect("publish");
    let first = store
        .fetch(&c, 1, Duration::from_millis(100), Duration::from_secs(5))
        .await
        .expect("fetch");
    assert_eq!(first.len(), 1);
    // The lease runs out; the event is handed out again.
    let second = store
        .fetch(&c, 1, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("refetch");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery_count, 2);
    // The first holder nacks late: the second delivery keeps its 30 s lease.
    store
        .nack(&c, &first[0].token, Duration::ZERO)
        .await
        .expect("stale nack");
    let none = store
        .fetch(&c, 1, Duration::from_secs(30), Duration::from_millis(300))
        .await
        .expect("fetch");
    assert!(none.is_empty(), "a stale nack released the newer delivery");
    // The current holder's nack works.
    store
        .nack(&c, &second[0].token, Duration::ZERO)
        .await
        .expect("nack");
    let third = store
        .fetch(&c, 1, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("fetch");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].delivery_count, 3);
}

#[tokio::test]
async fn a_foreign_stream_entry_is_skipped_not_wedging_the_cursor() {
    let server = RedisServer::start().await;
    let store = RedisStore::open(RedisOptions::new(server.url()))
        .await
        .expect("open");
    let t = topic("foreign");
    store.create_topic(&t).await.expect("create");
    let c = ConsumerRef::clustering(t.clone(), group("g"));
    store.subscribe(&c, StartFrom::Earliest).await.expect("sub");
    let mut conn = raw(&server).await;
    let _: String = redis::cmd("XADD")
        .arg(format!("eventmesh:stream:{t}"))
        .arg("*")
        .arg("something")
        .arg("else")
        .query_async(&mut conn)
        .await
        .expect("xadd");
    let good = record(&t, 1);
    store
        .publish(&t, std::slice::from_ref(&good))
        .await
        .expect("publish");
    let got = store
        .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("fetch");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record, good);
    let info = store.cursor_info(&c).await.expect("info");
    assert_eq!(info.in_flight, 1, "the foreign entry was acked, not kept");
}

#[tokio::test]
async fn a_parked_fetch_wakes_for_a_publish_and_for_a_local_nack() {
    let server = RedisServer::start().await;
    let store = std::sync::Arc::new(
        RedisStore::open(RedisOptions::new(server.url()).fetch_block(Duration::from_secs(10)))
            .await
            .expect("open"),
    );
    let t = topic("wake");
    store.create_topic(&t).await.expect("create");
    let c = ConsumerRef::clustering(t.clone(), group("g"));
    store.subscribe(&c, StartFrom::Earliest).await.expect("sub");

    let parked = {
        let (store, c) = (store.clone(), c.clone());
        tokio::spawn(async move {
            store
                .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = Instant::now();
    store.publish(&t, &[record(&t, 0)]).await.expect("publish");
    let got = parked.await.expect("task").expect("fetch");
    let took = published.elapsed();
    assert_eq!(got.len(), 1);
    assert!(
        took < Duration::from_secs(2),
        "a parked fetch took {took:?} to see a publish"
    );

    let parked = {
        let (store, c) = (store.clone(), c.clone());
        tokio::spawn(async move {
            store
                .fetch(&c, 10, Duration::from_secs(30), Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nacked = Instant::now();
    store
        .nack(&c, &got[0].token, Duration::from_millis(100))
        .await
        .expect("nack");
    let again = parked.await.expect("task").expect("fetch");
    let took = nacked.elapsed();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_count, 2);
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "a parked fetch saw a 100 ms nack after {took:?}"
    );
}

#[tokio::test]
async fn stores_on_one_prefix_share_the_first_ones_lease_horizon() {
    let server = RedisServer::start().await;
    let first =
        RedisStore::open(RedisOptions::new(server.url()).max_lease(Duration::from_secs(7200)))
            .await
            .expect("open");
    let second =
        RedisStore::open(RedisOptions::new(server.url()).max_lease(Duration::from_secs(60)))
            .await
            .expect("open");
    let other_prefix = RedisStore::open(
        RedisOptions::new(server.url())
            .key_prefix("other")
            .max_lease(Duration::from_secs(60)),
    )
    .await
    .expect("open");
    assert_eq!(first.max_lease(), Duration::from_secs(7200));
    assert_eq!(second.max_lease(), Duration::from_secs(7200));
    assert_eq!(other_prefix.max_lease(), Duration::from_secs(60));
}

#[tokio::test]
async fn a_due_redelivery_behind_a_large_pel_is_found_within_a_few_fetches() {
    let server = RedisServer::start().await;
    let store = RedisStore::open(RedisOptions::new(server.url()))
        .await
        .expect("open");
    let t = topic("bigpel");
    store.create_topic(&t).await.expect("create");
    let c = ConsumerRef::clustering(t.clone(), group("g"));
    store.subscribe(&c, StartFrom::Earliest).await.expect("sub");
    const N: usize = 6_000;
    let recs: Vec<EventRecord> = (0..N).map(|i| record(&t, i)).collect();
    for chunk in recs.chunks(500) {
        store.publish(&t, chunk).await.expect("publish");
    }
    let mut held = Vec::with_capacity(N);
    while held.len() < N {
        let got = store
            .fetch(&c, 1024, Duration::from_secs(60), Duration::from_secs(5))
            .await
            .expect("fetch");
        assert!(!got.is_empty(), "only {} of {N} fetched", held.len());
        held.extend(got);
    }
    let last = held.last().expect("held").clone();
    store
        .nack(&c, &last.token, Duration::ZERO)
        .await
        .expect("nack");
    // The PEL holds more entries than one fetch examines: the scan resumes where it stopped.
    for attempt in 1..=5 {
        let got = store
            .fetch(&c, 10, Duration::from_secs(60), Duration::from_millis(50))
            .await
            .expect("fetch");
        if let Some(d) = got.first() {
            assert_eq!(d.record, last.record);
            assert_eq!(d.delivery_count, 2);
            return;
        }
        assert!(
            attempt < 5,
            "the nacked event did not come back within 5 fetches"
        );
    }
}
