//! Counters shared by the run's tasks, and the progress line on stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Limit;

/// Live counts of a run.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> (u64, u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// The progress display: an indicatif bar on a terminal, otherwise a plain line every second.
pub(crate) struct Progress {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(enabled: bool, counters: Arc<Counters>, limit: Limit) -> Progress {
        let stop = CancellationToken::new();
        if !enabled {
            return Progress { stop, task: None };
        }
        let signal = stop.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let (len, template) = match limit {
                Limit::Count(n) => (
                    n,
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                ),
                Limit::Duration(d) => (
                    d.as_secs().max(1),
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} s {msg}",
                ),
            };
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            if !tty {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut last = (0u64, Instant::now());
            let mut last_line = Instant::now();
            loop {
                tokio::select! {
                    () = signal.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (published, delivered, errors) = counters.get();
                let now = Instant::now();
                let counted = delivered.max(published);
                let dt = now.duration_since(last.1).as_secs_f64();
                #[allow(clippy::cast_precision_loss)]
                let rate = if dt > 0.0 {
                    counted.saturating_sub(last.0) as f64 / dt
                } else {
                    0.0
                };
                let message = format!(
                    "published {published}  delivered {delivered}  errors {errors}  {rate:.0}/s"
                );
                match limit {
                    Limit::Count(_) => bar.set_position(counted),
                    Limit::Duration(_) => bar.set_position(now.duration_since(start).as_secs()),
                }
                if tty {
                    bar.set_message(message);
                    last = (counted, now);
                } else if now.duration_since(last_line) >= Duration::from_secs(1) {
                    let secs = now.duration_since(start).as_secs_f64();
                    let _ = writeln!(std::io::stderr().lock(), "bench {secs:>5.1}s  {message}");
                    last_line = now;
                    last = (counted, now);
                }
            }
            bar.finish_and_clear();
        });
        Progress {
            stop,
            task: Some(task),
        }
    }

    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
