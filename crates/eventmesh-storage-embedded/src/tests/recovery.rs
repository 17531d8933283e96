//! Recovery: torn tails are cut at every byte offset, corruption refuses to open.

use std::path::PathBuf;

use eventmesh_storage::{EventStore, StartFrom};

use super::*;

/// Frame start offsets of a segment file.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        out.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
    }
    out
}

fn segment(dir: &Path, t: &Topic, base: u64) -> PathBuf {
    dir.join("topics")
        .join(crate::names::safe_name(&t.to_string()))
        .join("p0")
        .join(crate::segment::segment_file_name(base))
}

async fn write_five(dir: &Path, t: &Topic) -> Vec<u8> {
    let s = open(dir);
    s.create_topic(t).await.unwrap();
    for n in 0..5 {
        s.publish(t, &[rec(t, n)]).await.unwrap();
    }
    s.subscribe(&group("v", t), StartFrom::Earliest)
        .await
        .unwrap();
    s.close().await.unwrap();
    std::fs::read(segment(dir, t, 0)).unwrap()
}

async fn check_recovers_four(dir: &Path, t: &Topic, label: &str) {
    let s = open(dir);
    let c = group("v", t);
    s.seek(&c, StartFrom::Earliest).await.unwrap();
    let got: Vec<(u64, u64)> = drain(&s, &c)
        .await
        .iter()
        .map(|d| (d.offset.seq, n_of(&d.record)))
        .collect();
    assert_eq!(got, (0..4).map(|n| (n, n)).collect::<Vec<_>>(), "{label}");
    let offs = s.publish(t, &[rec(t, 99)]).await.unwrap();
    assert_eq!(offs[0].seq, 4, "{label}: appending works again");
    let d = fetch(&s, &c, 10).await;
    assert_eq!(
        d.iter().map(|d| n_of(&d.record)).collect::<Vec<_>>(),
        [99],
        "{label}"
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn torn_last_record_is_cut_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("torn");
    let pristine = write_five(dir.path(), &t).await;
    let last = *frame_starts(&pristine).last().unwrap();
    let path = segment(dir.path(), &t, 0);
    for cut in last..pristine.len() {
        std::fs::write(&path, &pristine[..cut]).unwrap();
        check_recovers_four(dir.path(), &t, &format!("cut at {cut}")).await;
    }
    // A zero-filled tail (the file's size reached the disk before its data).
    let mut zeroed = pristine[..last].to_vec();
    zeroed.extend(std::iter::repeat_n(0u8, pristine.len() - last + 100));
    std::fs::write(&path, &zeroed).unwrap();
    check_recovers_four(dir.path(), &t, "zero-filled tail").await;
    // A last record whose checksum fails.
    let mut flipped = pristine.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    check_recovers_four(dir.path(), &t, "bad checksum at the end").await;
    // The last record torn and followed by zeros.
    let mut torn_zero = pristine[..last + 20].to_vec();
    torn_zero.extend([0u8; 4096]);
    std::fs::write(&path, &torn_zero).unwrap();
    check_recovers_four(dir.path(), &t, "torn then zeros").await;
}

#[tokio::test]
async fn corruption_in_the_middle_refuses_to_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("bad");
    let pristine = write_five(dir.path(), &t).await;
    let starts = frame_starts(&pristine);
    let path = segment(dir.path(), &t, 0);
    let mut bad = pristine.clone();
    bad[starts[2] + 30] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    match EmbeddedStore::open(opts(dir.path())) {
        Err(StorageError::Corrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset, starts[2] as u64);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A wrong length in the middle.
    let mut bad = pristine.clone();
    bad[starts[1]..starts[1] + 4].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let err = EmbeddedStore::open(opts(dir.path())).unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupt { offset, .. } if offset == starts[1] as u64),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("00000000000000000000.log"), "{msg}");
    // Garbage appended after good records is not a torn write either when it is not at the
    // end... but garbage *is* the end here: a checksum-failing frame at the tail is cut.
    std::fs::write(&path, &pristine).unwrap();
    open(dir.path());
}

#[tokio::test]
async fn any_bad_record_in_a_sealed_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("sealed");
    {
        let s = EmbeddedStore::open(EmbeddedOptions {
            segment_bytes: 4096,
            ..opts(dir.path())
        })
        .unwrap();
        s.create_topic(&t).await.unwrap();
        for n in 0..10 {
            s.publish(&t, &recs(&t, n * 20..n * 20 + 20)).await.unwrap();
        }
        s.close().await.unwrap();
    }
    let path = segment(dir.path(), &t, 0);
    let pristine = std::fs::read(&path).unwrap();
    let last = *frame_starts(&pristine).last().unwrap();
    // Cut the sealed segment's last record: at the end of its file, but not of the log.
    std::fs::write(&path, &pristine[..pristine.len() - 5]).unwrap();
    let err = EmbeddedStore::open(opts(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { path: p, offset, .. } if *p == path && *offset == last as u64),
        "{err}"
    );
    std::fs::write(&path, &pristine).unwrap();
    EmbeddedStore::open(opts(dir.path())).unwrap();
}

#[tokio::test]
async fn sequence_gaps_between_segments_refuse_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("gap");
    {
        let s = EmbeddedStore::open(EmbeddedOptions {
            segment_bytes: 4096,
            ..opts(dir.path())
        })
        .unwrap();
        s.create_topic(&t).await.unwrap();
        for n in 0..10 {
            s.publish(&t, &recs(&t, n * 20..n * 20 + 20)).await.unwrap();
        }
    }
    let p0 = segment(dir.path(), &t, 0);
    let bases: Vec<u64> = std::fs::read_dir(p0.parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            crate::segment::parse_segment_file_name(&e.unwrap().file_name().to_string_lossy())
        })
        .collect();
    let mut bases = bases;
    bases.sort_unstable();
    assert!(bases.len() >= 3);
    std::fs::remove_file(segment(dir.path(), &t, bases[1])).unwrap();
    let err = EmbeddedStore::open(opts(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { reason, .. } if reason.contains("ends at")),
        "{err}"
    );
}

#[tokio::test]
async fn torn_journal_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("j");
    let c = group("g", &t);
    {
        let s = open(dir.path());
        s.create_topic(&t).await.unwrap();
        s.publish(&t, &recs(&t, 0..5)).await.unwrap();
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        let d = fetch(&s, &c, 5).await;
        s.ack(&c, &tokens(&d[..2])).await.unwrap();
        s.close().await.unwrap();
    }
    let jpath = dir
        .path()
        .join("topics/j/cursors/c.g.00000000000000000000.jnl");
    let pristine = std::fs::read(&jpath).unwrap();
    for cut in 0..pristine.len() {
        std::fs::write(&jpath, &pristine[..cut]).unwrap();
        let s = open(dir.path());
        let info = s.cursor_info(&c).await.unwrap();
        assert!(
            info.committed == vec![(0, 0)] || info.committed == vec![(0, 2)],
            "cut {cut}: {info:?}"
        );
        drop(s);
    }
    let mut bad = pristine.clone();
    bad[10] ^= 0xff;
    std::fs::write(&jpath, &bad).unwrap();
    let err = EmbeddedStore::open(opts(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { path, .. } if *path == jpath),
        "{err}"
    );
}
