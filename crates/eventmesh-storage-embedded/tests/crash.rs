//! Crash tests: a child process is aborted at every failpoint of the write paths, over and over,
//! and after each crash the store must hold every acknowledged publish, in order, uncorrupted,
//! and never redeliver an event whose ack was confirmed.
//!
//! Needs the `failpoints` feature:
//! `cargo test -p eventmesh-storage-embedded --features failpoints --test crash`.
#![cfg(feature = "failpoints")]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventmesh_core::{GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore, failpoint};

const CYCLES: u64 = 200;

fn event_number(d: &eventmesh_storage::Delivery) -> u64 {
    let data = d.record.event.data.as_ref().expect("event data");
    u64::from_le_bytes(data[..8].try_into().expect("8 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_crashes_at_every_failpoint() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut published: BTreeMap<u64, u64> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut crashes = 0;
    let mut next_event = 0u64;
    let topic = Topic::new("crash").unwrap();
    let group = ConsumerRef::clustering(topic.clone(), GroupName::new("g").unwrap());
    for cycle in 0..CYCLES {
        let point = failpoint::ALL[(cycle as usize) % failpoint::ALL.len()];
        let hit = 1 + (cycle * 7 + cycle / 9) % 9;
        let out = Command::new(env!("CARGO_BIN_EXE_embedded-crash-child"))
            .arg(dir.path())
            .arg(next_event.to_string())
            .arg("12")
            // Under `never` an acknowledged write is in the OS: it survives a process crash too.
            .arg(if cycle % 3 == 2 { "never" } else { "batch" })
            .env("EVENTMESH_FAILPOINT", format!("{point}:{hit}"))
            .stdin(Stdio::null())
            .output()
            .expect("spawn the crash child");
        next_event += 1_000_000;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert!(!stderr.contains("failpoint"), "{stderr}");
        } else {
            assert!(
                stderr.contains(&format!("failpoint {point} hit")),
                "cycle {cycle}: child failed otherwise: {stderr}"
            );
            crashes += 1;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("published") => {
                    let nums: Vec<u64> = words.map(|w| w.parse().unwrap()).collect();
                    let [seq, count, first] = nums[..] else {
                        panic!("bad line {line}")
                    };
                    for i in 0..count {
                        assert!(
                            published.insert(seq + i, first + i).is_none(),
                            "cycle {cycle}: seq {} reused",
                            seq + i
                        );
                    }
                }
                Some("acked") => acked.extend(words.map(|w| w.parse::<u64>().unwrap())),
                _ => panic!("unexpected child output {line}"),
            }
        }
        verify(&dir, &topic, &group, &published, &acked, cycle).await;
    }
    assert!(
        crashes >= 100,
        "only {crashes} of {CYCLES} children crashed; at least 100 kills are wanted"
    );
    assert!(!published.is_empty() && !acked.is_empty());
    eprintln!(
        "{CYCLES} cycles, {crashes} crashes, {} acknowledged events, {} acks, {:?}",
        published.len(),
        acked.len(),
        started.elapsed()
    );
}

async fn verify(
    dir: &tempfile::TempDir,
    topic: &Topic,
    group: &ConsumerRef,
    published: &BTreeMap<u64, u64>,
    acked: &BTreeSet<u64>,
    cycle: u64,
) {
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path()))
        .unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
    if published.is_empty() && store.list_topics().await.unwrap().is_empty() {
        store.close().await.unwrap();
        return;
    }
    // Every acknowledged event is there, at its offset, in order; reading checks every record.
    let reader = ConsumerRef::broadcasting(topic.clone(), GroupName::new("verify").unwrap(), "v");
    store.subscribe(&reader, StartFrom::Earliest).await.unwrap();
    let mut stored = Vec::new();
    loop {
        let d = store
            .fetch(&reader, 5000, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if d.is_empty() {
            break;
        }
        stored.extend(d.iter().map(|d| (d.offset.seq, event_number(d))));
    }
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == i as u64),
        "cycle {cycle}: gap in the log"
    );
    for (seq, n) in published {
        assert_eq!(
            stored.get(*seq as usize).map(|s| s.1),
            Some(*n),
            "cycle {cycle}: acknowledged seq {seq} lost"
        );
    }
    store.unsubscribe(&reader).await.unwrap();
    // Events whose ack was confirmed never come back to the group's cursor.
    let info = store.cursor_info(group).await.unwrap();
    let d = store
        .fetch(group, 100_000, Duration::from_millis(1), Duration::ZERO)
        .await
        .unwrap();
    for d in &d {
        assert!(
            !acked.contains(&d.offset.seq),
            "cycle {cycle}: acked seq {} redelivered ({info:?})",
            d.offset.seq
        );
    }
    store.close().await.unwrap();
}
