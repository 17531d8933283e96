//! Helper process for `tests/crash.rs` (feature `failpoints`).
//!
//! `embedded-crash-child <data_dir> <first_event_number> <rounds> [batch|never]` opens the store
//! (fsync `Batch` by default; `never` still survives a crash of the process), then per round publishes a batch and acks part of what it fetches. It prints one
//! line per confirmed operation, flushed before the next operation starts:
//!
//! * `published <first_seq> <count> <first_event_number>` once a publish returned (the events
//!   carry consecutive event numbers in their data);
//! * `acked <seq> <seq> ...` once an ack returned.
//!
//! `EVENTMESH_FAILPOINT=<name>:<n>` makes it abort at the n-th hit of that failpoint.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{ConsumerRef, EventStore, StartFrom};
use eventmesh_storage_embedded::{EmbeddedOptions, EmbeddedStore, FsyncPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, first, rounds, policy) = match args.as_slice() {
        [_, dir, first, rounds] => (dir, first, rounds, "batch"),
        [_, dir, first, rounds, policy] => (dir, first, rounds, policy.as_str()),
        _ => {
            return Err(
                "usage: embedded-crash-child <data_dir> <first_event_number> <rounds> [batch|never]".into(),
            );
        }
    };
    let fsync = match policy {
        "batch" => FsyncPolicy::Batch,
        "never" => FsyncPolicy::Never,
        other => return Err(format!("unknown fsync policy {other}").into()),
    };
    let mut next_event: u64 = first.parse()?;
    let rounds: u64 = rounds.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let opts = EmbeddedOptions {
            fsync,
            segment_bytes: 16 * 1024,
            journal_compact_bytes: 4096,
            ..EmbeddedOptions::new(dir)
        };
        let store = EmbeddedStore::open(opts)?;
        let topic = Topic::new("crash")?;
        store.create_topic(&topic).await?;
        let group = ConsumerRef::clustering(topic.clone(), GroupName::new("g")?);
        store.subscribe(&group, StartFrom::Earliest).await?;
        let mut out = std::io::stdout().lock();
        for round in 0..rounds {
            let count = 1 + (next_event + round) % 13;
            let batch: Vec<EventRecord> = (next_event..next_event + count)
                .map(|n| {
                    EventRecord::new(
                        topic.clone(),
                        CloudEvent::new(format!("e{n}"), "/crash", "crash.test").with_data(
                            "application/octet-stream",
                            Bytes::from(n.to_le_bytes().to_vec()),
                        ),
                    )
                })
                .collect();
            let offsets = store.publish(&topic, &batch).await?;
            writeln!(out, "published {} {count} {next_event}", offsets[0].seq)?;
            out.flush()?;
            next_event += count;
            let got = store
                .fetch(&group, 8, Duration::from_secs(30), Duration::ZERO)
                .await?;
            // Ack two events of three; the others stay in flight and come back after a restart.
            let acks: Vec<_> = got
                .iter()
                .filter(|d| d.offset.seq % 3 != 2 || d.delivery_count > 1)
                .collect();
            if !acks.is_empty() {
                let tokens: Vec<_> = acks.iter().map(|d| d.token.clone()).collect();
                store.ack(&group, &tokens).await?;
                let seqs: Vec<String> = acks.iter().map(|d| d.offset.seq.to_string()).collect();
                writeln!(out, "acked {}", seqs.join(" "))?;
                out.flush()?;
            }
        }
        store.close().await?;
        Ok(())
    })
}
