//! Expiry of BROADCASTING member cursors that nobody uses any more (the Redis counterpart of a
//! NATS consumer's inactive threshold): every store runs a small periodic task that deletes the
//! member groups whose last use is older than `member_expiry`. Several nodes doing it at once is
//! harmless: the script is idempotent and atomic.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::conn::Inner;
use crate::reply::{self, Status};
use crate::scripts;

/// Member groups deleted per script call.
const BATCH: usize = 100;

pub(crate) fn spawn(inner: &Arc<Inner>) {
    let expiry = inner.opts.member_expiry;
    if expiry.is_zero() {
        return;
    }
    let every = (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let weak = Arc::downgrade(inner);
    let closed = inner.closed.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = closed.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let Some(inner) = weak.upgrade() else { return };
            if let Err(error) = sweep(&inner).await {
                warn!(message = "Failed to expire unused broadcasting member cursors.", %error, url = %inner.url);
            }
        }
    });
}

/// Deletes every expired member group; returns how many.
pub(crate) async fn sweep(inner: &Inner) -> Result<usize, crate::error::Error> {
    let expiry_ms = inner.opts.member_expiry.as_millis().to_string();
    let prefix = inner.keys.stream("");
    let batch = BATCH.to_string();
    let mut total = 0;
    loop {
        let status = inner
            .script(
                "expire_members",
                &scripts::EXPIRE_MEMBERS_SCRIPT,
                &[&inner.keys.members()],
                &[expiry_ms.as_bytes(), prefix.as_bytes(), batch.as_bytes()],
            )
            .await?;
        let Status::Ok(rest) = status else {
            return Ok(total);
        };
        let expired = reply::array(
            "expire_members",
            rest.into_iter().next().unwrap_or(redis::Value::Nil),
        )?;
        for e in &expired {
            let entry = reply::bytes("expire_members", e)?;
            let entry = String::from_utf8_lossy(entry);
            let (topic, group) = entry.split_once('\n').unwrap_or((&entry, ""));
            info!(
                message = "Expired an unused broadcasting member cursor.",
                topic, group
            );
        }
        total += expired.len();
        if expired.len() < BATCH {
            return Ok(total);
        }
    }
}
