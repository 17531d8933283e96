//! The core's spawned tasks: every one gets a child of the core's cancellation token and is
//! recorded here with its name, so shutdown can wait for all of them with a deadline and name
//! and abort the stragglers. Once shutdown has joined everything the registry is closed: later
//! spawns (clean-ups triggered by sessions dropped after shutdown) are skipped, since the lease
//! revoked at shutdown already cleaned up what they would have.

use std::future::Future;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Default)]
pub(crate) struct Tasks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    closed: bool,
    handles: Vec<(String, JoinHandle<()>)>,
}

impl Tasks {
    /// Spawns `fut` on the current runtime and records it. Finished tasks are forgotten lazily.
    /// Outside a runtime (a session handle dropped by a plain thread), or once the registry is
    /// closed, the task is skipped with a log line; every such task is a best-effort clean-up
    /// that a lease expiry also covers.
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
        let mut inner = self.inner.lock();
        if inner.closed {
            tracing::debug!(message = "Core is shut down; task skipped.", task = %name);
            return;
        }
        inner.handles.retain(|(_, h)| !h.is_finished());
        inner.handles.push((name, rt.spawn(fut)));
    }

    /// Waits for every recorded task (including ones spawned meanwhile) until `deadline`, aborts
    /// and names the rest, then closes the registry.
    pub(crate) async fn join_all(&self, deadline: Instant) {
        loop {
            let batch = {
                let mut inner = self.inner.lock();
                if inner.handles.is_empty() {
                    inner.closed = true;
                    return;
                }
                std::mem::take(&mut inner.handles)
            };
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
        let mut inner = self.inner.lock();
        inner.handles.retain(|(_, h)| !h.is_finished());
        inner.handles.len()
    }
}
