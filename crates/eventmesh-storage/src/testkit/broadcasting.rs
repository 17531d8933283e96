//! Scenario 3: BROADCASTING fan-out, independence of members, resume after re-subscribe.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventmesh_core::EventId;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::support::{
    Ctx, EventSet, IDLE, OrderCheck, ack_all, counter, expect_quiet, expect_settled, fetch,
    join_all, publish_concurrently, publish_range, subscribe, unique_group,
};
use super::{EVENTS, KitFailure, MEMBERS, PUBLISHERS, StoreFactory};
use crate::{ConsumerRef, Delivery, EventStore, StartFrom};

pub(crate) const NAME: &str = "broadcasting_fan_out";

/// Events published before the members subscribe; none may reach them.
const PRE: usize = 100;
/// The member that disconnects and re-subscribes.
const RESUMER: usize = 1;
/// The member that stalls.
const SLOW: usize = MEMBERS - 1;

/// Scenario 3: 3 BROADCASTING members each get every event, independently; a member resumes
/// from its position. See the [module docs](super) for the exact assertions.
pub async fn broadcasting_fan_out(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx)).await;
    ctx.finish(r).await
}

struct Receiver {
    m: usize,
    who: String,
    c: ConsumerRef,
    store: Arc<dyn EventStore>,
    set: Arc<EventSet>,
    pre: Arc<HashSet<EventId>>,
    published: Arc<AtomicUsize>,
    received: Vec<bool>,
    count: usize,
    order: OrderCheck,
}

impl Receiver {
    fn take(&mut self, batch: &[Delivery]) -> Result<(), KitFailure> {
        for d in batch {
            ensure!(
                !self.pre.contains(&d.record.id),
                NAME,
                "{} received an event published before it subscribed from Latest (offset {})",
                self.who,
                d.offset
            );
            let idx = self.set.lookup(NAME, &self.who, d)?;
            ensure!(
                !self.received[idx],
                NAME,
                "{} received event #{idx} (offset {}, delivery_count {}) a second time, after its ack",
                self.who,
                d.offset,
                d.delivery_count
            );
            ensure!(
                d.delivery_count == 1,
                NAME,
                "{} received event #{idx} (offset {}) with delivery_count {}; expected 1 (first delivery to this member)",
                self.who,
                d.offset,
                d.delivery_count
            );
            self.order.check(NAME, &self.who, idx, d.offset)?;
            self.received[idx] = true;
            self.count += 1;
        }
        Ok(())
    }

    /// Fetches one non-empty batch and keeps it un-acked.
    async fn hold_one(&mut self) -> Result<Vec<Delivery>, KitFailure> {
        let started = Instant::now();
        loop {
            let batch = fetch(
                NAME,
                &*self.store,
                &self.c,
                16,
                Duration::from_secs(60),
                Duration::from_millis(200),
            )
            .await?;
            if !batch.is_empty() {
                self.take(&batch)?;
                return Ok(batch);
            }
            ensure!(
                started.elapsed() < IDLE * 4,
                NAME,
                "{} received nothing within {} s of publishing",
                self.who,
                (IDLE * 4).as_secs()
            );
        }
    }

    /// Consumes and acks until `target` events were received.
    async fn consume_until(&mut self, target: usize, note: &str) -> Result<(), KitFailure> {
        let n = self.set.len();
        let mut last = Instant::now();
        while self.count < target {
            let batch = fetch(
                NAME,
                &*self.store,
                &self.c,
                256,
                Duration::from_secs(60),
                Duration::from_millis(200),
            )
            .await?;
            if batch.is_empty() {
                if self.published.load(Ordering::SeqCst) < n {
                    last = Instant::now();
                } else if last.elapsed() > IDLE {
                    let missing: Vec<usize> =
                        (0..n).filter(|i| !self.received[*i]).take(10).collect();
                    bail!(
                        NAME,
                        "{} received only {} of {n} events (nothing for {} s after publishing ended{note}); first missing: {missing:?}",
                        self.who,
                        self.count,
                        IDLE.as_secs()
                    );
                }
                continue;
            }
            last = Instant::now();
            self.take(&batch)?;
            ack_all(NAME, &*self.store, &self.c, &batch).await?;
        }
        Ok(())
    }
}

async fn run(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic("broadcast").await?;
    let group = unique_group("broadcast");

    // Events before the subscriptions: must never reach the members.
    let pre_set = EventSet::new(&topic, 1, PRE);
    publish_range(NAME, &*store, &pre_set, 0..PRE, 50).await?;
    let pre: Arc<HashSet<EventId>> = Arc::new(pre_set.records.iter().map(|r| r.id).collect());

    let set = Arc::new(EventSet::new(&topic, PUBLISHERS, EVENTS / PUBLISHERS));
    let consumers: Vec<ConsumerRef> = (0..MEMBERS)
        .map(|m| ConsumerRef::broadcasting(topic.clone(), group.clone(), format!("kit-member-{m}")))
        .collect();
    for c in &consumers {
        subscribe(NAME, &*store, c, StartFrom::Latest).await?;
    }
    let published = counter();
    // Publishers and members in one set, so that any failure stops everything at once.
    let mut tasks = JoinSet::new();
    let publishing =
        publish_concurrently(NAME, store.clone(), set.clone(), Some(published.clone()));
    tasks.spawn(async move { publishing.await.map(Some) });

    let fast_done = counter();
    for (m, c) in consumers.iter().enumerate() {
        let mut r = Receiver {
            m,
            who: format!("member {m} ({c})"),
            c: c.clone(),
            store: store.clone(),
            set: set.clone(),
            pre: pre.clone(),
            published: published.clone(),
            received: vec![false; set.len()],
            count: 0,
            order: OrderCheck::default(),
        };
        let fast_done = fast_done.clone();
        tasks.spawn(async move {
            let n = r.set.len();
            match r.m {
                SLOW => {
                    // Stall, holding an un-acked batch, until the others have everything.
                    let held = r.hold_one().await?;
                    while fast_done.load(Ordering::SeqCst) < MEMBERS - 1 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ack_all(NAME, &*r.store, &r.c, &held).await?;
                    r.consume_until(n, "").await?;
                }
                RESUMER => {
                    r.consume_until(n / 3, ", while member 2 was stalled").await?;
                    let before = r.store.cursor_info(&r.c).await.map_err(|e| KitFailure::new(NAME, format!("cursor_info({}) failed: {e}", r.c)))?;
                    // Disconnected until publishing ends, then back with the same identity.
                    while r.published.load(Ordering::SeqCst) < n {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    subscribe(NAME, &*r.store, &r.c, StartFrom::Latest).await?;
                    let after = r.store.cursor_info(&r.c).await.map_err(|e| KitFailure::new(NAME, format!("cursor_info({}) failed: {e}", r.c)))?;
                    ensure!(
                        before.committed == after.committed,
                        NAME,
                        "{}: re-subscribing an existing member cursor moved it: committed {:?} before, {:?} after",
                        r.who,
                        before.committed,
                        after.committed
                    );
                    r.consume_until(n, " and its re-subscribe").await?;
                    fast_done.fetch_add(1, Ordering::SeqCst);
                }
                _ => {
                    r.consume_until(n, ", while member 2 was stalled").await?;
                    fast_done.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(None)
        });
    }
    let offsets = join_all(NAME, &mut tasks)
        .await?
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| KitFailure::new(NAME, "the publishers' result vanished"))?;
    for c in &consumers {
        expect_quiet(
            NAME,
            &*store,
            c,
            Duration::from_millis(300),
            Some(&set),
            "this member received and acked every event",
        )
        .await?;
        expect_settled(NAME, &*store, c, &offsets).await?;
    }
    Ok(())
}
