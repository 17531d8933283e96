//! Start-up and registration of this node.
//!
//! One task per core: it creates the reply inbox topic and its cursor, starts the inbox consumer,
//! registers `nodes/<node_id>` → advertise address in the meta store on a lease (with this node's
//! bindings on the same lease), marks the core ready, then keeps the lease alive every third of
//! its ttl. A lease that expired anyway (a long pause) is granted again and everything re-put.
//! Each step is retried with a capped backoff until it works or the core shuts down. At shutdown
//! the lease is revoked, so other nodes see this one leave at once.

use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_storage::StartFrom;
use tokio_util::sync::CancellationToken;

use super::Core;
use super::request_reply::{inbox_consumer, run_inbox};
use crate::meta::{MetaError, escape_key_part};

/// The meta key of node `node_id`; its value is the advertise address.
pub fn node_key(node_id: &str) -> String {
    format!("nodes/{}", escape_key_part(node_id))
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

pub(crate) async fn run(core: Weak<Core>, cancel: CancellationToken) {
    let mut delay = RETRY_MIN;
    let mut inbox_started = false;
    loop {
        let Some(c) = core.upgrade() else { return };
        let step = async {
            if !inbox_started {
                let consumer = inbox_consumer(&c.shared.node.node_id).map_err(|e| e.to_string())?;
                c.shared
                    .ensure_topic(&consumer.topic)
                    .await
                    .map_err(|e| e.to_string())?;
                c.shared
                    .store
                    .subscribe(&consumer, StartFrom::Latest)
                    .await
                    .map_err(|e| e.to_string())?;
                c.tasks.spawn(
                    format!("inbox {consumer}"),
                    run_inbox(
                        c.me.clone(),
                        c.shared.clone(),
                        consumer,
                        c.root.child_token(),
                    ),
                );
                inbox_started = true;
            }
            register(&c).await.map_err(|e| e.to_string())
        };
        match step.await {
            Ok(()) => {
                c.ready.send_replace(true);
                tracing::info!(message = "Node registered; delivery core ready.", node_id = %c.shared.node.node_id);
                break;
            }
            Err(error) => {
                tracing::warn!(message = "Core start-up step failed; retrying.", %error, delay_ms = delay.as_millis() as u64);
            }
        }
        drop(c);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }

    let interval = core
        .upgrade()
        .map_or(RETRY_MAX, |c| c.shared.options.node_lease_ttl / 3);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(c) = core.upgrade() else { return };
        keep_alive(&c).await;
    }
    if let Some(c) = core.upgrade() {
        let lease = c.node_lease.lock().take();
        if let Some(lease) = lease
            && let Err(error) = c.shared.meta.revoke(lease).await
        {
            tracing::warn!(message = "Failed to revoke the node lease.", %error);
        }
    }
}

/// Grants a lease and puts the node key and this node's bindings on it.
async fn register(c: &Core) -> Result<(), MetaError> {
    let meta = &c.shared.meta;
    let lease = meta.grant_lease(c.shared.options.node_lease_ttl).await?;
    let advertise = Bytes::from(c.shared.node.advertise.clone());
    meta.put(&node_key(&c.shared.node.node_id), advertise, Some(lease))
        .await?;
    *c.node_lease.lock() = Some(lease);
    for (key, value) in c.binding_entries() {
        meta.put(&key, value, Some(lease)).await?;
    }
    Ok(())
}

async fn keep_alive(c: &Core) {
    let lease = *c.node_lease.lock();
    let Some(lease) = lease else { return };
    match c.shared.meta.keep_alive(lease).await {
        Ok(()) => {}
        Err(MetaError::UnknownLease(_)) => {
            tracing::warn!(message = "Node lease expired; registering again.", node_id = %c.shared.node.node_id);
            if let Err(error) = register(c).await {
                tracing::warn!(message = "Failed to register the node again.", %error);
            }
        }
        Err(error) => tracing::warn!(message = "Failed to keep the node lease alive.", %error),
    }
}
