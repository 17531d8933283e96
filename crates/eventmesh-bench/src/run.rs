//! Running a scenario: subscribers first, then the paced publishers, then the drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventmesh_sdk::SubscriptionMode;
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clients::{self, OnEvent, Publisher, Role, Subscription};
use crate::direct::{Direct, DirectTopic};
use crate::pacing::{Batch, Departure, Pacer, payload};
use crate::progress::{Counters, Progress};
use crate::report::{Report, Tally};
use crate::{BenchConfig, BenchError, Latency, Limit, Mode, Scenario};

/// How often the drain checks the delivered count.
const POLL: Duration = Duration::from_millis(5);

/// Runs `config` against the mesh and reports what it measured.
///
/// # Errors
/// [`BenchError::Config`] or [`BenchError::Unsupported`] for bad settings,
/// [`BenchError::Client`] when a client cannot connect or subscribe. Failed publishes during the
/// run are counted in [`Report::errors`], not returned.
pub async fn run(config: BenchConfig) -> Result<Report, BenchError> {
    config.validate()?;
    run_on(config, None).await
}

/// Runs `config`'s workload straight against the broker at `url` with its own Rust client (see
/// [`crate::direct`]), for a same-run baseline; the report's `addr` is `url`.
///
/// # Errors
/// As [`run`], plus [`BenchError::Unsupported`] for a scenario or broker the direct mode lacks
/// and [`BenchError::Direct`] when the broker refuses.
pub async fn run_direct(mut config: BenchConfig, url: &str) -> Result<Report, BenchError> {
    config.validate()?;
    if matches!(config.scenario, Scenario::RequestReply | Scenario::Sub) {
        return Err(BenchError::Unsupported(format!(
            "--direct runs pub, pubsub and fanout, not {}",
            config.scenario.as_str()
        )));
    }
    let direct = Direct::connect(url).await?;
    config.addr = direct.url();
    *LAST_DIRECT_SETTINGS.lock() = direct.settings();
    let protocol = direct.protocol();
    let mut report = run_on(config, Some(direct)).await?;
    report.protocol = protocol;
    Ok(report)
}

/// What the latest direct run's broker did ([`crate::direct_settings`]).
static LAST_DIRECT_SETTINGS: Mutex<String> = Mutex::new(String::new());

pub(crate) fn last_direct_settings() -> String {
    LAST_DIRECT_SETTINGS.lock().clone()
}

async fn run_on(config: BenchConfig, direct: Option<Direct>) -> Result<Report, BenchError> {
    let topic = config
        .topic
        .clone()
        .unwrap_or_else(|| format!("bench-{:016x}", rand::random::<u64>()));
    let Some(direct) = direct else {
        return run_topic(config, topic, None).await;
    };
    let target = match direct
        .prepare(&topic, config.scenario == Scenario::Pub)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            direct.close().await;
            return Err(e);
        }
    };
    let result = run_topic(config, topic, Some(target.clone())).await;
    // Removed whether the run succeeded or not.
    target.remove().await;
    drop(target);
    direct.close().await;
    result
}

async fn run_topic(
    config: BenchConfig,
    topic: String,
    direct: Option<DirectTopic>,
) -> Result<Report, BenchError> {
    let counters = Arc::new(Counters::default());
    let clock = Arc::new(Pacer::new(None, Limit::Count(0)));
    // Nanoseconds after the clock's start of the last delivery.
    let last_delivery = Arc::new(AtomicU64::new(0));

    let mut subscribers = Vec::new();
    if config.scenario != Scenario::Pub {
        for n in 0..config.subscribers {
            let sub = match &direct {
                Some(d) => {
                    subscribe_direct(&config, d, n, &clock, &counters, &last_delivery).await?
                }
                None => subscribe(&config, &topic, n, &clock, &counters, &last_delivery).await?,
            };
            subscribers.push(sub);
        }
        info!(message = "Subscribed.", topic = %topic, subscribers = subscribers.len());
    }

    let progress = Progress::start(config.progress, counters.clone(), config.limit);
    let pacer = Arc::new(clock.restart(config.rate, config.limit));
    let mut latency = Latency::new()?;

    let mut publishers = Vec::new();
    let mut workers = JoinSet::new();
    if config.scenario != Scenario::Sub {
        for n in 0..config.publishers {
            let sender = match &direct {
                Some(d) => Sender::Direct(Box::new(d.clone())),
                None => {
                    let publisher = Publisher::connect(&config, format!("{topic}-pub"), n).await?;
                    publishers.push(publisher.clone());
                    Sender::Mesh(publisher)
                }
            };
            for _ in 0..config.window {
                workers.spawn(publish_worker(
                    sender.clone(),
                    config.clone(),
                    topic.clone(),
                    pacer.clone(),
                    counters.clone(),
                ));
            }
        }
    }
    while let Some(done) = workers.join_next().await {
        let worker = done.map_err(|e| BenchError::Task(e.to_string()))??;
        latency.merge(&worker)?;
    }
    let published_at = pacer.start().elapsed();
    for publisher in &publishers {
        publisher.close().await;
    }

    let (published, _, _) = counters.get();
    let elapsed = match config.scenario {
        Scenario::Pub | Scenario::RequestReply => published_at,
        Scenario::PubSub | Scenario::Fanout => {
            let fan = match effective_mode(&config) {
                Mode::Clustering => 1,
                Mode::Broadcasting => u64::try_from(config.subscribers).unwrap_or(u64::MAX),
            };
            drain(&counters, published.saturating_mul(fan), config.drain).await;
            last_delivery_since(&clock, &pacer, &last_delivery).max(published_at)
        }
        Scenario::Sub => {
            match config.limit {
                Limit::Count(n) => drain(&counters, n, config.drain).await,
                Limit::Duration(d) => tokio::time::sleep(d).await,
            }
            pacer.start().elapsed()
        }
    };
    progress.finish().await;

    for (handle, hist) in subscribers {
        handle.close().await;
        latency.merge(&hist.lock())?;
    }
    let (published, delivered, errors) = counters.get();
    let tally = Tally {
        topic,
        published,
        delivered,
        errors,
        elapsed,
        latency,
    };
    Ok(Report::new(&config, &tally))
}

/// The group mode the scenario uses: fanout broadcasts, request-reply clusters.
pub(crate) fn effective_mode(config: &BenchConfig) -> Mode {
    match config.scenario {
        Scenario::Fanout => Mode::Broadcasting,
        Scenario::RequestReply => Mode::Clustering,
        _ => config.mode,
    }
}

/// The time from the publishers' start to the last delivery.
fn last_delivery_since(clock: &Pacer, pacer: &Pacer, last: &AtomicU64) -> Duration {
    let last = clock.start() + Duration::from_nanos(last.load(Ordering::Relaxed));
    last.saturating_duration_since(pacer.start())
}

/// Waits until `expected` events are delivered, or none has come for `patience`.
async fn drain(counters: &Counters, expected: u64, patience: Duration) {
    let mut seen = counters.delivered.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        let now = counters.delivered.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() >= patience {
            warn!(
                message = "Deliveries stopped before every event arrived.",
                delivered = now,
                expected
            );
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A running subscriber: a mesh client, or a direct pull task.
enum SubHandle {
    Mesh(clients::Subscriber),
    Direct(CancellationToken, tokio::task::JoinHandle<()>),
}

impl SubHandle {
    async fn close(self) {
        match self {
            SubHandle::Mesh(subscriber) => subscriber.close().await,
            SubHandle::Direct(stop, task) => {
                stop.cancel();
                let _ = task.await;
            }
        }
    }
}

type Subscriber = (SubHandle, Arc<Mutex<Latency>>);

/// What a subscriber does with each event's data: records its latency and counts it.
fn on_event(
    clock: &Pacer,
    counters: &Counters,
    last: &AtomicU64,
    hist: &Mutex<Latency>,
    data: Option<&[u8]>,
) {
    if let Some(latency) = data.and_then(|data| clock.latency_of(data)) {
        hist.lock().record(latency);
    }
    counters.delivered.fetch_add(1, Ordering::Relaxed);
    let at = u64::try_from(clock.start().elapsed().as_nanos()).unwrap_or(u64::MAX);
    last.fetch_max(at, Ordering::Relaxed);
}

async fn subscribe_direct(
    config: &BenchConfig,
    topic: &DirectTopic,
    n: usize,
    clock: &Arc<Pacer>,
    counters: &Arc<Counters>,
    last_delivery: &Arc<AtomicU64>,
) -> Result<Subscriber, BenchError> {
    let hist = Arc::new(Mutex::new(Latency::new()?));
    let durable = match effective_mode(config) {
        Mode::Clustering => "bench-sub".to_owned(),
        Mode::Broadcasting => format!("bench-sub-{n}"),
    };
    let (clock, counters, last, h) = (
        clock.clone(),
        counters.clone(),
        last_delivery.clone(),
        hist.clone(),
    );
    let stop = CancellationToken::new();
    let task = topic
        .subscribe(
            &durable,
            stop.clone(),
            Arc::new(move |data: &[u8]| on_event(&clock, &counters, &last, &h, Some(data))),
        )
        .await?;
    Ok((SubHandle::Direct(stop, task), hist))
}

async fn subscribe(
    config: &BenchConfig,
    topic: &str,
    n: usize,
    clock: &Arc<Pacer>,
    counters: &Arc<Counters>,
    last_delivery: &Arc<AtomicU64>,
) -> Result<Subscriber, BenchError> {
    let hist = Arc::new(Mutex::new(Latency::new()?));
    let mode = match effective_mode(config) {
        Mode::Clustering => SubscriptionMode::Clustering,
        Mode::Broadcasting => SubscriptionMode::Broadcasting,
    };
    let role = if config.scenario == Scenario::RequestReply {
        Role::Echo
    } else {
        let (clock, counters, last, hist) = (
            clock.clone(),
            counters.clone(),
            last_delivery.clone(),
            hist.clone(),
        );
        let on: OnEvent =
            Arc::new(move |data: Option<&[u8]>| on_event(&clock, &counters, &last, &hist, data));
        Role::Count(on)
    };
    let sub = Subscription {
        topic,
        group: format!("{topic}-sub"),
        mode,
        role,
        n,
    };
    let subscriber = clients::Subscriber::start(config, sub).await?;
    Ok((SubHandle::Mesh(subscriber), hist))
}

/// Where a publisher sends: the mesh through the SDK, or the broker directly.
#[derive(Clone)]
enum Sender {
    Mesh(Publisher),
    Direct(Box<DirectTopic>),
}

impl Sender {
    /// Sends the events of `batch` (all with `data`) in one call: a request for request-reply
    /// (batches of one), else a publish.
    async fn send(
        &self,
        scenario: Scenario,
        topic: &str,
        batch: Batch,
        data: bytes::Bytes,
    ) -> Result<(), String> {
        match self {
            Sender::Mesh(publisher) if scenario == Scenario::RequestReply => {
                publisher
                    .request(topic, clients::event(batch.first, data))
                    .await
            }
            Sender::Mesh(publisher) => {
                let events = (batch.first..batch.first + batch.len)
                    .map(|index| clients::event(index, data.clone()))
                    .collect();
                publisher.publish(topic, events).await
            }
            Sender::Direct(d) => d.publish(data, batch.len).await,
        }
    }
}

/// One window slot of a publisher: takes batches of tickets (one ticket without `--batch`),
/// sends each when due, and awaits its answer.
async fn publish_worker(
    sender: Sender,
    config: BenchConfig,
    topic: String,
    pacer: Arc<Pacer>,
    counters: Arc<Counters>,
) -> Result<Latency, BenchError> {
    let mut latency = Latency::new()?;
    // Behind schedule, overdue tickets are still sent (open loop), but not forever.
    let hard_stop = match config.limit {
        Limit::Duration(d) => Some(pacer.start() + d + config.drain),
        Limit::Count(_) => None,
    };
    let size = u64::try_from(config.batch).unwrap_or(u64::MAX);
    while let Some(batch) = pacer.next_batch(size) {
        if hard_stop.is_some_and(|stop| Instant::now() >= stop) {
            break;
        }
        let sent_at = match Departure::of(batch.due, Instant::now()) {
            Departure::WaitUntil(due) => {
                tokio::time::sleep_until(due.into()).await;
                Instant::now()
            }
            Departure::Now(due) => due,
        };
        let data = payload(pacer.wall_ns(sent_at), config.size);
        let outcome = sender.send(config.scenario, &topic, batch, data).await;
        match outcome {
            Ok(()) => {
                counters.published.fetch_add(batch.len, Ordering::Relaxed);
                match config.scenario {
                    Scenario::Pub => latency.record_n(sent_at.elapsed(), batch.len),
                    Scenario::RequestReply => {
                        latency.record(sent_at.elapsed());
                        counters.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            Err(error) => {
                // Counted per event, as published is.
                if counters.errors.fetch_add(batch.len, Ordering::Relaxed) == 0 {
                    warn!(message = "Publish failed (further failures are logged at debug).", %error);
                } else {
                    debug!(message = "Publish failed.", %error);
                }
            }
        }
    }
    Ok(latency)
}
