//! Scenario 5: replay by offset and by time, skipping to the end, subscribe keeping a position.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::support::{
    CountRule, Ctx, Drain, EventSet, IDLE, OrderRule, drain, expect_quiet, publish_range,
    subscribe, unique_group,
};
use super::{EVENTS, KitFailure, StoreFactory};
use crate::{ConsumerRef, EventStore, Offset, StartFrom};

pub(crate) const NAME: &str = "replay_and_seek";

const PHASE_A: usize = 4_000;
const PHASE_B: usize = 3_000;
const PHASE_C: usize = EVENTS - PHASE_A - PHASE_B;
const LATE: usize = 10;
/// The event whose offset the offset seek targets.
const SEEK_TO: usize = 2_500;
const QUIET: Duration = Duration::from_millis(300);

/// Scenario 5: seek to an offset, a time, `Latest`, `Earliest`, past the end; subscribe keeps
/// an existing position. See the [module docs](super) for the exact assertions.
pub async fn replay_and_seek(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx)).await;
    ctx.finish(r).await
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time strictly after everything published so far and at or before everything created from
/// now on.
async fn time_boundary() -> i64 {
    let t = wall_ms() + 1;
    while wall_ms() < t {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    t
}

async fn seek(ctx: &Ctx, c: &ConsumerRef, target: StartFrom) -> Result<(), KitFailure> {
    ctx.op(
        &format!("seek({c}, {target:?})"),
        ctx.store().seek(c, target).await,
    )
}

/// Drains exactly `expected` after a seek (every event is new to this pass).
async fn replay(
    store: &dyn EventStore,
    c: &ConsumerRef,
    set: &EventSet,
    expected: &HashSet<usize>,
    who: &str,
    counts: CountRule,
) -> Result<(), KitFailure> {
    drain(
        NAME,
        store,
        Drain {
            who,
            consumer: c,
            set,
            expected,
            order: OrderRule::All,
            counts,
            at_least_two: None,
            idle: IDLE,
            quiet: Some(QUIET),
        },
    )
    .await
    .map(drop)
}

async fn run(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic("replay").await?;
    let group = unique_group("replay");
    let c = ConsumerRef::clustering(topic.clone(), group.clone());
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;

    let mut set = EventSet::empty(&topic);
    let a = set.add(PHASE_A);
    let mut offsets: Vec<Offset> = publish_range(NAME, &*store, &set, a, 500).await?;
    let t_b = time_boundary().await;
    let b = set.add(PHASE_B);
    offsets.extend(publish_range(NAME, &*store, &set, b.clone(), 500).await?);
    let t_c = time_boundary().await;
    let cr = set.add(PHASE_C);
    offsets.extend(publish_range(NAME, &*store, &set, cr.clone(), 500).await?);

    let all: HashSet<usize> = (0..EVENTS).collect();
    replay(
        &*store,
        &c,
        &set,
        &all,
        "first pass from Earliest",
        CountRule::One,
    )
    .await?;

    let target = offsets[SEEK_TO];
    seek(ctx, &c, StartFrom::Offset(target.seq)).await?;
    let from_offset: HashSet<usize> = (0..EVENTS)
        .filter(|&i| offsets[i].seq >= target.seq)
        .collect();
    replay(
        &*store,
        &c,
        &set,
        &from_offset,
        &format!("replay from offset {}", target.seq),
        CountRule::Any,
    )
    .await?;

    seek(ctx, &c, StartFrom::Time(t_b)).await?;
    let from_time: HashSet<usize> = (b.start..cr.end).collect();
    replay(
        &*store,
        &c,
        &set,
        &from_time,
        &format!("replay from time {t_b} ms"),
        CountRule::Any,
    )
    .await?;

    seek(ctx, &c, StartFrom::Latest).await?;
    expect_quiet(
        NAME,
        &*store,
        &c,
        QUIET,
        Some(&set),
        "the cursor was sought to Latest",
    )
    .await?;
    let late = set.add(LATE);
    offsets.extend(publish_range(NAME, &*store, &set, late.clone(), LATE).await?);
    let late_set: HashSet<usize> = late.clone().collect();
    replay(
        &*store,
        &c,
        &set,
        &late_set,
        "after seeking Latest",
        CountRule::One,
    )
    .await?;

    seek(ctx, &c, StartFrom::Earliest).await?;
    let everything: HashSet<usize> = (0..late.end).collect();
    replay(
        &*store,
        &c,
        &set,
        &everything,
        "replay from Earliest",
        CountRule::Any,
    )
    .await?;

    seek(ctx, &c, StartFrom::Offset(u64::MAX)).await?;
    expect_quiet(
        NAME,
        &*store,
        &c,
        QUIET,
        Some(&set),
        "the cursor was sought past the end",
    )
    .await?;

    // BROADCASTING members seek independently, and both get what is published next.
    let m1 = ConsumerRef::broadcasting(topic.clone(), group.clone(), "kit-replay-1");
    let m2 = ConsumerRef::broadcasting(topic.clone(), group.clone(), "kit-replay-2");
    subscribe(NAME, &*store, &m1, StartFrom::Earliest).await?;
    subscribe(NAME, &*store, &m2, StartFrom::Latest).await?;
    seek(ctx, &m1, StartFrom::Time(t_c)).await?;
    let phase_c: HashSet<usize> = (cr.start..late.end).collect();
    replay(
        &*store,
        &m1,
        &set,
        &phase_c,
        &format!("member replay from time {t_c} ms"),
        CountRule::Any,
    )
    .await?;
    expect_quiet(
        NAME,
        &*store,
        &m2,
        QUIET,
        Some(&set),
        "this member subscribed from Latest and another member sought back",
    )
    .await?;
    let last = set.add(LATE);
    publish_range(NAME, &*store, &set, last.clone(), LATE).await?;
    let last_set: HashSet<usize> = last.collect();
    replay(
        &*store,
        &m1,
        &set,
        &last_set,
        "member 1 after new events",
        CountRule::One,
    )
    .await?;
    replay(
        &*store,
        &m2,
        &set,
        &last_set,
        "member 2 after new events",
        CountRule::One,
    )
    .await?;
    // Back to the end for the group cursor, which those new events would otherwise reach.
    seek(ctx, &c, StartFrom::Offset(u64::MAX)).await?;

    // Subscribing an existing cursor keeps its position.
    let before = ctx.op("cursor_info", store.cursor_info(&c).await)?;
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    let after = ctx.op("cursor_info", store.cursor_info(&c).await)?;
    ensure!(
        before.committed == after.committed,
        NAME,
        "{c}: subscribe(Earliest) of an existing cursor moved it: committed {:?} before, {:?} after",
        before.committed,
        after.committed
    );
    expect_quiet(
        NAME,
        &*store,
        &c,
        QUIET,
        Some(&set),
        "subscribe(Earliest) was called on an existing cursor at the end",
    )
    .await
}
