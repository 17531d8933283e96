//! The state of one dispatcher, kept behind one lock and changed only by short synchronous calls:
//! the members, the events fetched and not yet pushed (`ready`), the in-flight table (event →
//! member, attempt, deadline), and the store operations those changes produce (`ops`).
//!
//! Nothing here awaits: the dispatcher task ([`super::dispatcher`]) calls [`DispatchState::tick`]
//! and hands [`StoreOp`]s to its settler, and the adapters' ack / nack and session closes call in
//! from their own tasks. Events are returned to the store rather than kept here while they wait
//! for a retry: a nack carries the backoff as its delay, so the store's delivery count is the
//! attempt number on every node and an event in backoff survives this node's death.
//!
//! Bounds: `ready` ≤ `prefetch`; in-flight ≤ the members' windows; `ops` ≤ what is held.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventmesh_core::{
    ErrorCode, EventId, EventMeshError, EventRecord, SessionId, SubscriptionType,
};
use eventmesh_storage::{AckToken, Delivery};
use tokio::time::Instant;

use super::endpoint::{DeliveryId, MemberEndpoint, Push, PushKind, SendOutcome};
use super::metrics::DispatchMetrics;
use super::request_reply::{EXT_CORRELATION_ID, EXT_EXPIRES_AT, EXT_REPLY_TO, parse_expires_at};
use super::{ConsumerKey, CoreOptions};

/// A member's id, unique within the core.
pub(crate) type MemberId = u64;

/// How long a member whose channel was full is skipped before it is tried again.
const CLOG_RETRY: Duration = Duration::from_millis(20);
/// The `avoid` map (event → member that last failed it) is cleared beyond this many entries.
const AVOID_CAP: usize = 10_000;

/// One live member of a dispatcher.
pub(crate) struct Member {
    pub(crate) id: MemberId,
    pub(crate) session: SessionId,
    pub(crate) endpoint: MemberEndpoint,
    pub(crate) ty: SubscriptionType,
    /// Preferred last until then (it let a delivery time out).
    isolated_until: Option<Instant>,
    /// Skipped until then (its channel was full).
    clogged_until: Option<Instant>,
}

impl Member {
    pub(crate) fn new(
        id: MemberId,
        session: SessionId,
        endpoint: MemberEndpoint,
        ty: SubscriptionType,
    ) -> Self {
        Member {
            id,
            session,
            endpoint,
            ty,
            isolated_until: None,
            clogged_until: None,
        }
    }
}

/// An event fetched from the store and held by this node.
struct Held {
    token: AckToken,
    attempt: u32,
    record: Arc<EventRecord>,
    /// When its store lease should be extended next.
    lease_due: Instant,
}

struct InFlight {
    held: Held,
    member: MemberId,
    session: SessionId,
    deadline: Instant,
}

/// A store operation produced by a state change, carried out by the dispatcher's settler.
#[derive(Debug)]
pub(crate) enum StoreOp {
    Ack(AckToken),
    Nack {
        token: AckToken,
        delay: Duration,
    },
    Extend(Vec<AckToken>),
    DeadLetter {
        token: AckToken,
        record: Arc<EventRecord>,
        attempts: u32,
    },
}

/// Why a delivery failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Nack,
    Timeout,
}

/// When a refused delivery comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// After the core's backoff for its attempt.
    Backoff,
    /// After this delay, capped at `backoff_max` (a subscriber's `Retry-After`, or the adapter's
    /// jittered backoff).
    After(Duration),
    /// Never: dead-letter it now (the member said it can never take it).
    DeadLetter,
}

/// What the dispatcher should do after a tick.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tick {
    /// How many events to fetch now (0: do not pull).
    pub(crate) want: usize,
    /// When to tick again at the latest.
    pub(crate) wake_at: Option<Instant>,
}

pub(crate) struct DispatchState {
    key: ConsumerKey,
    dispatcher: u32,
    options: Arc<CoreOptions>,
    metrics: Arc<DispatchMetrics>,
    members: Vec<Member>,
    rr: usize,
    ready: VecDeque<Held>,
    inflight: HashMap<u64, InFlight>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_seq: u64,
    ops: Vec<StoreOp>,
    avoid: HashMap<EventId, (MemberId, Instant)>,
    next_lease_scan: Instant,
    /// The (group, topic)'s filter: fetched events it does not match are acked at once.
    pub(crate) filter: Option<Arc<eventmesh_cesql::Expression>>,
    /// Set when the dispatcher must stop (last member gone, or shutdown).
    pub(crate) stopped: bool,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn not_subscribed(delivery: DeliveryId, why: &str) -> EventMeshError {
    EventMeshError::new(
        ErrorCode::NotSubscribed,
        format!("delivery {delivery} {why}"),
    )
}

impl DispatchState {
    pub(crate) fn new(
        key: ConsumerKey,
        dispatcher: u32,
        options: Arc<CoreOptions>,
        metrics: Arc<DispatchMetrics>,
        now: Instant,
    ) -> Self {
        let next_lease_scan = now + options.crash_lease / 4;
        DispatchState {
            key,
            dispatcher,
            options,
            metrics,
            members: Vec::new(),
            rr: 0,
            ready: VecDeque::new(),
            inflight: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_seq: 0,
            ops: Vec::new(),
            avoid: HashMap::new(),
            next_lease_scan,
            filter: None,
            stopped: false,
        }
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn in_flight_len(&self) -> usize {
        self.inflight.len()
    }

    #[cfg(test)]
    fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub(crate) fn add_member(&mut self, member: Member) {
        self.members.push(member);
    }

    /// Removes a member; its in-flight deliveries go back to the store at once (the store counts
    /// the next delivery as a new attempt).
    pub(crate) fn remove_member(&mut self, id: MemberId) -> Option<Member> {
        let pos = self.members.iter().position(|m| m.id == id)?;
        let member = self.members.remove(pos);
        if self.rr > pos {
            self.rr -= 1;
        }
        let mine: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.member == id)
            .map(|(s, _)| *s)
            .collect();
        for seq in mine {
            if let Some(f) = self.inflight.remove(&seq) {
                member.endpoint.release();
                self.metrics.inflight.decrement(1.0);
                self.metrics.redelivered_member_gone.increment(1);
                self.ops.push(StoreOp::Nack {
                    token: f.held.token,
                    delay: Duration::ZERO,
                });
            }
        }
        if !self.members.is_empty() {
            self.rr %= self.members.len();
        }
        Some(member)
    }

    /// Takes fetched events in. Events delivered more than `max_attempts` times (they came back by
    /// the crash lease or a nack) go straight to the dead-letter topic.
    pub(crate) fn accept(&mut self, deliveries: Vec<Delivery>, now: Instant) {
        let lease_due = now + self.options.crash_lease / 2;
        for d in deliveries {
            if let Some(filter) = &self.filter
                && !filter.matches(&d.record.event)
            {
                // Done for the group without delivery (and never dead-lettered).
                self.metrics.filtered.increment(1);
                self.ops.push(StoreOp::Ack(d.token));
                continue;
            }
            let record = Arc::new(d.record);
            if d.delivery_count > self.options.max_attempts {
                let attempts = d.delivery_count - 1;
                self.ops.push(StoreOp::DeadLetter {
                    token: d.token,
                    record,
                    attempts,
                });
            } else {
                self.ready.push_back(Held {
                    token: d.token,
                    attempt: d.delivery_count.max(1),
                    record,
                    lease_due,
                });
            }
        }
    }

    /// The member acked: the event is done.
    pub(crate) fn ack(
        &mut self,
        delivery: DeliveryId,
        session: SessionId,
    ) -> Result<(), EventMeshError> {
        let f = self.take_inflight(delivery, session)?;
        self.metrics.acked.increment(1);
        self.avoid.remove(&f.held.record.id);
        self.ops.push(StoreOp::Ack(f.held.token));
        Ok(())
    }

    /// The member refused the event: redeliver as `retry` says (or dead-letter it once it used
    /// its attempts).
    pub(crate) fn nack(
        &mut self,
        delivery: DeliveryId,
        session: SessionId,
        now: Instant,
        retry: Retry,
    ) -> Result<(), EventMeshError> {
        let f = self.take_inflight(delivery, session)?;
        self.fail(f, Failure::Nack, now, retry);
        Ok(())
    }

    fn take_inflight(
        &mut self,
        delivery: DeliveryId,
        session: SessionId,
    ) -> Result<InFlight, EventMeshError> {
        match self.inflight.get(&delivery.seq) {
            None => {
                return Err(not_subscribed(
                    delivery,
                    "is unknown, already settled or timed out",
                ));
            }
            Some(f) if f.session != session => {
                return Err(not_subscribed(delivery, "belongs to another session"));
            }
            Some(_) => {}
        }
        let f = self
            .inflight
            .remove(&delivery.seq)
            .ok_or_else(|| not_subscribed(delivery, "is unknown"))?;
        if let Some(m) = self.members.iter().find(|m| m.id == f.member) {
            m.endpoint.release();
        }
        self.metrics.inflight.decrement(1.0);
        Ok(f)
    }

    /// A delivery failed (window slot already released): back to the store after the backoff, or
    /// to the dead-letter topic when it has used its attempts.
    fn fail(&mut self, f: InFlight, why: Failure, now: Instant, retry: Retry) {
        let attempt = f.held.attempt;
        if why == Failure::Timeout {
            if let Some(m) = self.members.iter_mut().find(|m| m.id == f.member) {
                m.isolated_until = Some(now + self.options.ack_timeout);
            }
            self.metrics.redelivered_timeout.increment(1);
        } else {
            self.metrics.redelivered_nack.increment(1);
        }
        if self.avoid.len() >= AVOID_CAP {
            self.avoid.clear();
        }
        self.avoid.insert(f.held.record.id, (f.member, now));
        if retry == Retry::DeadLetter {
            tracing::warn!(
                message = "Member refused the event for good; dead-lettering it.",
                group = %self.key.group,
                topic = %self.key.topic,
                event_id = %f.held.record.id,
                attempts = attempt,
            );
            self.ops.push(StoreOp::DeadLetter {
                token: f.held.token,
                record: f.held.record,
                attempts: attempt,
            });
        } else if attempt >= self.options.max_attempts {
            tracing::warn!(
                message = "Event used its attempts; dead-lettering it.",
                group = %self.key.group,
                topic = %self.key.topic,
                event_id = %f.held.record.id,
                attempts = attempt,
            );
            self.ops.push(StoreOp::DeadLetter {
                token: f.held.token,
                record: f.held.record,
                attempts: attempt,
            });
        } else {
            let delay = match retry {
                Retry::After(d) => d.min(self.options.backoff_max),
                _ => self.options.backoff(attempt),
            };
            tracing::debug!(
                message = "Redelivering event after backoff.",
                group = %self.key.group,
                topic = %self.key.topic,
                event_id = %f.held.record.id,
                attempt,
                reason = ?why,
                delay_ms = delay.as_millis() as u64,
            );
            self.ops.push(StoreOp::Nack {
                token: f.held.token,
                delay,
            });
        }
    }

    /// Store operations produced since the last call.
    pub(crate) fn take_ops(&mut self) -> Vec<StoreOp> {
        std::mem::take(&mut self.ops)
    }

    /// Returns everything held (in flight and ready) to the store at once and lets the members
    /// go: on shutdown and when the dispatcher stops.
    pub(crate) fn return_all(&mut self) {
        for (_, f) in self.inflight.drain() {
            if let Some(m) = self.members.iter().find(|m| m.id == f.member) {
                m.endpoint.release();
            }
            self.metrics.inflight.decrement(1.0);
            self.ops.push(StoreOp::Nack {
                token: f.held.token,
                delay: Duration::ZERO,
            });
        }
        self.deadlines.clear();
        for h in self.ready.drain(..) {
            self.ops.push(StoreOp::Nack {
                token: h.token,
                delay: Duration::ZERO,
            });
        }
        // Nothing will be pushed any more: dropping the members' senders lets adapters see their
        // push channels close once no other dispatcher uses them.
        self.members.clear();
    }

    /// Lets the members go without returning anything (the task that would have is gone).
    pub(crate) fn drop_members(&mut self) {
        self.members.clear();
    }

    /// Expires ack timeouts, extends leases, pushes ready events to members with room, and says
    /// how many events to fetch and when to tick again.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        self.expire(now);
        self.extend_leases(now);
        // Members whose adapter went away leave.
        let gone: Vec<MemberId> = self
            .members
            .iter()
            .filter(|m| m.endpoint.is_closed())
            .map(|m| m.id)
            .collect();
        for id in gone {
            self.remove_member(id);
        }
        if self.members.is_empty() {
            // No member: nothing is pulled, and what is held goes back for other nodes.
            for h in self.ready.drain(..) {
                self.ops.push(StoreOp::Nack {
                    token: h.token,
                    delay: Duration::ZERO,
                });
            }
        } else {
            self.assign(now);
        }
        let want = if self.members.is_empty() || self.stopped {
            0
        } else {
            let free: usize = self
                .members
                .iter()
                .filter(|m| m.clogged_until.is_none_or(|t| t <= now))
                .map(|m| m.endpoint.free())
                .sum();
            let room = self.options.prefetch.saturating_sub(self.ready.len());
            room.min(free.saturating_sub(self.ready.len()))
        };
        let mut wake_at = Some(self.next_lease_scan);
        let mut earliest = |t: Instant| wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
        if let Some(Reverse((t, _))) = self.deadlines.peek() {
            earliest(*t);
        }
        for m in &self.members {
            if let Some(t) = m.clogged_until
                && t > now
            {
                earliest(t);
            }
        }
        Tick { want, wake_at }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((deadline, seq))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self
                .inflight
                .get(&seq)
                .is_some_and(|f| f.deadline == deadline)
                && let Some(f) = self.inflight.remove(&seq)
            {
                if let Some(m) = self.members.iter().find(|m| m.id == f.member) {
                    m.endpoint.release();
                }
                self.metrics.inflight.decrement(1.0);
                tracing::info!(
                    message = "Delivery not acked in time; redelivering.",
                    group = %self.key.group,
                    topic = %self.key.topic,
                    delivery = %DeliveryId { dispatcher: self.dispatcher, seq },
                    member = f.member,
                    attempt = f.held.attempt,
                );
                self.fail(f, Failure::Timeout, now, Retry::Backoff);
            }
        }
    }

    fn extend_leases(&mut self, now: Instant) {
        if now < self.next_lease_scan {
            return;
        }
        let scan = self.options.crash_lease / 4;
        self.next_lease_scan = now + scan;
        let horizon = now + scan;
        let next_due = now + self.options.crash_lease / 2;
        let mut tokens = Vec::new();
        let held = self
            .ready
            .iter_mut()
            .chain(self.inflight.values_mut().map(|f| &mut f.held));
        for h in held {
            if h.lease_due <= horizon {
                h.lease_due = next_due;
                tokens.push(h.token.clone());
            }
        }
        if !tokens.is_empty() {
            self.ops.push(StoreOp::Extend(tokens));
        }
        let stale = self.options.backoff_max + self.options.ack_timeout;
        self.avoid
            .retain(|_, (_, at)| now.duration_since(*at) < stale);
    }

    fn assign(&mut self, now: Instant) {
        let wall = wall_ms();
        while let Some(h) = self.ready.pop_front() {
            let avoid = self.avoid.get(&h.record.id).map(|(m, _)| *m);
            let Some(i) = self.choose(avoid, now) else {
                self.ready.push_front(h);
                return;
            };
            let member = &self.members[i];
            let kind = match member.ty {
                SubscriptionType::Async => PushKind::Async,
                SubscriptionType::Sync => request_kind(&h.record),
            };
            if let PushKind::Request {
                expires_at_ms: Some(exp),
                ..
            } = &kind
                && *exp < wall
            {
                // Nobody waits for this request any more.
                member.endpoint.release();
                self.metrics.expired_requests.increment(1);
                tracing::debug!(
                    message = "Dropping an expired request.",
                    group = %self.key.group,
                    topic = %self.key.topic,
                    event_id = %h.record.id,
                );
                self.ops.push(StoreOp::Ack(h.token));
                continue;
            }
            self.next_seq += 1;
            let seq = self.next_seq;
            let delivery = DeliveryId {
                dispatcher: self.dispatcher,
                seq,
            };
            let push = Push {
                delivery,
                group: self.key.group.clone(),
                topic: self.key.topic.clone(),
                mode: self.key.mode,
                kind,
                attempt: h.attempt,
                record: h.record.clone(),
            };
            match member.endpoint.try_send(push) {
                SendOutcome::Sent => {
                    let deadline = now + self.options.ack_timeout;
                    let (member_id, session) = (member.id, member.session);
                    self.avoid.remove(&h.record.id);
                    self.inflight.insert(
                        seq,
                        InFlight {
                            held: h,
                            member: member_id,
                            session,
                            deadline,
                        },
                    );
                    self.deadlines.push(Reverse((deadline, seq)));
                    self.metrics.delivered.increment(1);
                    self.metrics.inflight.increment(1.0);
                }
                SendOutcome::Full => {
                    member.endpoint.release();
                    self.members[i].clogged_until = Some(now + CLOG_RETRY);
                    self.ready.push_front(h);
                }
                SendOutcome::Closed => {
                    member.endpoint.release();
                    let id = member.id;
                    self.remove_member(id);
                    self.ready.push_front(h);
                    if self.members.is_empty() {
                        return;
                    }
                }
            }
        }
    }

    /// Round-robin over members with room: first those neither isolated nor to be avoided for
    /// this event, then isolated ones, then any. Takes the window slot of the one chosen.
    fn choose(&mut self, avoid: Option<MemberId>, now: Instant) -> Option<usize> {
        let n = self.members.len();
        for pass in 0..3 {
            for k in 0..n {
                let i = (self.rr + k) % n;
                let m = &self.members[i];
                if m.clogged_until.is_some_and(|t| t > now) {
                    continue;
                }
                let isolated = m.isolated_until.is_some_and(|t| t > now);
                let avoided = avoid == Some(m.id) && n > 1;
                let eligible = match pass {
                    0 => !isolated && !avoided,
                    1 => !avoided,
                    _ => true,
                };
                if eligible && m.endpoint.try_acquire() {
                    self.rr = (i + 1) % n;
                    return Some(i);
                }
            }
        }
        None
    }
}

/// The push kind of a request event for a SYNC member.
fn request_kind(record: &EventRecord) -> PushKind {
    let e = &record.event;
    PushKind::Request {
        correlation_id: e.extension(EXT_CORRELATION_ID).map(ToString::to_string),
        reply_to: e.extension(EXT_REPLY_TO).map(ToString::to_string),
        expires_at_ms: e.extension(EXT_EXPIRES_AT).and_then(parse_expires_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use eventmesh_core::{CloudEvent, GroupName, SubscriptionMode, Topic};
    use eventmesh_storage::Offset;
    use tokio::sync::mpsc;

    fn state(options: CoreOptions) -> DispatchState {
        let key = ConsumerKey {
            group: GroupName::new("g").unwrap(),
            topic: Topic::new("t").unwrap(),
            mode: SubscriptionMode::Clustering,
        };
        let metrics = Arc::new(DispatchMetrics::new(&key));
        DispatchState::new(key, 1, Arc::new(options), metrics, Instant::now())
    }

    fn delivery(n: u64, count: u32) -> Delivery {
        let topic = Topic::new("t").unwrap();
        Delivery {
            token: AckToken(Bytes::from(n.to_be_bytes().to_vec())),
            offset: Offset {
                partition: 0,
                seq: n,
            },
            delivery_count: count,
            record: EventRecord::new(topic, CloudEvent::new(n.to_string(), "/s", "t")),
        }
    }

    fn member(st: &mut DispatchState, id: u64, window: usize) -> mpsc::Receiver<Push> {
        let (tx, rx) = mpsc::channel(window);
        st.add_member(Member::new(
            id,
            SessionId(id),
            MemberEndpoint::new(tx, window),
            SubscriptionType::Async,
        ));
        rx
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_respects_windows_and_asks_for_room_only() {
        let mut st = state(CoreOptions::default());
        let now = Instant::now();
        assert_eq!(st.tick(now).want, 0, "no member, no pull");
        let mut a = member(&mut st, 1, 2);
        let mut b = member(&mut st, 2, 2);
        assert_eq!(st.tick(now).want, 4);
        st.accept((0..5).map(|n| delivery(n, 1)).collect(), now);
        let t = st.tick(now);
        assert_eq!(t.want, 0, "windows full");
        assert_eq!(st.in_flight_len(), 4);
        assert_eq!(st.ready_len(), 1);
        let pa: Vec<Push> = (0..2).map(|_| a.try_recv().unwrap()).collect();
        let _pb: Vec<Push> = (0..2).map(|_| b.try_recv().unwrap()).collect();
        assert!(a.try_recv().is_err());
        st.ack(pa[0].delivery, SessionId(1)).unwrap();
        assert!(st.ack(pa[0].delivery, SessionId(1)).is_err(), "double ack");
        assert!(
            st.ack(pa[1].delivery, SessionId(2)).is_err(),
            "someone else's delivery"
        );
        st.tick(now);
        assert_eq!(a.try_recv().unwrap().record.event.id, "4");
        assert!(matches!(st.take_ops().as_slice(), [StoreOp::Ack(_)]));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_isolates_and_moves_to_another_member() {
        let mut st = state(CoreOptions::default());
        let now = Instant::now();
        let mut a = member(&mut st, 1, 10);
        let _b = member(&mut st, 2, 10);
        st.accept(vec![delivery(0, 1)], now);
        st.tick(now);
        assert!(a.try_recv().is_ok());
        let later = now + Duration::from_secs(31);
        st.tick(later);
        match st.take_ops().as_slice() {
            [StoreOp::Nack { delay, .. }] => assert_eq!(*delay, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // The store hands it back: it goes to b, never to a.
        st.accept(vec![delivery(0, 2)], later);
        st.tick(later);
        assert!(a.try_recv().is_err());
        assert_eq!(st.inflight.values().next().map(|f| f.member), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn last_attempt_dead_letters_and_over_counted_fetches_too() {
        let mut st = state(CoreOptions {
            max_attempts: 2,
            ..CoreOptions::default()
        });
        let now = Instant::now();
        let mut a = member(&mut st, 1, 10);
        st.accept(vec![delivery(0, 2), delivery(1, 3)], now);
        st.tick(now);
        let p = a.try_recv().unwrap();
        st.nack(p.delivery, SessionId(1), now, Retry::Backoff)
            .unwrap();
        let ops = st.take_ops();
        assert_eq!(ops.len(), 2);
        assert!(
            ops.iter().all(|o| matches!(o, StoreOp::DeadLetter { .. })),
            "{ops:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_member_returns_its_deliveries_at_once() {
        let mut st = state(CoreOptions::default());
        let now = Instant::now();
        let _a = member(&mut st, 1, 10);
        st.accept(vec![delivery(0, 1), delivery(1, 1)], now);
        st.tick(now);
        st.remove_member(1);
        let ops = st.take_ops();
        assert_eq!(ops.len(), 2);
        assert!(
            ops.iter()
                .all(|o| matches!(o, StoreOp::Nack { delay, .. } if delay.is_zero()))
        );
        assert_eq!(st.in_flight_len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn leases_of_held_events_are_extended() {
        let mut st = state(CoreOptions::default());
        let now = Instant::now();
        let _a = member(&mut st, 1, 1);
        st.accept(vec![delivery(0, 1), delivery(1, 1)], now);
        st.tick(now);
        let t = now + Duration::from_secs(30);
        st.tick(t);
        let _ = st.take_ops();
        // The held events are due for extension at crash_lease / 2 = 60 s.
        let t = now + Duration::from_secs(60);
        st.tick(t);
        assert!(
            st.take_ops()
                .iter()
                .any(|o| matches!(o, StoreOp::Extend(t) if t.len() == 1))
        );
    }
}
