//! The deliveries this store handed out whose lease has not ended, to drop the server's duplicate
//! copies of them.
//!
//! nats-server 2.9 (and 2.10 before an April 2024 fix, nats-server pull request 5305) can deliver
//! one message twice when a delivery fails (a pull request's inbox went away, as this store's
//! short-lived pull requests do): it sends the message again as if new, with a delivery count
//! equal to or lower than the copy already out. Handing out both would break the lease: the event
//! would reach a second consumer while the first still holds it. A real redelivery (after a
//! `-NAK` or after `AckWait`) always counts higher, so a copy of an event whose lease still runs
//! and whose count is not higher is such a duplicate and is not handed out; the server's
//! `AckWait` (or the lease keeper's `-NAK` on the held delivery) brings the event back later.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

/// One delivery handed out.
struct Out {
    delivered: u64,
    lease_end: Instant,
}

#[derive(Default)]
struct State {
    /// (consumer, stream sequence) → the latest delivery handed out.
    out: HashMap<(Arc<str>, u64), Out>,
    /// The same entries by lease end, to drop ended ones.
    by_end: BTreeSet<(Instant, Arc<str>, u64)>,
}

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct Held {
    state: Mutex<State>,
}

impl Held {
    /// Whether the delivery `delivered` of stream sequence `seq` may be handed out now, leased
    /// until `lease_end`; records it when it may.
    pub(crate) fn admit(
        &self,
        consumer: &Arc<str>,
        seq: u64,
        delivered: u64,
        now: Instant,
        lease_end: Instant,
    ) -> bool {
        let mut s = self.state.lock();
        s.drop_ended(now);
        let key = (consumer.clone(), seq);
        if let Some(o) = s.out.get(&key)
            && o.lease_end > now
            && delivered <= o.delivered
        {
            return false;
        }
        if let Some(old) = s.out.insert(
            key,
            Out {
                delivered,
                lease_end,
            },
        ) {
            s.by_end.remove(&(old.lease_end, consumer.clone(), seq));
        }
        s.by_end.insert((lease_end, consumer.clone(), seq));
        true
    }

    /// The lease of `seq` now ends at `lease_end` (extended).
    pub(crate) fn extend(&self, consumer: &Arc<str>, seq: u64, lease_end: Instant) {
        let mut s = self.state.lock();
        let key = (consumer.clone(), seq);
        let Some(o) = s.out.get_mut(&key) else {
            return;
        };
        let old = std::mem::replace(&mut o.lease_end, lease_end);
        s.by_end.remove(&(old, consumer.clone(), seq));
        s.by_end.insert((lease_end, consumer.clone(), seq));
    }

    /// The delivery of `seq` was acked or nacked.
    pub(crate) fn release(&self, consumer: &Arc<str>, seq: u64) {
        let mut s = self.state.lock();
        if let Some(o) = s.out.remove(&(consumer.clone(), seq)) {
            s.by_end.remove(&(o.lease_end, consumer.clone(), seq));
        }
    }

    /// Forgets every delivery of `consumer` and of the cursors under it (`consumer/…`).
    pub(crate) fn forget_consumer(&self, consumer: &str) {
        let mut s = self.state.lock();
        let prefix = format!("{consumer}/");
        let mine = |c: &str| c == consumer || c.starts_with(&prefix);
        s.out.retain(|(c, _), _| !mine(c));
        s.by_end.retain(|(_, c, _)| !mine(c));
    }

    /// How many deliveries are held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().out.len()
    }
}

impl State {
    fn drop_ended(&mut self, now: Instant) {
        while let Some((end, c, seq)) = self.by_end.first().cloned() {
            if end > now {
                break;
            }
            self.by_end.pop_first();
            self.out.remove(&(c, seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LEASE: Duration = Duration::from_millis(300);

    #[test]
    fn a_copy_not_counting_higher_within_the_lease_is_a_duplicate() {
        let h = Held::default();
        let c: Arc<str> = Arc::from("S/C");
        let now = Instant::now();
        assert!(h.admit(&c, 7, 2, now, now + LEASE));
        assert!(!h.admit(&c, 7, 2, now, now + LEASE), "same count");
        assert!(
            !h.admit(&c, 7, 1, now, now + LEASE),
            "count going backwards"
        );
        assert!(h.admit(&c, 7, 3, now, now + LEASE), "a real redelivery");
        assert!(h.admit(&c, 8, 1, now, now + LEASE), "another event");
        let other: Arc<str> = Arc::from("S/D");
        assert!(h.admit(&other, 7, 1, now, now + LEASE), "another consumer");
    }

    #[test]
    fn ended_released_and_forgotten_deliveries_are_dropped() {
        let h = Held::default();
        let c: Arc<str> = Arc::from("S/C");
        let now = Instant::now();
        assert!(h.admit(&c, 1, 1, now, now + LEASE));
        assert!(h.admit(&c, 2, 1, now, now + LEASE));
        assert!(h.admit(&c, 3, 1, now, now + LEASE));
        // After the lease ended, the same count may come again (the event was not acked).
        let later = now + LEASE + Duration::from_millis(1);
        assert!(h.admit(&c, 1, 1, later, later + LEASE));
        assert_eq!(h.len(), 1, "the ended leases of 2 and 3 were dropped");
        h.release(&c, 1);
        assert_eq!(h.len(), 0);
        assert!(h.admit(&c, 4, 1, later, later + LEASE));
        h.extend(&c, 4, later + 10 * LEASE);
        assert!(!h.admit(&c, 4, 1, later + 2 * LEASE, later + 3 * LEASE));
        let sub: Arc<str> = Arc::from("S/C/member");
        assert!(h.admit(&sub, 5, 1, later, later + LEASE));
        h.forget_consumer("S/C");
        assert_eq!(h.len(), 0);
    }
}
