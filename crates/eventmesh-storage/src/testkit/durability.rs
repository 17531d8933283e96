//! Scenario 6: durability across a restart (close, reopen through the factory).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::support::{
    CountRule, Ctx, Drain, EventSet, IDLE, OrderRule, ack_all, drain, fetch, publish_concurrently,
    subscribe, unique_group,
};
use super::{EVENTS, KitFailure, PUBLISHERS, StoreFactory};
use crate::{AckToken, ConsumerRef, StartFrom};

pub(crate) const NAME: &str = "restart_durability";

pub(crate) const SKIP_REASON: &str = "the factory declares the store volatile (durable() == false), so nothing can survive a restart";

/// Events the CLUSTERING cursor fetches before the restart.
const FETCHED: usize = 8_000;
/// Of those, the first ones it acks (it also acks every third of the rest).
const ACKED_PREFIX: usize = 6_000;
/// Events the BROADCASTING member acks before the restart.
const MEMBER_ACKED: usize = 1_000;
/// The lease of the deliveries left un-acked across the restart.
const LEASE: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(500);

/// Scenario 6: publish, consume partly, close, reopen, and check what survived. Skipped — loudly,
/// on stderr past the test harness's capture — only when the factory is not durable. See the
/// [module docs](super) for the exact assertions.
pub async fn restart_durability(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    if !factory.durable() {
        // Straight to the process's stderr: the test harness captures `eprintln!`, not this.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** storage conformance kit: SKIPPED scenario `{NAME}`: {SKIP_REASON}. A durable backend must never skip it. ***\n"
        );
        return Ok(());
    }
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx, factory)).await;
    ctx.finish(r).await
}

async fn run(ctx: &Ctx, factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic("durable").await?;
    let c = ConsumerRef::clustering(topic.clone(), unique_group("durable"));
    let m = ConsumerRef::broadcasting(
        topic.clone(),
        unique_group("durable-b"),
        "kit-durable-member",
    );
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    subscribe(NAME, &*store, &m, StartFrom::Earliest).await?;
    let set = Arc::new(EventSet::new(&topic, PUBLISHERS, EVENTS / PUBLISHERS));
    let offsets = publish_concurrently(NAME, store.clone(), set.clone(), None).await?;

    // The CLUSTERING cursor: fetch 8,000, ack the first 6,000 and every third of the others.
    let mut acked: HashSet<usize> = HashSet::new();
    let mut held: HashSet<usize> = HashSet::new();
    let mut fetched = 0usize;
    let mut last = Instant::now();
    while fetched < FETCHED {
        ensure!(
            last.elapsed() < IDLE,
            NAME,
            "{c}: only {fetched} of {EVENTS} published events could be fetched (nothing came for {} s)",
            IDLE.as_secs()
        );
        let batch = fetch(
            NAME,
            &*store,
            &c,
            (FETCHED - fetched).min(256),
            LEASE,
            Duration::from_millis(200),
        )
        .await?;
        if !batch.is_empty() {
            last = Instant::now();
        }
        let mut to_ack: Vec<AckToken> = Vec::new();
        for d in &batch {
            let idx = set.lookup(NAME, "the group before the restart", d)?;
            ensure!(
                !acked.contains(&idx),
                NAME,
                "{c}: event #{idx} (offset {}) delivered again with delivery_count {} after it was acked",
                d.offset,
                d.delivery_count
            );
            if held.contains(&idx) {
                continue; // Its lease ran out while the kit was still fetching: still held.
            }
            let position = fetched;
            fetched += 1;
            if position < ACKED_PREFIX || (position - ACKED_PREFIX).is_multiple_of(3) {
                acked.insert(idx);
                to_ack.push(d.token.clone());
            } else {
                held.insert(idx);
            }
        }
        if !to_ack.is_empty() {
            ctx.op("ack", store.ack(&c, &to_ack).await)?;
        }
    }
    // The BROADCASTING member: ack its first 1,000.
    let mut member_acked: HashSet<usize> = HashSet::new();
    let mut last = Instant::now();
    while member_acked.len() < MEMBER_ACKED {
        ensure!(
            last.elapsed() < IDLE,
            NAME,
            "{m}: only {} of {EVENTS} published events could be fetched (nothing came for {} s)",
            member_acked.len(),
            IDLE.as_secs()
        );
        let batch = fetch(
            NAME,
            &*store,
            &m,
            (MEMBER_ACKED - member_acked.len()).min(256),
            LEASE,
            Duration::from_millis(200),
        )
        .await?;
        if !batch.is_empty() {
            last = Instant::now();
        }
        for d in &batch {
            let idx = set.lookup(NAME, "the member before the restart", d)?;
            ensure!(
                member_acked.insert(idx),
                NAME,
                "{m}: event #{idx} delivered twice before the restart"
            );
        }
        ack_all(NAME, &*store, &m, &batch).await?;
    }

    ctx.restart(factory).await?;
    let store = ctx.store();

    let topics = ctx.op("list_topics after the restart", store.list_topics().await)?;
    ensure!(
        topics.iter().any(|t| t.topic == topic),
        NAME,
        "topic `{topic}` is missing from list_topics after the restart"
    );

    // Every published event is there, in order, unchanged, at its offset.
    let fresh = ConsumerRef::clustering(topic.clone(), unique_group("durable-new"));
    subscribe(NAME, &*store, &fresh, StartFrom::Earliest).await?;
    let everything: HashSet<usize> = (0..set.len()).collect();
    let got = drain(
        NAME,
        &*store,
        Drain {
            who: "a new group after the restart",
            consumer: &fresh,
            set: &set,
            expected: &everything,
            order: OrderRule::All,
            counts: CountRule::One,
            at_least_two: None,
            idle: IDLE,
            quiet: Some(QUIET),
        },
    )
    .await?;
    for (idx, d) in &got {
        ensure!(
            d.offset == offsets[*idx],
            NAME,
            "after the restart event #{idx} is at offset {}; publish returned {}",
            d.offset,
            offsets[*idx]
        );
    }

    // The old group resumes: exactly what it had not acked; the held ones count as redeliveries.
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    let unacked: HashSet<usize> = everything.difference(&acked).copied().collect();
    drain(
        NAME,
        &*store,
        Drain {
            who: "the group after the restart",
            consumer: &c,
            set: &set,
            expected: &unacked,
            order: OrderRule::FirstDeliveries,
            counts: CountRule::Split,
            at_least_two: Some(&held),
            idle: LEASE + IDLE,
            quiet: Some(QUIET),
        },
    )
    .await?;

    // The member resumes after its 1,000, even when re-subscribing from Latest.
    subscribe(NAME, &*store, &m, StartFrom::Latest).await?;
    let member_rest: HashSet<usize> = everything.difference(&member_acked).copied().collect();
    drain(
        NAME,
        &*store,
        Drain {
            who: "the member after the restart",
            consumer: &m,
            set: &set,
            expected: &member_rest,
            order: OrderRule::All,
            counts: CountRule::One,
            at_least_two: None,
            idle: IDLE,
            quiet: Some(QUIET),
        },
    )
    .await?;
    Ok(())
}
