//! Cursor behaviour: acks, nacks, leases, broadcasting, seeks, restarts, retention.

use std::time::Duration;

use eventmesh_core::GroupName;
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};

use super::*;

async fn setup(n: u64) -> (tempfile::TempDir, EmbeddedStore, Topic, ConsumerRef) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    if n > 0 {
        s.publish(&t, &recs(&t, 0..n)).await.unwrap();
    }
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    (dir, s, t, c)
}

#[tokio::test]
async fn acked_events_never_come_back_and_nacked_ones_do_after_the_delay() {
    let (_d, s, _t, c) = setup(5).await;
    let d = fetch(&s, &c, 5).await;
    s.ack(&c, &[d[0].token.clone(), d[2].token.clone()])
        .await
        .unwrap();
    s.nack(&c, &d[1].token, Duration::from_millis(80))
        .await
        .unwrap();
    s.nack(&c, &d[3].token, Duration::ZERO).await.unwrap();
    // Only the immediately nacked one is due.
    let again = fetch(&s, &c, 10).await;
    assert_eq!(seqs(&again), [3]);
    assert_eq!(again[0].delivery_count, 2);
    // The delayed one comes back once its delay is over: a long poll wakes for it.
    let started = std::time::Instant::now();
    let later = s.fetch(&c, 10, LONG, Duration::from_secs(5)).await.unwrap();
    assert_eq!(seqs(&later), [1]);
    assert_eq!(later[0].delivery_count, 2);
    assert!(started.elapsed() < Duration::from_secs(2));
    // A stale token (first delivery of 3) still acks: the event is done.
    s.ack(&c, &[d[3].token.clone()]).await.unwrap();
    s.ack(&c, &tokens(&later)).await.unwrap();
    s.ack(&c, &[d[4].token.clone()]).await.unwrap();
    assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 5)]);
    assert!(fetch(&s, &c, 10).await.is_empty());
}

#[tokio::test]
async fn expired_leases_are_redelivered_and_extensions_hold_them() {
    let (_d, s, _t, c) = setup(3).await;
    let lease = Duration::from_millis(60);
    let d = s.fetch(&c, 3, lease, NOW).await.unwrap();
    assert_eq!(seqs(&d), [0, 1, 2]);
    s.extend_lease(&c, &[d[2].token.clone()], LONG)
        .await
        .unwrap();
    s.ack(&c, &[d[0].token.clone()]).await.unwrap();
    let back = s.fetch(&c, 10, LONG, Duration::from_secs(5)).await.unwrap();
    assert_eq!(seqs(&back), [1]);
    assert_eq!(back[0].delivery_count, 2);
    // The old holder's nack no longer applies to the new delivery.
    s.nack(&c, &d[1].token, NOW).await.unwrap();
    assert!(
        s.fetch(&c, 10, LONG, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.cursor_info(&c).await.unwrap().in_flight, 2);
}

#[tokio::test]
async fn fetch_long_polls_until_a_publish() {
    let (_d, s, t, c) = setup(0).await;
    let s = std::sync::Arc::new(s);
    let s2 = std::sync::Arc::clone(&s);
    let c2 = c.clone();
    let waiter = tokio::spawn(async move {
        s2.fetch(&c2, 10, LONG, Duration::from_secs(10))
            .await
            .unwrap()
    });
    tokio::task::yield_now().await;
    s.publish(&t, &recs(&t, 0..2)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(!got.is_empty());
    let empty = s.fetch(&group("other", &t), 1, LONG, NOW).await;
    assert!(empty.is_err(), "unknown cursor");
    let started = std::time::Instant::now();
    let c3 = group("late", &t);
    s.subscribe(&c3, StartFrom::Latest).await.unwrap();
    assert!(
        s.fetch(&c3, 1, LONG, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn broadcasting_members_are_independent() {
    let (_d, s, t, _c) = setup(4).await;
    let g = GroupName::new("b").unwrap();
    let m1 = ConsumerRef::broadcasting(t.clone(), g.clone(), "http://host:1/hook?x=1");
    let m2 = ConsumerRef::broadcasting(t.clone(), g, "m2");
    s.subscribe(&m1, StartFrom::Earliest).await.unwrap();
    s.subscribe(&m2, StartFrom::Earliest).await.unwrap();
    let a = fetch(&s, &m1, 10).await;
    s.ack(&m1, &tokens(&a)).await.unwrap();
    let b = fetch(&s, &m2, 2).await;
    assert_eq!(seqs(&a), [0, 1, 2, 3]);
    assert_eq!(seqs(&b), [0, 1]);
    assert!(
        matches!(
            s.ack(&m2, &tokens(&a)).await,
            Err(StorageError::InvalidToken(_))
        ),
        "tokens are per cursor"
    );
    assert_eq!(s.cursor_info(&m1).await.unwrap().committed, vec![(0, 4)]);
    assert_eq!(s.cursor_info(&m2).await.unwrap().committed, vec![(0, 0)]);
    // Re-subscribing keeps the position; unsubscribing forgets it.
    s.subscribe(&m1, StartFrom::Earliest).await.unwrap();
    assert_eq!(s.cursor_info(&m1).await.unwrap().committed, vec![(0, 4)]);
    s.unsubscribe(&m1).await.unwrap();
    s.unsubscribe(&m1).await.unwrap();
    assert!(matches!(
        s.cursor_info(&m1).await,
        Err(StorageError::UnknownConsumer(_))
    ));
    s.subscribe(&m1, StartFrom::Earliest).await.unwrap();
    assert_eq!(seqs(&fetch(&s, &m1, 10).await), [0, 1, 2, 3]);
}

#[tokio::test]
async fn seek_by_offset_time_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        index_interval_bytes: 200,
        segment_bytes: 4096,
        ..opts(dir.path())
    };
    let s = EmbeddedStore::open(o).unwrap();
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    // Ingest times 1000, 1010, ... with one going backwards (indexed as the running max).
    let mut batch = recs(&t, 0..200);
    for (i, r) in batch.iter_mut().enumerate() {
        r.ingest_time_ms = 1000 + 10 * i as i64;
    }
    batch[50].ingest_time_ms = 5;
    for chunk in batch.chunks(10) {
        s.publish(&t, chunk).await.unwrap();
    }
    assert!(
        s.log_of(&t).unwrap().segment_paths().len() > 3,
        "several segments"
    );
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Time(1000 + 10 * 120))
        .await
        .unwrap();
    let d = fetch(&s, &c, 1).await;
    assert_eq!(seqs(&d), [120]);
    for (target, want) in [
        (StartFrom::Time(1000 + 10 * 37 + 5), Some(38)),
        (StartFrom::Time(0), Some(0)),
        (StartFrom::Time(1000 + 10 * 50), Some(51)),
        (StartFrom::Time(i64::MAX), None),
        (StartFrom::Offset(77), Some(77)),
        (StartFrom::Offset(10_000), None),
        (StartFrom::Earliest, Some(0)),
        (StartFrom::Latest, None),
    ] {
        s.seek(&c, target).await.unwrap();
        let info = s.cursor_info(&c).await.unwrap();
        assert_eq!(info.in_flight, 0, "seek clears in-flight state");
        let got = fetch(&s, &c, 1).await;
        assert_eq!(got.first().map(|d| d.offset.seq), want, "{target:?}");
    }
    // Tokens from before a seek are stale: acking them does nothing.
    s.seek(&c, StartFrom::Offset(10)).await.unwrap();
    let d = fetch(&s, &c, 2).await;
    s.seek(&c, StartFrom::Offset(10)).await.unwrap();
    s.ack(&c, &tokens(&d)).await.unwrap();
    assert_eq!(seqs(&fetch(&s, &c, 2).await), [10, 11]);
}

#[tokio::test]
async fn cursor_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("t");
    let c = group("g", &t);
    {
        let s = open(dir.path());
        s.create_topic(&t).await.unwrap();
        s.publish(&t, &recs(&t, 0..10)).await.unwrap();
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        let d = fetch(&s, &c, 6).await;
        s.ack(
            &c,
            &[d[0].token.clone(), d[1].token.clone(), d[4].token.clone()],
        )
        .await
        .unwrap();
        s.nack(&c, &d[2].token, NOW).await.unwrap();
        let again = fetch(&s, &c, 1).await;
        assert_eq!((again[0].offset.seq, again[0].delivery_count), (2, 2));
        s.nack(&c, &d[3].token, Duration::from_secs(3600))
            .await
            .unwrap();
        // No close: drop (a crash of the process; everything acked was fsynced).
    }
    let s = open(dir.path());
    let info = s.cursor_info(&c).await.unwrap();
    assert_eq!(info.committed, vec![(0, 2)]);
    assert_eq!(info.in_flight, 3);
    let d = fetch(&s, &c, 10).await;
    let got: Vec<(u64, u32)> = d.iter().map(|d| (d.offset.seq, d.delivery_count)).collect();
    // 2 and 5 were in flight: due at once, counts continued; 3 keeps its hour-long nack delay;
    // 0, 1 and 4 were acked and never come back.
    assert_eq!(got, [(2, 3), (5, 2), (6, 1), (7, 1), (8, 1), (9, 1)]);
    let old_tokens_fail = s.ack(&c, &tokens(&d)).await;
    old_tokens_fail.unwrap();
    assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 3)]);
}

#[tokio::test]
async fn journal_compaction_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        journal_compact_bytes: 1024,
        ..opts(dir.path())
    };
    let t = topic("t");
    let c = group("g", &t);
    {
        let s = EmbeddedStore::open(o.clone()).unwrap();
        s.create_topic(&t).await.unwrap();
        s.publish(&t, &recs(&t, 0..500)).await.unwrap();
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        for _ in 0..100 {
            let d = fetch(&s, &c, 4).await;
            // Ack all but the last of each fetch.
            s.ack(&c, &tokens(&d[..3])).await.unwrap();
        }
        let jnl: Vec<_> = std::fs::read_dir(dir.path().join("topics/t/cursors"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            jnl.iter()
                .any(|n| n.ends_with(".jnl") && !n.contains(".00000000000000000000.")),
            "{jnl:?}"
        );
        assert_eq!(jnl.len(), 2, "one snapshot and one journal: {jnl:?}");
    }
    let s = EmbeddedStore::open(o).unwrap();
    let info = s.cursor_info(&c).await.unwrap();
    assert_eq!(info.committed, vec![(0, 3)]);
    assert_eq!(info.in_flight, 100);
}

#[tokio::test]
async fn retention_by_size_and_age_moves_cursors_up() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        segment_bytes: 4096,
        retention_bytes: Some(10_000),
        ..opts(dir.path())
    };
    let s = EmbeddedStore::open(o).unwrap();
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    for i in 0..40 {
        s.publish(&t, &recs(&t, i * 10..i * 10 + 10)).await.unwrap();
    }
    let info = &s.list_topics().await.unwrap()[0];
    assert!(info.retained_bytes.unwrap() <= 10_000, "{info:?}");
    let start = 400 - info.retained_events;
    assert!(start > 0);
    let ci = s.cursor_info(&c).await.unwrap();
    assert_eq!(
        ci.committed,
        vec![(0, start)],
        "the cursor moved up to the log start"
    );
    let d = fetch(&s, &c, 1).await;
    assert_eq!(seqs(&d), [start]);

    // Age: records ingested long ago expire with their (sealed) segments.
    let dir2 = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        segment_bytes: 4096,
        retention_age: Some(Duration::from_secs(3600)),
        ..opts(dir2.path())
    };
    let s = EmbeddedStore::open(o).unwrap();
    s.create_topic(&t).await.unwrap();
    let mut old = recs(&t, 0..100);
    for r in &mut old {
        r.ingest_time_ms -= 2 * 3600 * 1000;
    }
    s.publish(&t, &old).await.unwrap();
    s.publish(&t, &recs(&t, 100..200)).await.unwrap();
    s.enforce_retention().await.unwrap();
    let info = &s.list_topics().await.unwrap()[0];
    assert_eq!(info.retained_events, 100, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetchers_of_one_cursor_never_share_an_event() {
    let (_d, s, _t, c) = setup(2000).await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (s, c) = (std::sync::Arc::clone(&s), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let d = s.fetch(&c, 37, LONG, NOW).await.unwrap();
                if d.is_empty() {
                    return got;
                }
                s.ack(&c, &tokens(&d)).await.unwrap();
                got.extend(seqs(&d));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..2000).collect::<Vec<_>>());
    assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 2000)]);
}

#[tokio::test]
async fn a_nack_wakes_a_waiting_fetch() {
    let (_d, s, _t, c) = setup(1).await;
    let s = std::sync::Arc::new(s);
    let d = fetch(&s, &c, 1).await;
    let (s2, c2) = (std::sync::Arc::clone(&s), c.clone());
    let waiter = tokio::spawn(async move {
        s2.fetch(&c2, 1, LONG, Duration::from_secs(30))
            .await
            .unwrap()
    });
    tokio::task::yield_now().await;
    s.nack(&c, &d[0].token, Duration::ZERO).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got[0].offset.seq, got[0].delivery_count), (0, 2));
}

#[tokio::test]
async fn large_events_round_trip_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("big");
    let c = group("g", &t);
    let mut batch = recs(&t, 0..6);
    for (i, r) in batch.iter_mut().enumerate() {
        let mut data = (i as u64).to_le_bytes().to_vec();
        data.resize(if i % 2 == 0 { 3 * 1024 * 1024 } else { 100 }, i as u8);
        r.event.data = Some(Bytes::from(data));
    }
    {
        let s = open(dir.path());
        s.create_topic(&t).await.unwrap();
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        for r in &batch {
            s.publish(&t, std::slice::from_ref(r)).await.unwrap();
        }
        let d = fetch(&s, &c, 2).await;
        assert_eq!(d[0].record, batch[0]);
        s.close().await.unwrap();
    }
    let s = open(dir.path());
    let d = drain(&s, &c).await;
    assert_eq!(
        d.iter().map(|d| d.record.clone()).collect::<Vec<_>>(),
        batch
    );
    s.seek(&c, StartFrom::Offset(4)).await.unwrap();
    assert_eq!(fetch(&s, &c, 1).await[0].record, batch[4]);
}
