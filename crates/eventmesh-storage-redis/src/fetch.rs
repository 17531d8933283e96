//! Fetch: one atomic script hands out due redeliveries and new entries; when there are none, the
//! fetch parks on a blocking `XREAD` (its own connection) until a new entry arrives, a
//! redelivery this node knows of falls due, a nack on this node wakes it, or the wait ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::EventRecord;
use eventmesh_storage::{ConsumerRef, Delivery, Offset, StorageError, StorageResult};
use parking_lot::Mutex;
use redis::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, error};

use crate::conn::Inner;
use crate::error::Error;
use crate::keys::{self, CONSUMER, StreamId, Token};
use crate::reply::{self, Status};
use crate::scripts;

/// The most deliveries one fetch hands out (one script call).
const MAX_FETCH: usize = 1024;
/// Wake-up times remembered per cursor.
const MAX_DUES: usize = 4096;
/// Pending entries one fetch may examine for due redeliveries: a cursor with a larger PEL is
/// scanned over several fetches (resuming where the last one stopped), so that one fetch never
/// holds Redis for long.
const SCAN_BUDGET: usize = 5_000;

/// What this node knows about when a cursor's fetches should look again.
#[derive(Default)]
pub(crate) struct Local {
    notify: Notify,
    dues: Mutex<BinaryHeap<Reverse<Instant>>>,
    /// Where this node's next scan of the cursor's PEL starts (`None`: from the oldest entry).
    scan_from: Mutex<Option<StreamId>>,
}

impl Local {
    /// A redelivery falls due after `d`: wake parked fetches (now, and again then).
    pub(crate) fn due_in(&self, d: Duration) {
        self.remember(Instant::now() + d);
        self.notify.notify_waiters();
    }

    fn remember(&self, at: Instant) {
        let mut dues = self.dues.lock();
        if dues.len() >= MAX_DUES {
            // Keep the earliest ones; later ones are found by the periodic re-check.
            let mut v = std::mem::take(&mut *dues).into_sorted_vec();
            v.truncate(MAX_DUES / 2);
            *dues = v.into_iter().collect();
        }
        dues.push(Reverse(at));
    }

    /// Forgets wake-ups at or before `t` (a fetch that started after them saw their entries).
    fn forget_until(&self, t: Instant) {
        let mut dues = self.dues.lock();
        while dues.peek().is_some_and(|Reverse(at)| *at <= t) {
            dues.pop();
        }
    }

    fn next(&self) -> Option<Instant> {
        self.dues.lock().peek().map(|Reverse(at)| *at)
    }

    /// The cursor moved or went away: forget, and let parked fetches look again.
    pub(crate) fn reset(&self) {
        self.dues.lock().clear();
        *self.scan_from.lock() = None;
        self.notify.notify_waiters();
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// One script call's result.
struct Batch {
    deliveries: Vec<Delivery>,
    /// The stream's last entry when the group had read everything.
    last: Option<StreamId>,
}

pub(crate) async fn fetch(
    s: &Inner,
    c: &ConsumerRef,
    max: usize,
    lease: Duration,
    wait: Duration,
) -> StorageResult<Vec<Delivery>> {
    s.ensure_open()?;
    let max = max.min(MAX_FETCH);
    if max == 0 {
        return Ok(Vec::new());
    }
    let lease_ms = s.clamp_ms(lease);
    let deadline = Instant::now() + wait;
    let local = s.local(c);
    loop {
        let notified = local.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let started = Instant::now();
        let batch = fetch_once(s, c, &local, max, lease_ms).await?;
        if !batch.deliveries.is_empty() {
            local.remember(started + Duration::from_millis(lease_ms));
            return Ok(batch.deliveries);
        }
        local.forget_until(started);
        let now = Instant::now();
        if now >= deadline {
            return Ok(Vec::new());
        }
        let mut until = deadline.min(now + s.opts.fetch_block);
        if let Some(due) = local.next() {
            until = until.min(due);
        }
        if until <= now {
            continue;
        }
        let stream = s.stream(&c.topic);
        tokio::select! {
            r = wait_for_entry(s, &stream, batch.last, until) => r?,
            _ = notified => {}
            _ = s.closed.cancelled() => return Err(StorageError::Closed),
        }
    }
}

/// Waits until the stream has an entry after `last`, or `until`.
async fn wait_for_entry(
    s: &Inner,
    stream: &str,
    last: Option<StreamId>,
    until: Instant,
) -> Result<(), Error> {
    let Some(last) = last else {
        tokio::time::sleep_until(until).await;
        return Ok(());
    };
    let block = until.saturating_duration_since(Instant::now());
    let block_ms = (block.as_micros().div_ceil(1000) as u64).max(1);
    let mut conn = s.take_blocking().await?;
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(stream)
        .arg(last.to_string());
    // The entry itself is read by the next fetch script; this only waits. If this future is
    // dropped (a wake-up came first), the connection goes with it and Redis ends the block.
    let limit = block + s.opts.request_timeout;
    match tokio::time::timeout(limit, cmd.query_async::<Value>(&mut conn)).await {
        Ok(Ok(_)) => {
            s.put_blocking(conn);
            Ok(())
        }
        Ok(Err(source)) => {
            if crate::error::is_unavailable(&source) {
                // The others in the pool were cut off by the same outage.
                s.blocking.lock().clear();
            }
            Err(Error::Redis {
                url: s.url.clone(),
                op: "XREAD",
                source,
            })
        }
        Err(_) => Err(Error::Timeout {
            url: s.url.clone(),
            op: "XREAD",
            after: limit,
        }),
    }
}

async fn fetch_once(
    s: &Inner,
    c: &ConsumerRef,
    local: &Local,
    max: usize,
    lease_ms: u64,
) -> StorageResult<Batch> {
    const OP: &str = "fetch";
    let topic = c.topic.to_string();
    let (stream, group, member) = (
        s.keys.stream(&topic),
        keys::group_name(c),
        keys::member_entry(c),
    );
    let (max_s, lease_s, horizon_s) = (
        max.to_string(),
        lease_ms.to_string(),
        s.horizon_ms().to_string(),
    );
    // A member's last-use mark is refreshed at most every 1/16 of the expiry.
    let refresh = (s.opts.member_expiry.as_millis() / 16).to_string();
    let scan_from = local
        .scan_from
        .lock()
        .map_or_else(|| "0-0".to_owned(), |id| id.to_string());
    let budget = SCAN_BUDGET.to_string();
    let status = s
        .script(
            OP,
            &scripts::FETCH_SCRIPT,
            &[&s.keys.topics(), &stream, &s.keys.members()],
            &[
                topic.as_bytes(),
                group.as_bytes(),
                CONSUMER.as_bytes(),
                max_s.as_bytes(),
                lease_s.as_bytes(),
                horizon_s.as_bytes(),
                member.as_bytes(),
                refresh.as_bytes(),
                scan_from.as_bytes(),
                budget.as_bytes(),
            ],
        )
        .await?;
    let rest = match status {
        Status::Ok(rest) => rest,
        Status::NoTopic => return Err(StorageError::UnknownTopic(topic)),
        Status::NoGroup => return Err(StorageError::UnknownConsumer(c.to_string())),
    };
    let mut rest = rest.into_iter();
    let mut next = || rest.next().unwrap_or(Value::Nil);
    let last = reply::opt_id(OP, &next())?;
    let ids = reply::array(OP, next())?;
    let recs = reply::array(OP, next())?;
    let counts = reply::array(OP, next())?;
    let scan = reply::opt_id(OP, &next())?;
    *local.scan_from.lock() = scan.filter(|id| *id != StreamId { ms: 0, seq: 0 });
    if ids.len() != recs.len() || ids.len() != counts.len() {
        return Err(StorageError::Backend(format!(
            "fetch for {c}: {} ids, {} records, {} counts",
            ids.len(),
            recs.len(),
            counts.len()
        )));
    }
    let mut deliveries = Vec::with_capacity(ids.len());
    let mut poison = Vec::new();
    for ((id, rec), count) in ids.iter().zip(recs).zip(counts.iter()) {
        let id = reply::id(OP, id)?;
        let count = u32::try_from(reply::int(OP, count)?.max(1)).unwrap_or(u32::MAX);
        let bytes = match rec {
            Value::BulkString(b) => Bytes::from(b),
            _ => Bytes::new(),
        };
        let record = match EventRecord::decode(&bytes) {
            Ok(r) if r.topic == c.topic => r,
            Ok(r) => {
                error!(message = "Dropping a stream entry that holds a record of another topic.", consumer = %c, id = %id, record_topic = %r.topic);
                poison.push(id);
                continue;
            }
            Err(err) => {
                error!(message = "Dropping a stream entry that is not an event record.", consumer = %c, id = %id, error = %err);
                poison.push(id);
                continue;
            }
        };
        let Some(seq) = id.to_offset() else {
            error!(message = "Dropping a stream entry whose id does not fit an offset.", consumer = %c, id = %id);
            poison.push(id);
            continue;
        };
        deliveries.push(Delivery {
            token: Token { id, count }.encode(),
            offset: Offset { partition: 0, seq },
            delivery_count: count,
            record,
        });
    }
    if !poison.is_empty() {
        // Acked, so that one bad entry cannot wedge the cursor.
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&stream).arg(&group);
        for id in &poison {
            cmd.arg(id.to_string());
        }
        let _: i64 = s.cmd("XACK", &cmd).await?;
    }
    debug!(message = "Fetched.", consumer = %c, count = deliveries.len());
    Ok(Batch { deliveries, last })
}
