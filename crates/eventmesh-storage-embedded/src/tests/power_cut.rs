//! Randomized power cuts on the simulated disk: under `FsyncPolicy::Batch`, every acknowledged
//! publish survives, in order, and no corrupt record is served; every acknowledged ack holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use eventmesh_storage::{EventStore, StartFrom};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

#[derive(Default)]
struct Acknowledged {
    /// seq -> event number, for every acknowledged publish.
    published: BTreeMap<u64, u64>,
    /// Sequence numbers whose ack the store confirmed → where (`cycle N task|verify`), for the
    /// failure message.
    acked: BTreeMap<u64, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_random_power_cuts() {
    let cycles: u64 = std::env::var("EVENTMESH_POWER_CUT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let root = Path::new("/sim");
    let seed: u64 = std::env::var("EVENTMESH_POWER_CUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let vfs = SimVfs::new(root, seed ^ 0x5eed);
    let o = EmbeddedOptions {
        segment_bytes: 8 * 1024,
        journal_compact_bytes: 2048,
        ..opts(&root.join("data"))
    };
    let t = topic("power");
    let c = group("g", &t);
    let state = Arc::new(Mutex::new(Acknowledged::default()));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_event = 0u64;
    for cycle in 0..cycles {
        if cycle % 4 == 3 {
            // A power cut during recovery itself (while it cuts torn tails, cleans up, …).
            vfs.arm_power_cut(rng.random_range(1..8));
            let interrupted = open_sim(&vfs, o.clone());
            if !vfs.disarm() {
                drop(interrupted);
                vfs.power_cut();
            }
        }
        let s = Arc::new(
            open_sim(&vfs, o.clone())
                .unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}")),
        );
        verify(&s, &t, &c, &state, cycle, cycle % 25 == 0).await;
        if cycle == 0 {
            s.create_topic(&t).await.unwrap();
            s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        }
        let mut tasks = Vec::new();
        for p in 0..3u64 {
            let (s, t, state) = (Arc::clone(&s), t.clone(), Arc::clone(&state));
            let first = next_event + p * 1_000;
            let sizes: Vec<u64> = (0..12).map(|_| rng.random_range(1..8)).collect();
            tasks.push(tokio::spawn(async move {
                let mut n = first;
                for size in sizes {
                    let batch = recs(&t, n..n + size);
                    let Ok(offs) = s.publish(&t, &batch).await else {
                        return;
                    };
                    let mut st = state.lock();
                    for (o, r) in offs.iter().zip(&batch) {
                        st.published.insert(o.seq, n_of(r));
                    }
                    n += size;
                }
            }));
        }
        {
            let (s, c, state) = (Arc::clone(&s), c.clone(), Arc::clone(&state));
            tasks.push(tokio::spawn(async move {
                for _ in 0..30 {
                    let Ok(d) = s
                        .fetch(&c, 7, Duration::from_millis(5), Duration::from_millis(1))
                        .await
                    else {
                        return;
                    };
                    let keep: Vec<&Delivery> = d.iter().filter(|d| d.offset.seq % 3 != 1).collect();
                    let toks: Vec<AckToken> = keep.iter().map(|d| d.token.clone()).collect();
                    if s.ack(&c, &toks).await.is_err() {
                        return;
                    }
                    state.lock().acked.extend(keep.iter().map(|d| {
                        (
                            d.offset.seq,
                            format!("cycle {cycle} task, delivery {}", d.delivery_count),
                        )
                    }));
                }
            }));
        }
        next_event += 10_000;
        // Cut the power at a random moment while all of that runs: in place of the n-th next
        // file-system operation, so between any write and its fsync.
        vfs.arm_power_cut(rng.random_range(1..150));
        for task in tasks {
            let _ = task.await;
        }
        if !vfs.disarm() {
            vfs.power_cut();
        }
        drop(s);
    }
    let s = Arc::new(open_sim(&vfs, o).unwrap());
    verify(&s, &t, &c, &state, cycles, true).await;
    let s_len = s.log_of(&t).unwrap().next_seq();
    let st = state.lock();
    assert!(
        st.published.len() > 1000,
        "the test published too little: {}",
        st.published.len()
    );
    assert!(!st.acked.is_empty());
    let torn = crate::recovery::TORN_TAILS_CUT.load(std::sync::atomic::Ordering::Relaxed);
    let stored = s_len;
    eprintln!(
        "power cuts: {} in {cycles} cycles, {} acknowledged events, {stored} stored, {} acks, {torn} torn tails cut (all tests)",
        vfs.cuts(),
        st.published.len(),
        st.acked.len()
    );
    assert!(torn > 0, "no power cut tore a record");
}

async fn verify(
    s: &Arc<EmbeddedStore>,
    t: &Topic,
    c: &ConsumerRef,
    state: &Mutex<Acknowledged>,
    cycle: u64,
    full: bool,
) {
    let Some(log) = s.log_of(t) else {
        assert!(
            state.lock().published.is_empty(),
            "cycle {cycle}: topic lost"
        );
        return;
    };
    // Every stored record is intact (reads check checksums and sequence numbers) and every
    // acknowledged one is there, unchanged. The whole log is checked every few cycles, the part
    // the last cycles wrote every time.
    let from = if full {
        0
    } else {
        state
            .lock()
            .published
            .keys()
            .next_back()
            .map_or(0, |last| last.saturating_sub(2000))
    };
    let all = log
        .read(from, usize::MAX)
        .unwrap_or_else(|e| panic!("cycle {cycle}: read failed: {e}"));
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == from + i as u64),
        "cycle {cycle}: gap"
    );
    let acked = {
        let st = state.lock();
        for (seq, n) in st.published.range(from..) {
            let got = all.get((*seq - from) as usize).map(|(_, r)| n_of(r));
            assert_eq!(
                got,
                Some(*n),
                "cycle {cycle}: acknowledged event at seq {seq} lost or changed"
            );
        }
        st.acked.clone()
    };
    // Acked events are never delivered again to the cursor. Redelivered ones are acked here.
    let d = s.fetch(c, 2000, LONG, NOW).await.unwrap();
    for d in &d {
        if let Some(when) = acked.get(&d.offset.seq) {
            let cursor = s.cursor_info(c).await.ok();
            panic!(
                "cycle {cycle}: acked event {} delivered again (delivery {}; its ack: {when}); cursor: {cursor:?}",
                d.offset.seq, d.delivery_count
            );
        }
    }
    let again: Vec<&Delivery> = d.iter().filter(|d| d.delivery_count >= 2).collect();
    s.ack(
        c,
        &again.iter().map(|d| d.token.clone()).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    state.lock().acked.extend(again.iter().map(|d| {
        (
            d.offset.seq,
            format!("cycle {cycle} verify, delivery {}", d.delivery_count),
        )
    }));
}
