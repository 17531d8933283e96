//! Store tests: cursors, retention, locking, recovery, power cuts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, EventRecord, GroupName, Topic};
use eventmesh_storage::{AckToken, ConsumerRef, Delivery, EventStore, StartFrom, StorageError};

use crate::io::sim::SimVfs;
use crate::{EmbeddedOptions, EmbeddedStore, FsyncPolicy};

mod cursors;
mod power_cut;
mod recovery;

pub(crate) fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

pub(crate) fn rec(t: &Topic, n: u64) -> EventRecord {
    EventRecord::new(
        t.clone(),
        CloudEvent::new(format!("id-{n}"), "/test", "test.event").with_data(
            "application/octet-stream",
            Bytes::from(n.to_le_bytes().to_vec()),
        ),
    )
}

pub(crate) fn n_of(r: &EventRecord) -> u64 {
    let d = r.event.data.as_ref().unwrap();
    u64::from_le_bytes(d[..8].try_into().unwrap())
}

pub(crate) fn recs(t: &Topic, range: std::ops::Range<u64>) -> Vec<EventRecord> {
    range.map(|n| rec(t, n)).collect()
}

pub(crate) fn opts(dir: &Path) -> EmbeddedOptions {
    EmbeddedOptions::new(dir)
}

pub(crate) fn group(c: &str, t: &Topic) -> ConsumerRef {
    ConsumerRef::clustering(t.clone(), GroupName::new(c).unwrap())
}

pub(crate) fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(opts(dir)).unwrap()
}

pub(crate) fn open_sim(vfs: &SimVfs, o: EmbeddedOptions) -> Result<EmbeddedStore, StorageError> {
    EmbeddedStore::open_with_vfs(o, Arc::new(vfs.clone()))
}

pub(crate) const LONG: Duration = Duration::from_secs(60);
pub(crate) const NOW: Duration = Duration::ZERO;

pub(crate) async fn fetch(s: &EmbeddedStore, c: &ConsumerRef, max: usize) -> Vec<Delivery> {
    s.fetch(c, max, LONG, NOW).await.unwrap()
}

pub(crate) fn seqs(d: &[Delivery]) -> Vec<u64> {
    d.iter().map(|d| d.offset.seq).collect()
}

pub(crate) fn tokens(d: &[Delivery]) -> Vec<AckToken> {
    d.iter().map(|d| d.token.clone()).collect()
}

pub(crate) async fn drain(s: &EmbeddedStore, c: &ConsumerRef) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let d = fetch(s, c, 1000).await;
        if d.is_empty() {
            return out;
        }
        out.extend(d);
    }
}

#[tokio::test]
async fn publish_fetch_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = topic("orders");
    assert!(s.create_topic(&t).await.unwrap());
    assert!(!s.create_topic(&t).await.unwrap());
    let offs = s.publish(&t, &recs(&t, 0..10)).await.unwrap();
    assert_eq!(
        offs.iter().map(|o| o.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    let d = fetch(&s, &c, 4).await;
    assert_eq!(seqs(&d), [0, 1, 2, 3]);
    assert!(d.iter().all(|d| d.delivery_count == 1));
    assert_eq!(
        d.iter().map(|d| n_of(&d.record)).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    s.ack(&c, &tokens(&d)).await.unwrap();
    s.ack(&c, &tokens(&d)).await.unwrap();
    let info = s.cursor_info(&c).await.unwrap();
    assert_eq!(info.committed, vec![(0, 4)]);
    assert_eq!(info.in_flight, 0);
    assert_eq!(info.backlog, Some(6));
    let rest = drain(&s, &c).await;
    assert_eq!(seqs(&rest), (4..10).collect::<Vec<_>>());
    let topics = s.list_topics().await.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].retained_events, 10);
    s.health().await.unwrap();
    s.close().await.unwrap();
    assert!(matches!(
        s.publish(&t, &recs(&t, 0..1)).await,
        Err(StorageError::Closed)
    ));
    assert!(matches!(s.close().await, Err(StorageError::Closed)));
}

#[tokio::test]
async fn requests_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        max_event_bytes: 300,
        max_batch_events: 5,
        ..opts(dir.path())
    };
    let s = EmbeddedStore::open(o).unwrap();
    let t = topic("t");
    let other = topic("other");
    assert!(matches!(
        s.publish(&t, &recs(&t, 0..1)).await,
        Err(StorageError::UnknownTopic(_))
    ));
    s.create_topic(&t).await.unwrap();
    assert!(s.publish(&t, &[]).await.unwrap().is_empty());
    assert!(matches!(
        s.publish(&t, &recs(&other, 0..1)).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        s.publish(&t, &recs(&t, 0..6)).await,
        Err(StorageError::Invalid(_))
    ));
    let mut big = rec(&t, 1);
    big.event.data = Some(Bytes::from(vec![7u8; 400]));
    let err = s.publish(&t, &[rec(&t, 0), big]).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Invalid(m) if m.contains("event 1")),
        "{err}"
    );
    // Nothing of a refused batch was stored.
    assert_eq!(s.list_topics().await.unwrap()[0].retained_events, 0);
    let c = group("g", &t);
    assert!(matches!(
        s.fetch(&c, 1, LONG, NOW).await,
        Err(StorageError::UnknownConsumer(_))
    ));
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    for junk in [
        Bytes::new(),
        Bytes::from_static(b"garbage"),
        Bytes::from(vec![1u8; 33]),
    ] {
        assert!(matches!(
            s.ack(&c, &[AckToken(junk.clone())]).await,
            Err(StorageError::InvalidToken(_))
        ));
        assert!(matches!(
            s.nack(&c, &AckToken(junk.clone()), NOW).await,
            Err(StorageError::InvalidToken(_))
        ));
        assert!(matches!(
            s.extend_lease(&c, &[AckToken(junk)], LONG).await,
            Err(StorageError::InvalidToken(_))
        ));
    }
}

#[tokio::test]
async fn concurrent_publishers_are_group_committed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    let mut tasks = Vec::new();
    for p in 0..8u64 {
        let s = Arc::clone(&s);
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut offs = Vec::new();
            for b in 0..20u64 {
                let base = p * 1_000_000 + b * 100;
                offs.extend(s.publish(&t, &recs(&t, base..base + 10)).await.unwrap());
            }
            (p, offs)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let (p, offs) = task.await.unwrap();
        // A batch gets consecutive offsets; one publisher's batches are in order.
        assert!(
            offs.windows(2).all(|w| w[0].seq < w[1].seq),
            "publisher {p}"
        );
        all.extend(offs.iter().map(|o| o.seq));
    }
    all.sort_unstable();
    assert_eq!(all, (0..1600).collect::<Vec<_>>());
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    assert_eq!(drain(&s, &c).await.len(), 1600);
}

#[tokio::test]
async fn lock_keeps_a_second_open_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    match EmbeddedStore::open(opts(dir.path())) {
        Err(StorageError::Locked(p)) => assert_eq!(p, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    s.close().await.unwrap();
    let again = open(dir.path());
    drop(again);
    let _third = open(dir.path());
}

#[tokio::test]
async fn unreadable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = EmbeddedStore::open(opts(&file)).unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { path, .. } if path.starts_with(&file)),
        "{err}"
    );
}

#[tokio::test]
async fn full_disk_fails_the_batch_and_leaves_no_half_record() {
    let vfs = SimVfs::new(Path::new("/sim"), 1);
    let o = opts(Path::new("/sim/data"));
    let s = open_sim(&vfs, o.clone()).unwrap();
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    s.publish(&t, &recs(&t, 0..10)).await.unwrap();
    vfs.set_space_left(Some(500));
    let err = s.publish(&t, &recs(&t, 10..20)).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err}"
    );
    assert!(
        err.to_string().contains(".log"),
        "the error names the file: {err}"
    );
    vfs.set_space_left(None);
    s.publish(&t, &recs(&t, 20..25)).await.unwrap();
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    let got: Vec<u64> = drain(&s, &c)
        .await
        .iter()
        .map(|d| n_of(&d.record))
        .collect();
    assert_eq!(got, (0..10).chain(20..25).collect::<Vec<_>>());
    s.close().await.unwrap();
    let s = open_sim(&vfs, o).unwrap();
    let c2 = group("g2", &t);
    s.subscribe(&c2, StartFrom::Earliest).await.unwrap();
    assert_eq!(drain(&s, &c2).await.len(), 15);
}

#[tokio::test]
async fn failed_fsync_stops_the_topic_until_reopen() {
    let vfs = SimVfs::new(Path::new("/sim"), 2);
    let s = open_sim(&vfs, opts(Path::new("/sim/data"))).unwrap();
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    vfs.set_fail_sync(true);
    assert!(matches!(
        s.publish(&t, &recs(&t, 0..3)).await,
        Err(StorageError::Io { .. })
    ));
    vfs.set_fail_sync(false);
    assert!(matches!(
        s.publish(&t, &recs(&t, 3..4)).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(s.health().await.is_err());
}

#[tokio::test]
async fn fsync_policies_all_store_and_serve() {
    for policy in [
        FsyncPolicy::Never,
        FsyncPolicy::Interval(Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = EmbeddedOptions {
            fsync: policy,
            ..opts(dir.path())
        };
        let s = EmbeddedStore::open(o.clone()).unwrap();
        let t = topic("t");
        s.create_topic(&t).await.unwrap();
        s.publish(&t, &recs(&t, 0..50)).await.unwrap();
        let c = group("g", &t);
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        let d = fetch(&s, &c, 10).await;
        s.ack(&c, &tokens(&d)).await.unwrap();
        s.close().await.unwrap();
        let s = EmbeddedStore::open(o).unwrap();
        assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 10)]);
        assert_eq!(drain(&s, &c).await.len(), 40);
    }
}

#[tokio::test]
async fn delete_topic_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = Topic::with_tenant("acme", "orders/created").unwrap();
    s.create_topic(&t).await.unwrap();
    assert!(
        dir.path()
            .join("topics/acme%7Eorders%2Fcreated/TOPIC")
            .exists()
    );
    s.publish(&t, &recs(&t, 0..3)).await.unwrap();
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    s.delete_topic(&t).await.unwrap();
    assert!(matches!(
        s.fetch(&c, 1, LONG, NOW).await,
        Err(StorageError::UnknownTopic(_))
    ));
    assert!(matches!(
        s.delete_topic(&t).await,
        Err(StorageError::UnknownTopic(_))
    ));
    assert!(!dir.path().join("topics/acme%7Eorders%2Fcreated").exists());
    s.create_topic(&t).await.unwrap();
    assert_eq!(s.list_topics().await.unwrap()[0].retained_events, 0);
    s.close().await.unwrap();
    let s = open(dir.path());
    assert_eq!(s.list_topics().await.unwrap()[0].topic, t);
}

#[tokio::test]
async fn interval_policy_fsyncs_in_the_background() {
    let vfs = SimVfs::new(Path::new("/sim"), 3);
    let o = EmbeddedOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
        ..opts(Path::new("/sim/data"))
    };
    let s = open_sim(&vfs, o.clone()).unwrap();
    let t = topic("t");
    s.create_topic(&t).await.unwrap();
    let c = group("g", &t);
    s.subscribe(&c, StartFrom::Earliest).await.unwrap();
    s.publish(&t, &recs(&t, 0..20)).await.unwrap();
    let d = fetch(&s, &c, 5).await;
    s.ack(&c, &tokens(&d)).await.unwrap();
    // Real time must pass for the interval to fire.
    tokio::time::sleep(Duration::from_millis(150)).await;
    vfs.power_cut();
    drop(s);
    let s = open_sim(&vfs, o).unwrap();
    assert_eq!(s.list_topics().await.unwrap()[0].retained_events, 20);
    assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 5)]);
}

#[tokio::test]
async fn long_topic_and_member_names_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::with_tenant("tenant-1", &"/é".repeat(80)).unwrap();
    let g = GroupName::new(&"g/".repeat(100)).unwrap();
    let member = format!("http://example.invalid/{}", "hook/".repeat(100));
    let c = ConsumerRef::broadcasting(t.clone(), g.clone(), member.clone());
    let c2 = ConsumerRef::clustering(t.clone(), g);
    {
        let s = open(dir.path());
        s.create_topic(&t).await.unwrap();
        s.publish(&t, &recs(&t, 0..3)).await.unwrap();
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        s.subscribe(&c2, StartFrom::Latest).await.unwrap();
        let d = fetch(&s, &c, 1).await;
        s.ack(&c, &tokens(&d)).await.unwrap();
        s.close().await.unwrap();
    }
    for e in std::fs::read_dir(dir.path().join("topics")).unwrap() {
        assert!(e.unwrap().file_name().len() <= 200);
    }
    let s = open(dir.path());
    assert_eq!(s.list_topics().await.unwrap()[0].topic, t);
    assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 1)]);
    assert_eq!(s.cursor_info(&c2).await.unwrap().committed, vec![(0, 3)]);
}
