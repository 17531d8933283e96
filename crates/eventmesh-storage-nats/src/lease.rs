//! The lease keeper: makes each delivery's lease the one its fetch asked for.
//!
//! JetStream knows one lease per consumer, its `AckWait` (here: the crash lease,
//! [`NatsOptions::ack_wait`](crate::NatsOptions::ack_wait)). A fetch may ask for another one, so
//! while the store is open it tracks each delivery it handed out:
//!
//! * a lease clearly shorter than what the server grants (`AckWait` from the fetch) ends with a
//!   `-NAK` sent by the keeper when the lease is over: the event is fetchable again at once,
//!   its delivery count increased by the server;
//! * a lease longer than `AckWait` is kept alive with `+WPI` (in progress), each resetting the
//!   server's timer, the last one sent `AckWait` before the lease ends, so that the server
//!   itself hands the event out again right when the lease is over;
//! * a lease about as long as `AckWait` (the runtime's case) needs nothing: the server alone
//!   redelivers when it ends.
//!
//! Acks, nacks, seeks and unsubscribes remove a delivery's entry. If the process dies, nothing
//! more is sent and the server redelivers after `AckWait`: the crash lease. A `-NAK` is sent only
//! while the server still counts the delivery as the current one (the server's timer cannot have
//! run out before the lease: it was started, or restarted by a `+WPI`, at least a tenth of
//! `AckWait` later than the lease ends), so a late keeper never takes an event from its next
//! holder.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Nak,
    Progress,
}

struct Entry {
    /// The stream/consumer the delivery belongs to.
    consumer: Arc<str>,
    /// When the lease ends.
    deadline: Instant,
    /// The pending action and when.
    due: (Instant, u64),
    action: Action,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    queue: BTreeMap<(Instant, u64), String>,
    seq: u64,
    closed: bool,
}

struct Inner {
    client: Client,
    ack_wait: Duration,
    state: Mutex<State>,
    wake: Notify,
}

/// Tracks the leases of the deliveries this store handed out (see the module docs).
#[derive(Clone)]
pub(crate) struct Leases {
    inner: Arc<Inner>,
}

impl Leases {
    /// A keeper sending its `-NAK`s and `+WPI`s through `client`; its task runs until
    /// [`Leases::close`].
    pub(crate) fn start(client: Client, ack_wait: Duration) -> Self {
        let inner = Arc::new(Inner {
            client,
            ack_wait,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        tokio::spawn(run(inner.clone()));
        Leases { inner }
    }

    /// A delivery handed out by a fetch that began at `started`, leased for `lease`.
    pub(crate) fn track(
        &self,
        reply: &str,
        consumer: &Arc<str>,
        started: Instant,
        lease: Duration,
    ) {
        let server_expiry = started + self.inner.ack_wait;
        self.put(reply, consumer, started + lease, server_expiry, started);
    }

    /// A `+WPI` for this delivery was just sent at `sent`; its lease now ends `lease` after it.
    pub(crate) fn extended(
        &self,
        reply: &str,
        consumer: &Arc<str>,
        sent: Instant,
        lease: Duration,
    ) {
        let server_expiry = sent + self.inner.ack_wait;
        self.put(reply, consumer, sent + lease, server_expiry, sent);
    }

    /// The delivery was acked or nacked: nothing more to do for it.
    pub(crate) fn release(&self, reply: &str) {
        let mut s = self.inner.state.lock();
        if let Some(e) = s.entries.remove(reply) {
            s.queue.remove(&e.due);
        }
    }

    /// Forgets every delivery of a consumer (it was deleted or moved).
    pub(crate) fn forget_consumer(&self, consumer: &str) {
        let mut s = self.inner.state.lock();
        let gone: Vec<String> = s
            .entries
            .iter()
            .filter(|(_, e)| {
                &*e.consumer == consumer || e.consumer.starts_with(&format!("{consumer}/"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = s.entries.remove(&k) {
                s.queue.remove(&e.due);
            }
        }
    }

    /// Stops the keeper; the server's `AckWait` takes over for what it held.
    pub(crate) fn close(&self) {
        let mut s = self.inner.state.lock();
        s.closed = true;
        s.entries.clear();
        s.queue.clear();
        drop(s);
        self.inner.wake.notify_one();
    }

    fn put(
        &self,
        reply: &str,
        consumer: &Arc<str>,
        deadline: Instant,
        server_expiry: Instant,
        now: Instant,
    ) {
        let Some((at, action)) = plan(deadline, server_expiry, now, self.inner.ack_wait) else {
            self.release(reply);
            return;
        };
        let mut s = self.inner.state.lock();
        if s.closed {
            return;
        }
        if let Some(old) = s.entries.remove(reply) {
            s.queue.remove(&old.due);
        }
        s.seq += 1;
        let due = (at, s.seq);
        s.queue.insert(due, reply.to_owned());
        s.entries.insert(
            reply.to_owned(),
            Entry {
                consumer: consumer.clone(),
                deadline,
                due,
                action,
            },
        );
        let first = s.queue.first_key_value().map(|(k, _)| *k) == Some(due);
        drop(s);
        if first {
            self.inner.wake.notify_one();
        }
    }
}

/// What to do next for a lease ending at `deadline` while the server's timer runs out no earlier
/// than `server_expiry`; `None`: nothing (the server redelivers at about the right time).
fn plan(
    deadline: Instant,
    server_expiry: Instant,
    now: Instant,
    ack_wait: Duration,
) -> Option<(Instant, Action)> {
    let margin = ack_wait / 10;
    if server_expiry >= deadline {
        if server_expiry - deadline > margin {
            Some((deadline, Action::Nak))
        } else {
            None
        }
    } else {
        // Keep the event alive: before the server's timer runs out, and the last time exactly
        // AckWait before the lease ends.
        let early = server_expiry.checked_sub(ack_wait / 4).unwrap_or(now);
        let last = deadline.checked_sub(ack_wait).unwrap_or(now);
        Some((early.min(last).max(now), Action::Progress))
    }
}

async fn run(inner: Arc<Inner>) {
    loop {
        let notified = inner.wake.notified();
        let next = {
            let s = inner.state.lock();
            if s.closed {
                return;
            }
            s.queue.first_key_value().map(|(k, _)| k.0)
        };
        match next {
            None => notified.await,
            Some(at) if at > Instant::now() => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            Some(_) => {}
        }
        let now = Instant::now();
        let mut due: Vec<(String, Action)> = Vec::new();
        {
            let mut s = inner.state.lock();
            while let Some((&(at, seq), _)) = s.queue.first_key_value() {
                if at > now {
                    break;
                }
                let Some(reply) = s.queue.remove(&(at, seq)) else {
                    break;
                };
                let Some(e) = s.entries.remove(&reply) else {
                    continue;
                };
                if e.action == Action::Progress {
                    // Re-plan from the progress about to be sent.
                    let server_expiry = now + inner.ack_wait;
                    if let Some((at, action)) = plan(e.deadline, server_expiry, now, inner.ack_wait)
                    {
                        s.seq += 1;
                        let key = (at, s.seq);
                        s.queue.insert(key, reply.clone());
                        s.entries.insert(
                            reply.clone(),
                            Entry {
                                due: key,
                                action,
                                ..e
                            },
                        );
                    }
                }
                due.push((reply, e.action));
            }
        }
        for (reply, action) in due {
            let body = match action {
                Action::Nak => Bytes::from_static(b"-NAK"),
                Action::Progress => Bytes::from_static(b"+WPI"),
            };
            if let Err(error) = inner.client.publish(reply.clone(), body).await {
                tracing::warn!(
                    message = "Lease keeper could not reach NATS; the server's AckWait applies.",
                    %error,
                    action = ?action,
                    ack_subject = %reply
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn short_leases_end_with_a_nak_at_their_deadline() {
        let now = Instant::now();
        let p = plan(now + S / 2, now + 30 * S, now, 30 * S);
        assert_eq!(p, Some((now + S / 2, Action::Nak)));
    }

    #[test]
    fn leases_about_as_long_as_ack_wait_need_nothing() {
        let now = Instant::now();
        assert_eq!(plan(now + 30 * S, now + 30 * S, now, 30 * S), None);
        assert_eq!(plan(now + 29 * S, now + 30 * S, now, 30 * S), None);
    }

    #[test]
    fn long_leases_are_kept_alive_with_progress() {
        let now = Instant::now();
        // 100 s lease, 10 s AckWait: first progress before the server's timer runs out.
        let (at, a) = plan(now + 100 * S, now + 10 * S, now, 10 * S).unwrap();
        assert_eq!(a, Action::Progress);
        assert!(at <= now + 10 * S - S * 10 / 4 && at >= now);
        // Near the end: the last progress is sent AckWait before the deadline.
        let (at, a) = plan(now + 12 * S, now + 10 * S, now, 10 * S).unwrap();
        assert_eq!((at, a), (now + 2 * S, Action::Progress));
        // After it, the server's timer ends with the lease: nothing more.
        assert_eq!(plan(now + 12 * S, now + 12 * S, now + 2 * S, 10 * S), None);
    }
}
