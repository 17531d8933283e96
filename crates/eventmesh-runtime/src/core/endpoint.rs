//! What a transport adapter hands the core to receive events: a [`MemberEndpoint`], and what it
//! receives on it: [`Push`]es, each named by a [`DeliveryId`] the adapter acks or nacks.
//!
//! The endpoint owns the member's *window*: the number of pushes it holds un-acked. One endpoint
//! may be given to several subscriptions (a TCP session subscribing to three topics); they then
//! share the window, as the TCP protocol's `unack` is per session. The core never pushes into a
//! full window and never blocks on the channel: a full channel counts as "no room right now".

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use eventmesh_core::{EventRecord, GroupName, SubscriptionMode, Topic};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

/// Names one delivery: one push of one event to one member. Valid until acked, nacked, timed
/// out, or the member leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId {
    pub(crate) dispatcher: u32,
    pub(crate) seq: u64,
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}.{}", self.dispatcher, self.seq)
    }
}

/// How the member should present a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushKind {
    /// Fire-and-forget consumption (ASYNC subscriptions).
    Async,
    /// A request the member answers with `Core::reply` (SYNC subscriptions). The fields come from
    /// the event's `correlationid`, `replyto` and `expiresat` extensions, when it has them.
    Request {
        /// The request's correlation id.
        correlation_id: Option<String>,
        /// The requester's node id.
        reply_to: Option<String>,
        /// When the requester stops waiting (Unix milliseconds).
        expires_at_ms: Option<i64>,
    },
}

/// One event handed to one member.
#[derive(Clone, Debug)]
pub struct Push {
    /// Ack or nack with this id.
    pub delivery: DeliveryId,
    /// The consumer group the member belongs to.
    pub group: GroupName,
    /// The topic the event was published to.
    pub topic: Topic,
    /// The subscription's mode (TCP pushes BROADCASTING events with a different command).
    pub mode: SubscriptionMode,
    /// Async or request.
    pub kind: PushKind,
    /// Which delivery of this event this is (1 for the first).
    pub attempt: u32,
    /// The stored event.
    pub record: Arc<EventRecord>,
}

/// What became of a push handed to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    Sent,
    /// The channel is full: the member has no room right now.
    Full,
    /// The adapter dropped its receiver: the member is gone.
    Closed,
}

/// A member's receiving end: a bounded channel sender and a window of un-acked pushes.
/// Cheap to clone; clones share the window.
#[derive(Clone)]
pub struct MemberEndpoint {
    shared: Arc<EndpointShared>,
}

struct EndpointShared {
    tx: mpsc::Sender<Push>,
    window: usize,
    in_flight: AtomicUsize,
    /// Dispatchers to wake when a full window gets room.
    waiters: Mutex<Vec<Weak<Notify>>>,
}

impl fmt::Debug for MemberEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberEndpoint")
            .field("window", &self.shared.window)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl MemberEndpoint {
    /// An endpoint pushing into `tx` with at most `window` un-acked pushes. The window is clamped
    /// to 1 ..= the channel's capacity, so a push never waits for channel room.
    pub fn new(tx: mpsc::Sender<Push>, window: usize) -> Self {
        let window = window.clamp(1, tx.max_capacity());
        MemberEndpoint {
            shared: Arc::new(EndpointShared {
                tx,
                window,
                in_flight: AtomicUsize::new(0),
                waiters: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The window (un-acked pushes allowed).
    pub fn window(&self) -> usize {
        self.shared.window
    }

    /// Pushes currently un-acked.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Whether the adapter dropped its receiver.
    pub fn is_closed(&self) -> bool {
        self.shared.tx.is_closed()
    }

    /// Room left in the window.
    pub(crate) fn free(&self) -> usize {
        self.shared.window.saturating_sub(self.in_flight())
    }

    /// Takes one window slot, if there is one.
    pub(crate) fn try_acquire(&self) -> bool {
        let window = self.shared.window;
        self.shared
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < window).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a window slot back; wakes the dispatchers sharing this endpoint when it was full.
    pub(crate) fn release(&self) {
        let before = self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "window slot released twice");
        if before >= self.shared.window {
            for w in self.shared.waiters.lock().iter() {
                if let Some(n) = w.upgrade() {
                    n.notify_one();
                }
            }
        }
    }

    /// Hands `push` to the adapter without waiting; a refused push is dropped.
    pub(crate) fn try_send(&self, push: Push) -> SendOutcome {
        match self.shared.tx.try_send(push) {
            Ok(()) => SendOutcome::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => SendOutcome::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Closed,
        }
    }

    pub(crate) fn register(&self, notify: &Arc<Notify>) {
        let mut w = self.shared.waiters.lock();
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(notify));
    }

    pub(crate) fn unregister(&self, notify: &Arc<Notify>) {
        let target = Arc::downgrade(notify);
        self.shared
            .waiters
            .lock()
            .retain(|x| x.strong_count() > 0 && !x.ptr_eq(&target));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_shared_and_clamped() {
        let (tx, _rx) = mpsc::channel(4);
        let e = MemberEndpoint::new(tx, 100);
        assert_eq!(e.window(), 4);
        let e2 = e.clone();
        for _ in 0..4 {
            assert!(e.try_acquire());
        }
        assert!(!e2.try_acquire());
        e2.release();
        assert_eq!(e.free(), 1);
    }

    #[tokio::test]
    async fn release_of_a_full_window_wakes_waiters() {
        let (tx, _rx) = mpsc::channel(1);
        let e = MemberEndpoint::new(tx, 1);
        let n = Arc::new(Notify::new());
        e.register(&n);
        assert!(e.try_acquire());
        e.release();
        // The permit was stored.
        n.notified().await;
        e.unregister(&n);
        assert!(e.shared.waiters.lock().is_empty());
    }
}
