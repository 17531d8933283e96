//! Scenario 1: publish and fetch order within a partition, offsets, all-or-nothing batches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::support::{
    Background, Ctx, EventSet, IDLE, OrderCheck, ack_all, expect_quiet, expect_settled, fetch,
    kit_record, publish_concurrently, subscribe, unique_group, unique_topic,
};
use super::{EVENTS, KitFailure, PUBLISHERS, StoreFactory};
use crate::{ConsumerRef, Offset, StartFrom, StorageError};

pub(crate) const NAME: &str = "publish_fetch_order";

/// Scenario 1: 4 concurrent publishers, one long-polling consumer; order, offsets and atomic
/// batches. See the [module docs](super) for the exact assertions.
pub async fn publish_fetch_order(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx)).await;
    ctx.finish(r).await
}

async fn run(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic("order").await?;
    let c = ConsumerRef::clustering(topic.clone(), unique_group("order"));
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;

    // A batch with one record for another topic is refused as a whole.
    let stray = unique_topic("order-stray");
    let refused = vec![
        kit_record(&topic, 99, 0),
        kit_record(&topic, 99, 1),
        kit_record(&stray, 99, 2),
    ];
    let refused_ids: HashSet<_> = refused.iter().map(|r| r.id).collect();
    match store.publish(&topic, &refused).await {
        Err(StorageError::Invalid(_)) => {}
        Err(e) => bail!(
            NAME,
            "publish of a batch holding a record for topic `{stray}` to `{topic}` failed with `{e}`; expected Invalid"
        ),
        Ok(offsets) => bail!(
            NAME,
            "publish of a batch holding a record for topic `{stray}` to `{topic}` was accepted (offsets {offsets:?}); it must be refused"
        ),
    }

    let set = Arc::new(EventSet::new(&topic, PUBLISHERS, EVENTS / PUBLISHERS));
    let mut publishing = Background::spawn(
        NAME,
        publish_concurrently(NAME, store.clone(), set.clone(), None),
    );

    let n = set.len();
    let mut delivered: Vec<Option<Offset>> = vec![None; n];
    let mut got = 0usize;
    let mut order = OrderCheck::default();
    // (publisher, partition) -> last index first delivered.
    let mut per_publisher: HashMap<(usize, u32), usize> = HashMap::new();
    let mut last_progress = Instant::now();
    let mut published = false;
    while got < n {
        // Once publishing is done, every event must arrive without long pauses.
        if !published && publishing.poll()? {
            published = true;
            last_progress = Instant::now();
        }
        if published && last_progress.elapsed() > IDLE {
            let missing: Vec<usize> = (0..n)
                .filter(|i| delivered[*i].is_none())
                .take(10)
                .collect();
            bail!(
                NAME,
                "only {got} of {n} published events were delivered (nothing came for {} s after publishing ended); first missing: {missing:?}",
                IDLE.as_secs()
            );
        }
        let batch = fetch(
            NAME,
            &*store,
            &c,
            100,
            Duration::from_secs(30),
            Duration::from_millis(200),
        )
        .await?;
        if !batch.is_empty() {
            last_progress = Instant::now();
        }
        for d in &batch {
            ensure!(
                !refused_ids.contains(&d.record.id),
                NAME,
                "a record of a refused batch was delivered (offset {}): a batch must be stored all or nothing",
                d.offset
            );
            let idx = set.lookup(NAME, "the consumer", d)?;
            if let Some(prev) = delivered[idx] {
                bail!(
                    NAME,
                    "event #{idx} delivered again at offset {} with delivery_count {} after it was delivered at {prev} and acked",
                    d.offset,
                    d.delivery_count
                );
            }
            ensure!(
                d.delivery_count == 1,
                NAME,
                "event #{idx} (offset {}) first delivered with delivery_count {}; expected 1",
                d.offset,
                d.delivery_count
            );
            order.check(NAME, "the consumer", idx, d.offset)?;
            let (p, i) = (set.publisher(idx), set.index(idx));
            if let Some(&prev) = per_publisher.get(&(p, d.offset.partition)) {
                ensure!(
                    i > prev,
                    NAME,
                    "publisher {p}'s event {i} was delivered after its event {prev} (publish order must be kept)"
                );
            }
            per_publisher.insert((p, d.offset.partition), i);
            delivered[idx] = Some(d.offset);
            got += 1;
        }
        ack_all(NAME, &*store, &c, &batch).await?;
    }
    let offsets = publishing.finish().await?;
    for (idx, published) in offsets.iter().enumerate() {
        ensure!(
            delivered[idx] == Some(*published),
            NAME,
            "event #{idx}: publish returned offset {published}, fetch reported {:?}",
            delivered[idx]
        );
    }
    expect_quiet(
        NAME,
        &*store,
        &c,
        Duration::from_millis(300),
        Some(&set),
        "every event was delivered and acked",
    )
    .await?;
    expect_settled(NAME, &*store, &c, &offsets).await
}
