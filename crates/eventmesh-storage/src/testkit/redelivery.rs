//! Scenario 4: nack with a delay, lease expiry, increasing delivery counts, lease extension.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::support::{
    CLOCK_SLACK, CountRule, Ctx, Drain, EventSet, IDLE, OrderRule, ack_all, drain, expect_quiet,
    fetch, publish_range, subscribe, unique_group,
};
use super::{KitFailure, StoreFactory};
use crate::{ConsumerRef, Delivery, EventStore, StartFrom};

pub(crate) const NAME: &str = "nack_and_lease_redelivery";

const NACK_DELAY: Duration = Duration::from_millis(400);
const LEASE: Duration = Duration::from_millis(300);
const EXTENDED_LEASE: Duration = Duration::from_millis(600);
const EXTEND_EVERY: Duration = Duration::from_millis(200);
const EXTENSIONS: usize = 4;
const LEASED_EVENTS: usize = 100;
/// A long lease, for deliveries that must not expire during a check.
const HOLD: Duration = Duration::from_secs(30);

/// Scenario 4: nack delays, lease expiry and extension, delivery counts, due-first fetch order.
/// See the [module docs](super) for the exact assertions.
pub async fn nack_and_lease_redelivery(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx
        .bounded(async {
            tokio::try_join!(
                nack_delay(&ctx),
                lease_expiry(&ctx),
                lease_extension(&ctx),
                due_first(&ctx)
            )?;
            Ok(())
        })
        .await;
    ctx.finish(r).await
}

/// A topic with `n` published events and a fresh CLUSTERING cursor on it.
async fn setup(ctx: &Ctx, label: &str, n: usize) -> Result<(ConsumerRef, EventSet), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic(label).await?;
    let c = ConsumerRef::clustering(topic.clone(), unique_group(label));
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    let set = EventSet::new(&topic, 1, n);
    publish_range(NAME, &*store, &set, 0..n, 100).await?;
    Ok((c, set))
}

/// Fetches until a non-empty batch comes; it must not come before `not_before`.
async fn next_batch(
    store: &dyn EventStore,
    c: &ConsumerRef,
    max: usize,
    lease: Duration,
    not_before: Instant,
    what: &str,
) -> Result<(Vec<Delivery>, Instant), KitFailure> {
    let started = Instant::now();
    loop {
        let at = Instant::now();
        let batch = fetch(NAME, store, c, max, lease, Duration::from_millis(200)).await?;
        let now = Instant::now();
        if !batch.is_empty() {
            ensure!(
                now + CLOCK_SLACK >= not_before,
                NAME,
                "{c}: {what}: an event (offset {}, delivery_count {}) came back {} ms too early",
                batch[0].offset,
                batch[0].delivery_count,
                (not_before - now).as_millis()
            );
            return Ok((batch, at));
        }
        ensure!(
            started.elapsed() < IDLE,
            NAME,
            "{c}: {what}: nothing was delivered within {} s",
            IDLE.as_secs()
        );
    }
}

/// Expects exactly one delivery of event `idx` with the given count.
fn one(
    set: &EventSet,
    batch: &[Delivery],
    idx: usize,
    count: u32,
    what: &str,
) -> Result<Delivery, KitFailure> {
    ensure!(
        batch.len() == 1,
        NAME,
        "{what}: expected one delivery, got {}",
        batch.len()
    );
    let d = &batch[0];
    let got = set.lookup(NAME, what, d)?;
    ensure!(
        got == idx,
        NAME,
        "{what}: expected event #{idx}, got #{got} (offset {})",
        d.offset
    );
    ensure!(
        d.delivery_count == count,
        NAME,
        "{what}: event #{idx} (offset {}) has delivery_count {}; expected {count}",
        d.offset,
        d.delivery_count
    );
    Ok(d.clone())
}

async fn nack_delay(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let (c, set) = setup(ctx, "nack-delay", 1).await?;
    let (b, _) = next_batch(&*store, &c, 10, HOLD, Instant::now(), "first delivery").await?;
    let d1 = one(&set, &b, 0, 1, "first delivery")?;
    let t = Instant::now();
    ctx.op("nack", store.nack(&c, &d1.token, NACK_DELAY).await)?;
    let (b, _) = next_batch(
        &*store,
        &c,
        10,
        HOLD,
        t + NACK_DELAY,
        "after a nack with a 400 ms delay",
    )
    .await?;
    let d2 = one(&set, &b, 0, 2, "redelivery after a nack")?;
    ctx.op("nack", store.nack(&c, &d2.token, Duration::ZERO).await)?;
    let (b, _) = next_batch(
        &*store,
        &c,
        10,
        HOLD,
        Instant::now(),
        "after a nack with no delay",
    )
    .await?;
    let d3 = one(&set, &b, 0, 3, "redelivery after a zero-delay nack")?;
    ack_all(NAME, &*store, &c, &[d3]).await?;
    expect_quiet(
        NAME,
        &*store,
        &c,
        NACK_DELAY + Duration::from_millis(200),
        Some(&set),
        "the nacked event was finally acked",
    )
    .await
}

async fn lease_expiry(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let (c, set) = setup(ctx, "lease", LEASED_EVENTS).await?;
    // Per event: (delivery count so far, earliest instant its lease can end).
    let mut state: HashMap<usize, (u32, Instant)> = HashMap::new();
    let mut last: Vec<Delivery> = Vec::new();
    for round in 1..=3u32 {
        let mut this_round: HashMap<usize, Delivery> = HashMap::new();
        while this_round.len() < LEASED_EVENTS {
            let not_before = if round == 1 {
                Instant::now()
            } else {
                state
                    .values()
                    .map(|(_, at)| *at)
                    .min()
                    .unwrap_or_else(Instant::now)
            };
            let what = format!("lease round {round}");
            let (batch, at) =
                next_batch(&*store, &c, LEASED_EVENTS, LEASE, not_before, &what).await?;
            let now = Instant::now();
            for d in batch {
                let idx = set.lookup(NAME, &what, &d)?;
                let (count, lease_end) = state.get(&idx).copied().unwrap_or((0, now));
                ensure!(
                    now + CLOCK_SLACK >= lease_end,
                    NAME,
                    "{c}: event #{idx} (offset {}) came back {} ms before the {} ms lease of its delivery {count} ended",
                    d.offset,
                    (lease_end - now).as_millis(),
                    LEASE.as_millis()
                );
                // Usually exactly `count + 1`; a broker may also count a delivery that never
                // reached the store (JetStream: one sent to a pull request that had just expired).
                ensure!(
                    d.delivery_count > count,
                    NAME,
                    "{c}: event #{idx} (offset {}) delivered with delivery_count {} after {count} deliveries (lease expiries, no ack)",
                    d.offset,
                    d.delivery_count
                );
                // A round lasts until every event came back; on a slow machine that can take
                // longer than a lease, so an event may come back twice in one round: after its
                // lease ended (checked above) and with the next count, which is right.
                this_round.insert(idx, d.clone());
                state.insert(idx, (d.delivery_count, at + LEASE));
            }
        }
        last = this_round.into_values().collect();
    }
    ack_all(NAME, &*store, &c, &last).await?;
    expect_quiet(
        NAME,
        &*store,
        &c,
        LEASE + Duration::from_millis(300),
        Some(&set),
        "every leased event was finally acked",
    )
    .await
}

async fn lease_extension(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let (c, set) = setup(ctx, "extend", 1).await?;
    let (b, at) = next_batch(
        &*store,
        &c,
        10,
        EXTENDED_LEASE,
        Instant::now(),
        "first delivery",
    )
    .await?;
    let d1 = one(&set, &b, 0, 1, "first delivery")?;
    let mut lease_end = at + EXTENDED_LEASE;
    for n in 0..EXTENSIONS {
        let got = fetch(NAME, &*store, &c, 10, HOLD, EXTEND_EVERY).await?;
        let now = Instant::now();
        if let Some(d) = got.first() {
            ensure!(
                now + CLOCK_SLACK >= lease_end,
                NAME,
                "{c}: event (offset {}, delivery_count {}) came back {} ms before its lease, extended {n} times by {} ms, ended",
                d.offset,
                d.delivery_count,
                (lease_end - now).as_millis(),
                EXTENDED_LEASE.as_millis()
            );
            // The machine stalled longer than the lease: the check is inconclusive, not failed.
            return ack_all(NAME, &*store, &c, &got).await;
        }
        let t = Instant::now();
        ctx.op(
            "extend_lease",
            store
                .extend_lease(&c, std::slice::from_ref(&d1.token), EXTENDED_LEASE)
                .await,
        )?;
        lease_end = t + EXTENDED_LEASE;
    }
    let (b, _) = next_batch(
        &*store,
        &c,
        10,
        HOLD,
        lease_end,
        "after the lease extensions stopped",
    )
    .await?;
    let d2 = one(&set, &b, 0, 2, "redelivery after the extended lease ended")?;
    ack_all(NAME, &*store, &c, &[d2]).await
}

async fn due_first(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let (c, set) = setup(ctx, "due-first", 5).await?;
    let mut first = Vec::new();
    while first.len() < 2 {
        let (b, _) = next_batch(
            &*store,
            &c,
            2 - first.len(),
            HOLD,
            Instant::now(),
            "first deliveries",
        )
        .await?;
        first.extend(b);
    }
    let idx: Vec<(usize, u32)> = first
        .iter()
        .map(|d| {
            set.lookup(NAME, "due-first", d)
                .map(|i| (i, d.delivery_count))
        })
        .collect::<Result<_, _>>()?;
    ensure!(
        idx == [(0, 1), (1, 1)],
        NAME,
        "{c}: the first two deliveries of a new cursor were (event, delivery_count) {idx:?}; expected [(0, 1), (1, 1)]"
    );
    ctx.op(
        "nack",
        store.nack(&c, &first[0].token, Duration::ZERO).await,
    )?;
    ack_all(NAME, &*store, &c, &first[1..]).await?;
    // Let a store with a coarse timer see the zero-delay nack as due.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (second, _) = next_batch(
        &*store,
        &c,
        2,
        HOLD,
        Instant::now(),
        "after a zero-delay nack",
    )
    .await?;
    let got: Vec<(usize, u32)> = second
        .iter()
        .map(|d| {
            set.lookup(NAME, "due-first", d)
                .map(|i| (i, d.delivery_count))
        })
        .collect::<Result<_, _>>()?;
    ensure!(
        got == [(0, 2), (2, 1)] || got == [(0, 2)],
        NAME,
        "{c}: after nacking event 0 with no delay, a fetch of 2 returned (event, delivery_count) {got:?}; expected [(0, 2), (2, 1)]: due redeliveries first, then new events in offset order"
    );
    ack_all(NAME, &*store, &c, &second).await?;
    let expected: HashSet<usize> = (2..5)
        .filter(|i| !got.iter().any(|(g, _)| g == i))
        .collect();
    drain(
        NAME,
        &*store,
        Drain {
            who: "due-first consumer",
            consumer: &c,
            set: &set,
            expected: &expected,
            order: OrderRule::All,
            counts: CountRule::One,
            at_least_two: None,
            idle: IDLE,
            quiet: Some(Duration::from_millis(300)),
        },
    )
    .await?;
    Ok(())
}
