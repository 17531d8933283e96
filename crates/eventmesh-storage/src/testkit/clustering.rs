//! Scenario 2: three members share one CLUSTERING cursor; nacks, a dropped member, no
//! redelivery after ack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::support::{
    Background, CLOCK_SLACK, Ctx, EventSet, IDLE, expect_quiet, expect_settled, fetch, lock,
    publish_concurrently, subscribe, unique_group,
};
use super::{EVENTS, KitFailure, MEMBERS, NACK_EVERY, PUBLISHERS, StoreFactory};
use crate::{ConsumerRef, Delivery, EventStore, Offset, StartFrom};

pub(crate) const NAME: &str = "clustering_shared_cursor";

/// The lease live members take: long enough that they always ack in time.
const LIVE_LEASE: Duration = Duration::from_secs(1);
/// The lease of the batch the dropped member abandons.
const DROP_LEASE: Duration = Duration::from_millis(400);
/// The delay of each nack.
const NACK_DELAY: Duration = Duration::from_millis(30);
const FETCH_MAX: usize = 64;
const POLL: Duration = Duration::from_millis(100);
/// Events whose number is this modulo [`NACK_EVERY`] are nacked on their first delivery.
const NACK_RESIDUE: usize = 7;
/// The member that drops out.
const DROPPER: usize = MEMBERS - 1;
/// It drops out once this many events are acked.
const DROP_AFTER: usize = EVENTS / 5;

/// Scenario 2: 3 members on one CLUSTERING cursor, 10% nacks, one member dropped mid-stream.
/// See the [module docs](super) for the exact assertions.
pub async fn clustering_shared_cursor(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx)).await;
    ctx.finish(r).await
}

#[derive(Clone, Copy)]
struct Hold {
    member: usize,
    until: Instant,
}

#[derive(Default)]
struct Ev {
    /// Deliveries the kit has seen.
    seen: u32,
    last_count: u32,
    /// The serial of the latest delivery.
    serial: u64,
    offset: Option<Offset>,
    /// The latest delivery, while not released by a nack or an ack.
    hold: Option<Hold>,
    /// The tick at which an ack of the latest delivery returned.
    acked_tick: Option<u64>,
    acked_by: usize,
    acked_any: bool,
    nacked_at_seen: Option<u32>,
    abandoned_at_seen: Option<u32>,
}

struct FetchStart {
    tick: u64,
    /// Per partition, the highest first-delivered seq of fetches registered before this began.
    floor: HashMap<u32, u64>,
    at: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    Nack,
}

struct Tracker {
    set: Arc<EventSet>,
    evs: Vec<Ev>,
    tick: u64,
    serial: u64,
    first_max: HashMap<u32, u64>,
    acked: usize,
    nacks: usize,
    abandoned: usize,
    deliveries: usize,
}

impl Tracker {
    fn start(&mut self) -> FetchStart {
        self.tick += 1;
        FetchStart {
            tick: self.tick,
            floor: self.first_max.clone(),
            at: Instant::now(),
        }
    }

    fn fetched(
        &mut self,
        member: usize,
        start: &FetchStart,
        lease: Duration,
        batch: &[Delivery],
    ) -> Result<Vec<(usize, u64, Action)>, KitFailure> {
        let now = Instant::now();
        let who = format!("member {member}");
        let mut out = Vec::with_capacity(batch.len());
        let mut batch_first: HashMap<u32, u64> = HashMap::new();
        for d in batch {
            let idx = self.set.lookup(NAME, &who, d)?;
            let ev = &mut self.evs[idx];
            if let Some(t) = ev.acked_tick {
                ensure!(
                    t > start.tick,
                    NAME,
                    "event #{idx} (offset {}) delivered again to member {member} with delivery_count {} after member {}'s ack of it had returned: an acked event must never be delivered again",
                    d.offset,
                    d.delivery_count,
                    ev.acked_by
                );
            }
            if let Some(h) = ev.hold {
                ensure!(
                    now + CLOCK_SLACK >= h.until,
                    NAME,
                    "event #{idx} (offset {}) handed to member {member} with delivery_count {} while member {}'s lease on it had at least {} ms left (not acked, not nacked)",
                    d.offset,
                    d.delivery_count,
                    h.member,
                    (h.until - now).as_millis()
                );
            }
            match ev.offset {
                Some(o) => ensure!(
                    o == d.offset,
                    NAME,
                    "event #{idx} delivered at offset {} after being delivered at {o}",
                    d.offset
                ),
                None => ev.offset = Some(d.offset),
            }
            if ev.seen == 0 {
                ensure!(
                    d.delivery_count == 1,
                    NAME,
                    "first delivery of event #{idx} (offset {}, to member {member}) has delivery_count {}; expected 1",
                    d.offset,
                    d.delivery_count
                );
            } else {
                ensure!(
                    d.delivery_count > ev.last_count,
                    NAME,
                    "event #{idx} (offset {}) delivered to member {member} with delivery_count {} after a delivery with count {}: counts must increase",
                    d.offset,
                    d.delivery_count,
                    ev.last_count
                );
            }
            if d.delivery_count == 1 {
                let (p, seq) = (d.offset.partition, d.offset.seq);
                if let Some(&f) = start.floor.get(&p) {
                    ensure!(
                        seq > f,
                        NAME,
                        "event #{idx} first delivered (to member {member}) at offset {} although offset {p}:{f} was first delivered by a fetch that returned before this one began",
                        d.offset
                    );
                }
                if let Some(&b) = batch_first.get(&p) {
                    ensure!(
                        seq > b,
                        NAME,
                        "event #{idx} first delivered at offset {} after offset {p}:{b} in the same fetch",
                        d.offset
                    );
                }
                batch_first.insert(p, seq);
            }
            self.serial += 1;
            ev.seen += 1;
            ev.last_count = d.delivery_count;
            ev.serial = self.serial;
            ev.hold = Some(Hold {
                member,
                until: start.at + lease,
            });
            self.deliveries += 1;
            let action = if d.delivery_count == 1 && idx % NACK_EVERY == NACK_RESIDUE {
                Action::Nack
            } else {
                Action::Ack
            };
            out.push((idx, self.serial, action));
        }
        for (p, s) in batch_first {
            let m = self.first_max.entry(p).or_insert(s);
            *m = (*m).max(s);
        }
        Ok(out)
    }

    fn releasing(&mut self, idx: usize, serial: u64) {
        let ev = &mut self.evs[idx];
        if ev.serial == serial {
            ev.hold = None;
            ev.nacked_at_seen = Some(ev.seen);
            self.nacks += 1;
        }
    }

    fn abandon(&mut self, held: &[(usize, u64, Action)]) {
        for &(idx, _, _) in held {
            let ev = &mut self.evs[idx];
            ev.abandoned_at_seen = Some(ev.seen);
            self.abandoned += 1;
        }
    }

    fn acked(&mut self, member: usize, acks: &[(usize, u64)]) {
        self.tick += 1;
        for &(idx, serial) in acks {
            let ev = &mut self.evs[idx];
            if !ev.acked_any {
                ev.acked_any = true;
                self.acked += 1;
            }
            // An ack with a token of an older delivery (after a lease ran out) proves nothing
            // about the newer one.
            if ev.serial == serial {
                ev.acked_tick.get_or_insert(self.tick);
                ev.acked_by = member;
                ev.hold = None;
            }
        }
    }

    fn done(&self) -> bool {
        self.acked == self.evs.len()
    }

    fn describe_missing(&self) -> String {
        let missing: Vec<String> = self
            .evs
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.acked_any)
            .take(8)
            .map(|(i, e)| {
                format!(
                    "#{i} (seen {} times, last count {}, nacked {}, abandoned {})",
                    e.seen,
                    e.last_count,
                    e.nacked_at_seen.is_some(),
                    e.abandoned_at_seen.is_some()
                )
            })
            .collect();
        format!(
            "{} of {} events not acked; first: {}",
            self.evs.len() - self.acked,
            self.evs.len(),
            missing.join(", ")
        )
    }
}

async fn member(
    m: usize,
    store: Arc<dyn EventStore>,
    c: ConsumerRef,
    tracker: Arc<Mutex<Tracker>>,
    stop: Arc<AtomicBool>,
) -> Result<(), KitFailure> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (done, dropping) = {
            let t = lock(&tracker);
            (t.done(), m == DROPPER && t.acked >= DROP_AFTER)
        };
        if done {
            return Ok(());
        }
        let lease = if dropping { DROP_LEASE } else { LIVE_LEASE };
        let start = lock(&tracker).start();
        let batch = fetch(NAME, &*store, &c, FETCH_MAX, lease, POLL).await?;
        if batch.is_empty() {
            continue;
        }
        let actions = lock(&tracker).fetched(m, &start, lease, &batch)?;
        if dropping {
            // Drop out mid-stream holding this batch: it must come back to the others.
            lock(&tracker).abandon(&actions);
            return Ok(());
        }
        let mut acks = Vec::with_capacity(batch.len());
        let mut tokens = Vec::with_capacity(batch.len());
        for (d, &(idx, serial, action)) in batch.iter().zip(&actions) {
            match action {
                Action::Nack => {
                    lock(&tracker).releasing(idx, serial);
                    store.nack(&c, &d.token, NACK_DELAY).await.map_err(|e| {
                        KitFailure::new(
                            NAME,
                            format!("member {m}: nack of event #{idx} failed: {e}"),
                        )
                    })?;
                }
                Action::Ack => {
                    acks.push((idx, serial));
                    tokens.push(d.token.clone());
                }
            }
        }
        if !tokens.is_empty() {
            store.ack(&c, &tokens).await.map_err(|e| {
                KitFailure::new(
                    NAME,
                    format!("member {m}: ack of {} tokens failed: {e}", tokens.len()),
                )
            })?;
            lock(&tracker).acked(m, &acks);
        }
    }
}

async fn run(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    let topic = ctx.new_topic("clustering").await?;
    let c = ConsumerRef::clustering(topic.clone(), unique_group("clustering"));
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    let set = Arc::new(EventSet::new(&topic, PUBLISHERS, EVENTS / PUBLISHERS));
    let tracker = Arc::new(Mutex::new(Tracker {
        set: set.clone(),
        evs: (0..set.len()).map(|_| Ev::default()).collect(),
        tick: 0,
        serial: 0,
        first_max: HashMap::new(),
        acked: 0,
        nacks: 0,
        abandoned: 0,
        deliveries: 0,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = JoinSet::new();
    for m in 0..MEMBERS {
        members.spawn(member(
            m,
            store.clone(),
            c.clone(),
            tracker.clone(),
            stop.clone(),
        ));
    }
    let mut publishing = Background::spawn(
        NAME,
        publish_concurrently(NAME, store.clone(), set.clone(), None),
    );

    // Watch progress while the members run: after publishing, deliveries must keep coming.
    let mut published = false;
    let mut last = (0usize, Instant::now());
    let outcome: Result<(), KitFailure> = loop {
        tokio::select! {
            joined = members.join_next() => match joined {
                None => break Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(failure))) => break Err(failure),
                Some(Err(e)) => break Err(KitFailure::new(NAME, format!("a member task panicked: {e}"))),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if !published && publishing.poll()? {
                    published = true;
                    last.1 = Instant::now();
                }
                let t = lock(&tracker);
                if t.deliveries != last.0 {
                    last = (t.deliveries, Instant::now());
                } else if published && last.1.elapsed() > IDLE {
                    break Err(KitFailure::new(NAME, format!(
                        "nothing was delivered to any member for {} s: {}",
                        IDLE.as_secs(),
                        t.describe_missing()
                    )));
                }
            }
        }
    };
    stop.store(true, Ordering::SeqCst);
    if outcome.is_err() {
        members.abort_all();
    }
    outcome?;
    let offsets = publishing.finish().await?;

    {
        let t = lock(&tracker);
        ensure!(
            t.done(),
            NAME,
            "the members stopped early: {}",
            t.describe_missing()
        );
        ensure!(
            t.abandoned > 0,
            NAME,
            "the dropped member never got a batch to abandon"
        );
        ensure!(t.nacks > 0, NAME, "no event was nacked");
        for (idx, ev) in t.evs.iter().enumerate() {
            ensure!(
                ev.offset == Some(offsets[idx]),
                NAME,
                "event #{idx}: publish returned offset {}, fetch reported {:?}",
                offsets[idx],
                ev.offset
            );
            if let Some(s) = ev.nacked_at_seen {
                ensure!(
                    ev.seen > s,
                    NAME,
                    "event #{idx} was nacked and never delivered again"
                );
            }
            if let Some(s) = ev.abandoned_at_seen {
                ensure!(
                    ev.seen > s,
                    NAME,
                    "event #{idx}, held by the dropped member, never came back after its lease"
                );
            }
        }
    }
    expect_quiet(
        NAME,
        &*store,
        &c,
        LIVE_LEASE + Duration::from_millis(300),
        Some(&set),
        "every event was acked (waiting one lease for stray redeliveries)",
    )
    .await?;
    expect_settled(NAME, &*store, &c, &offsets).await
}
