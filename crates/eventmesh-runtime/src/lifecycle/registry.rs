//! [`TaskRegistry`]: named, supervised tasks with a cancellation token each.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::{ShutdownReason, ShutdownSignal};

struct Entry {
    name: String,
    supervisor: JoinHandle<()>,
    task: AbortHandle,
}

/// What [`TaskRegistry::shutdown`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryReport {
    /// Tasks that ended within the deadline.
    pub stopped: usize,
    /// Names of the tasks still running at the deadline (aborted).
    pub stragglers: Vec<String>,
}

/// A group of supervised tasks (see the [module docs](super)). Dropping the registry cancels its
/// tasks' tokens without waiting.
pub struct TaskRegistry {
    name: &'static str,
    token: CancellationToken,
    signal: ShutdownSignal,
    tasks: Mutex<Vec<Entry>>,
}

impl TaskRegistry {
    /// An empty registry named `name` (for logs) whose critical failures trigger `signal`.
    pub fn new(name: &'static str, signal: ShutdownSignal) -> Self {
        TaskRegistry {
            name,
            token: CancellationToken::new(),
            signal,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The registry's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Tasks spawned and not yet finished.
    pub fn running(&self) -> usize {
        self.tasks
            .lock()
            .iter()
            .filter(|e| !e.supervisor.is_finished())
            .count()
    }

    /// Spawns `f(token)` as a task named `name`. The token is cancelled when the registry shuts
    /// down; the task should then finish promptly. When `critical`, an `Err`, a panic, or an
    /// `Ok` before cancellation triggers the node's shutdown.
    pub fn spawn<F, Fut, E>(&self, name: impl Into<String>, critical: bool, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let name = name.into();
        let token = self.token.child_token();
        let inner = tokio::spawn(f(token.clone()));
        let task = inner.abort_handle();
        let signal = self.signal.clone();
        let task_name = name.clone();
        let registry = self.name;
        let supervisor = tokio::spawn(async move {
            let failure = match inner.await {
                Ok(Ok(())) if token.is_cancelled() || !critical => {
                    debug!(message = "Task finished.", registry, task = %task_name);
                    None
                }
                Ok(Ok(())) => Some("stopped before shutdown was requested".to_owned()),
                Ok(Err(error)) => Some(error.to_string()),
                Err(e) if e.is_cancelled() => {
                    debug!(message = "Task aborted.", registry, task = %task_name);
                    None
                }
                Err(e) => Some(format!("panicked: {e}")),
            };
            if let Some(error) = failure {
                error!(message = "Task failed.", registry, task = %task_name, critical, %error);
                if critical {
                    signal.trigger(ShutdownReason::TaskFailed {
                        task: task_name,
                        error,
                    });
                }
            }
        });
        let mut tasks = self.tasks.lock();
        tasks.retain(|e| !e.supervisor.is_finished());
        tasks.push(Entry {
            name,
            supervisor,
            task,
        });
    }

    /// Spawns a task that runs `tick()` every `period` (the first run after one period) until
    /// the registry shuts down. An `Err` from a tick ends the task with that error.
    pub fn spawn_periodic<F, Fut, E>(
        &self,
        name: impl Into<String>,
        critical: bool,
        period: Duration,
        mut tick: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.spawn(name, critical, move |token| async move {
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return Ok::<(), E>(()),
                    _ = interval.tick() => tick().await?,
                }
            }
        });
    }

    /// Cancels every task and waits for them until `deadline`; tasks still running then are
    /// aborted and each is logged by name.
    pub async fn shutdown(&self, deadline: Instant) -> RegistryReport {
        self.token.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        let mut report = RegistryReport::default();
        for mut entry in tasks {
            match tokio::time::timeout_at(deadline, &mut entry.supervisor).await {
                Ok(_) => report.stopped += 1,
                Err(_) => {
                    warn!(message = "Task did not stop before the shutdown deadline; aborting it.", registry = self.name, task = %entry.name);
                    entry.task.abort();
                    entry.supervisor.abort();
                    report.stragglers.push(entry.name);
                }
            }
        }
        report
    }
}

impl Drop for TaskRegistry {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn registry() -> (TaskRegistry, ShutdownSignal) {
        let signal = ShutdownSignal::new();
        (TaskRegistry::new("test", signal.clone()), signal)
    }

    #[tokio::test]
    async fn tasks_stop_on_shutdown() {
        let (reg, signal) = registry();
        for i in 0..3 {
            reg.spawn(format!("t{i}"), true, |token| async move {
                token.cancelled().await;
                Ok::<_, String>(())
            });
        }
        assert_eq!(reg.running(), 3);
        let report = reg.shutdown(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(
            report,
            RegistryReport {
                stopped: 3,
                stragglers: vec![]
            }
        );
        assert!(!signal.is_triggered(), "a clean stop is not a failure");
    }

    #[tokio::test]
    async fn failing_critical_task_triggers_shutdown() {
        let (reg, signal) = registry();
        reg.spawn("listener", true, |_| async { Err::<(), _>("bind lost") });
        let reason = tokio::time::timeout(Duration::from_secs(5), signal.triggered())
            .await
            .unwrap();
        assert_eq!(
            reason,
            ShutdownReason::TaskFailed {
                task: "listener".into(),
                error: "bind lost".into()
            }
        );
    }

    #[tokio::test]
    async fn critical_task_ending_early_or_panicking_triggers_shutdown() {
        let (reg, signal) = registry();
        reg.spawn("quitter", true, |_| async { Ok::<_, String>(()) });
        let reason = tokio::time::timeout(Duration::from_secs(5), signal.triggered())
            .await
            .unwrap();
        assert!(
            matches!(reason, ShutdownReason::TaskFailed { ref task, .. } if task == "quitter"),
            "{reason:?}"
        );

        let (reg, signal) = registry();
        reg.spawn("panicky", true, |_| async {
            if Instant::now().elapsed() < Duration::from_secs(3600) {
                panic!("boom");
            }
            Ok::<_, String>(())
        });
        let reason = tokio::time::timeout(Duration::from_secs(5), signal.triggered())
            .await
            .unwrap();
        assert!(
            matches!(reason, ShutdownReason::TaskFailed { ref error, .. } if error.contains("panicked")),
            "{reason:?}"
        );
    }

    #[tokio::test]
    async fn non_critical_failure_does_not_trigger_shutdown() {
        let (reg, signal) = registry();
        reg.spawn("optional", false, |_| async { Err::<(), _>("meh") });
        let report = reg.shutdown(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(report.stopped, 1);
        assert!(!signal.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn stragglers_are_aborted_and_named() {
        let (reg, _signal) = registry();
        reg.spawn("stubborn", false, |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>(())
        });
        reg.spawn("polite", false, |token| async move {
            token.cancelled().await;
            Ok::<_, String>(())
        });
        let report = reg.shutdown(Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(report.stopped, 1);
        assert_eq!(report.stragglers, vec!["stubborn".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_tasks_tick_until_shutdown() {
        let (reg, _signal) = registry();
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        reg.spawn_periodic("tick", true, Duration::from_secs(1), move || {
            let t = t.clone();
            async move {
                t.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        });
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let report = reg.shutdown(Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(report.stopped, 1);
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }
}
