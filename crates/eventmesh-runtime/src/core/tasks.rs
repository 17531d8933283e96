//! The core's spawned tasks: every one gets a child of the core's cancellation token and is
//! recorded here with its name, so shutdown can wait for all of them with a deadline and name
//! and abort the stragglers.

use std::future::Future;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Default)]
pub(crate) struct Tasks {
    handles: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl Tasks {
    /// Spawns `fut` on the current runtime and records it. Finished tasks are forgotten lazily.
    /// Outside a runtime (a session handle dropped by a plain thread) the task is skipped with a
    /// log line; every such task is a best-effort clean-up that a lease expiry also covers.
    pub(crate) fn spawn(
        &self,
        name: impl Into<String>,
        fut: impl Future<Output = ()> + Send + 'static,
    ) {
        let name = name.into();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(message = "No Tokio runtime to run a core task; skipped.", task = %name);
            return;
        };
        let handle = rt.spawn(fut);
        let mut handles = self.handles.lock();
        handles.retain(|(_, h)| !h.is_finished());
        handles.push((name, handle));
    }

    /// Waits for every recorded task (including ones spawned meanwhile) until `deadline`, then
    /// aborts and names the rest.
    pub(crate) async fn join_all(&self, deadline: Instant) {
        loop {
            let batch: Vec<(String, JoinHandle<()>)> = std::mem::take(&mut *self.handles.lock());
            if batch.is_empty() {
                return;
            }
            for (name, mut handle) in batch {
                match tokio::time::timeout_at(deadline, &mut handle).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) if error.is_panic() => {
                        tracing::error!(message = "Core task panicked.", task = %name, %error);
                    }
                    Ok(Err(_)) => {}
                    Err(_) => {
                        tracing::warn!(message = "Core task did not stop in time; aborting it.", task = %name);
                        handle.abort();
                    }
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        let mut handles = self.handles.lock();
        handles.retain(|(_, h)| !h.is_finished());
        handles.len()
    }
}
