//! A pusher: one core member (a session, an endpoint whose window is the subscription's maximum
//! in-flight pushes) and the task that POSTs its pushes to subscriber URLs.
//!
//! CLUSTERING: one pusher per (group, topic) on this node; each push goes to one of the group's
//! URLs, round-robin over the healthy ones (a URL failing `unhealthy_after` pushes in a row is
//! skipped for `unhealthy_for` while another is healthy). BROADCASTING: one pusher per URL, with
//! its own store cursor (named by the URL), window and retries.
//!
//! The task takes a push from the core, waits for the subscription's pace (pushes per second),
//! then runs the push concurrently with the others (at most the window). The answer decides
//! (see `answer`): ack, `nack_after` (the core's backoff with jitter, or `Retry-After`), or
//! `dead_letter`. On stop, pushes in progress finish (up to the push timeout), the session
//! closes, and anything unanswered goes back to the store through the core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::Uri;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::answer::{self, Outcome};
use super::client::{PushClient, PushError};
use super::format::{self, Instance, PushFormat};
use crate::core::{Core, Push, SessionHandle};
use crate::server::http::metrics;

/// One subscriber URL and its health.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) uri: Uri,
    pub(crate) format: Mutex<PushFormat>,
    failures: AtomicU32,
    unhealthy_until: Mutex<Option<Instant>>,
}

impl Target {
    pub(crate) fn new(url: String, uri: Uri, format: PushFormat) -> Arc<Self> {
        Arc::new(Target {
            url,
            uri,
            format: Mutex::new(format),
            failures: AtomicU32::new(0),
            unhealthy_until: Mutex::new(None),
        })
    }

    fn healthy(&self, now: Instant) -> bool {
        self.unhealthy_until.lock().is_none_or(|t| t <= now)
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        *self.unhealthy_until.lock() = None;
    }

    fn failed(&self, now: Instant, after: u32, skip_for: Duration) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= after {
            let mut u = self.unhealthy_until.lock();
            if u.is_none_or(|t| t <= now) {
                info!(message = "Webhook URL failing; skipping it for a while.", url = %self.url, failures = n, skip_ms = skip_for.as_millis() as u64);
            }
            *u = Some(now + skip_for);
        }
    }
}

/// The URLs one pusher sends to.
#[derive(Default)]
pub(crate) struct Targets {
    list: RwLock<Vec<Arc<Target>>>,
    rr: AtomicUsize,
}

impl Targets {
    pub(crate) fn add(&self, t: Arc<Target>) {
        let mut l = self.list.write();
        if !l.iter().any(|x| x.url == t.url) {
            l.push(t);
        }
    }

    pub(crate) fn get(&self, url: &str) -> Option<Arc<Target>> {
        self.list.read().iter().find(|t| t.url == url).cloned()
    }

    pub(crate) fn remove(&self, url: &str) {
        self.list.write().retain(|t| t.url != url);
    }

    /// Round-robin over healthy URLs; over all when none is healthy.
    pub(crate) fn choose(&self, now: Instant) -> Option<Arc<Target>> {
        let l = self.list.read();
        let n = l.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &l[(start + k) % n])
            .find(|t| t.healthy(now))
            .or_else(|| l.get(start % n))
            .cloned()
    }
}

/// What every push of a node shares.
pub(crate) struct PushEnv {
    pub(crate) core: Arc<Core>,
    pub(crate) client: PushClient,
    pub(crate) instance: Instance,
    pub(crate) push_timeout: Duration,
    pub(crate) unhealthy_after: u32,
    pub(crate) unhealthy_for: Duration,
}

/// A running pusher, as the manager holds it.
pub(crate) struct PusherHandle {
    pub(crate) cancel: CancellationToken,
    /// Delete the member's store cursor when stopping (an explicit BROADCASTING unsubscribe).
    pub(crate) delete_cursor: Arc<AtomicBool>,
}

impl PusherHandle {
    pub(crate) fn stop(&self, delete_cursor: bool) {
        self.delete_cursor.store(delete_cursor, Ordering::Release);
        self.cancel.cancel();
    }
}

/// Paces pushes at `rate` per second (0: no pacing).
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate: u32) -> Self {
        Pacer {
            interval: (rate > 0).then(|| Duration::from_secs(1) / rate),
            next: Instant::now(),
        }
    }

    /// When the next push may start (None: now).
    fn slot(&mut self) -> Option<Instant> {
        let interval = self.interval?;
        let now = Instant::now();
        let at = self.next.max(now);
        self.next = at + interval;
        (at > now).then_some(at)
    }
}

/// Everything one pusher task owns.
pub(crate) struct Pusher {
    pub(crate) env: Arc<PushEnv>,
    pub(crate) session: Arc<SessionHandle>,
    pub(crate) rx: mpsc::Receiver<Push>,
    pub(crate) targets: Arc<Targets>,
    pub(crate) rate: u32,
    pub(crate) cancel: CancellationToken,
    pub(crate) delete_cursor: Arc<AtomicBool>,
    pub(crate) group: eventmesh_core::GroupName,
    pub(crate) topic: eventmesh_core::Topic,
}

impl Pusher {
    pub(crate) async fn run(self) {
        let Pusher {
            env,
            session,
            mut rx,
            targets,
            rate,
            cancel,
            delete_cursor,
            group,
            topic,
        } = self;
        let mut pacer = Pacer::new(rate);
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Err(e) = done && e.is_panic() {
                        warn!(message = "A webhook push panicked.", error = %e, group = %group, topic = %topic);
                    }
                }
                push = rx.recv() => {
                    let Some(push) = push else {
                        // The core let the member go (shutdown).
                        break;
                    };
                    if let Some(at) = pacer.slot() {
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep_until(at) => {}
                        }
                    }
                    running.spawn(attempt(env.clone(), session.clone(), targets.clone(), push));
                }
            }
        }
        // Pushes in progress finish; whatever is still unanswered goes back with the session.
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(env.push_timeout + Duration::from_secs(1), drain)
            .await
            .is_err()
        {
            running.abort_all();
        }
        drop(rx);
        if delete_cursor.load(Ordering::Acquire)
            && let Err(error) = env.core.unsubscribe(&session, &group, &topic).await
        {
            debug!(message = "Failed to unsubscribe a webhook member.", %error, group = %group, topic = %topic);
        }
        session.close();
        debug!(message = "Webhook pusher stopped.", group = %group, topic = %topic);
    }
}

/// Equal jitter: half the backoff, plus a random part of the other half.
fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    let extra = half.mul_f64(rand::random::<f64>());
    half + extra
}

/// One push attempt and what the core is told about it.
async fn attempt(
    env: Arc<PushEnv>,
    session: Arc<SessionHandle>,
    targets: Arc<Targets>,
    push: Push,
) {
    let started = Instant::now();
    let backoff = || jittered(env.core.options().backoff(push.attempt));
    let Some(target) = targets.choose(started) else {
        // Every URL went away while this push was on its way: try again later.
        let _ = env.core.nack_after(&session, push.delivery, backoff());
        return;
    };
    let format = *target.format.lock();
    let outcome = match format::request(&push, format, &target.uri, &env.instance) {
        Err(error) => {
            warn!(message = "Cannot build a webhook push; dead-lettering the event.", %error, url = %target.url, event_id = %push.record.id);
            (Outcome::DeadLetter, "unencodable")
        }
        Ok(req) => match tokio::time::timeout(env.push_timeout, env.client.send(req)).await {
            Ok(Ok(answer)) => answer::classify(&answer),
            Ok(Err(PushError::Denied(why))) => {
                warn!(message = "Webhook push refused by the deny list.", url = %target.url, error = %why);
                (Outcome::Retry(None), "denied")
            }
            Ok(Err(error)) => {
                debug!(message = "Webhook push failed.", url = %target.url, %error);
                (Outcome::Retry(None), "connection")
            }
            Err(_) => (Outcome::Retry(None), "timeout"),
        },
    };
    let now = Instant::now();
    let (result, label) = match outcome.0 {
        Outcome::Done => {
            target.succeeded();
            (env.core.ack(&session, push.delivery), "done")
        }
        Outcome::Retry(after) => {
            target.failed(now, env.unhealthy_after, env.unhealthy_for);
            let delay = after.unwrap_or_else(backoff);
            debug!(message = "Webhook push to be retried.", url = %target.url, reason = outcome.1, attempt = push.attempt, delay_ms = delay.as_millis() as u64, event_id = %push.record.id);
            (env.core.nack_after(&session, push.delivery, delay), "retry")
        }
        Outcome::DeadLetter => {
            // The subscriber answered: the URL is alive, the event is refused for good.
            target.succeeded();
            info!(message = "Webhook subscriber refused an event for good.", url = %target.url, reason = outcome.1, event_id = %push.record.id);
            (env.core.dead_letter(&session, push.delivery), "dead_letter")
        }
    };
    metrics::push(label, started.elapsed());
    if let Err(error) = result {
        // The delivery timed out in the core or the member left: the core redelivers it.
        debug!(message = "Could not settle a webhook push.", %error, delivery = %push.delivery);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_unhealthy_urls_while_others_are_healthy() {
        let t = Targets::default();
        for u in ["http://a/", "http://b/"] {
            t.add(Target::new(u.into(), u.parse().unwrap(), PushFormat::Form));
        }
        let now = Instant::now();
        let a = t.get("http://a/").unwrap();
        a.failed(now, 1, Duration::from_secs(10));
        for _ in 0..4 {
            assert_eq!(t.choose(now).unwrap().url, "http://b/");
        }
        let b = t.get("http://b/").unwrap();
        b.failed(now, 1, Duration::from_secs(10));
        // None healthy: any.
        assert!(t.choose(now).is_some());
        let later = now + Duration::from_secs(11);
        let picks: Vec<String> = (0..2)
            .map(|_| t.choose(later).unwrap().url.clone())
            .collect();
        assert!(picks.contains(&"http://a/".to_owned()) && picks.contains(&"http://b/".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_pushes() {
        let mut p = Pacer::new(10);
        assert_eq!(p.slot(), None);
        let s = p.slot().unwrap();
        assert!(s >= Instant::now() + Duration::from_millis(99));
        assert_eq!(Pacer::new(0).slot(), None);
        let d = jittered(Duration::from_secs(2));
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
    }
}
