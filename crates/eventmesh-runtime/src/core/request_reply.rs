//! Request-reply (SYNC), done once in the core so it works on every store and across nodes.
//!
//! * [`Core::request`] stamps the request with `replyto` (this node's id), `correlationid` (a
//!   fresh id) and `expiresat` (Unix milliseconds, as a string so string-only protocols echo it
//!   unchanged), registers a waiter, publishes, and waits until `ttl` passes.
//! * A SYNC member receives it as a [`super::PushKind::Request`]; the responder answers with
//!   [`Core::reply`] and an event that echoes those three extensions, over any protocol.
//! * The core publishes the reply to the requester node's inbox topic
//!   (`eventmesh-inbox-<node_id>`, see [`inbox_topic`]) when the meta store knows that node, or,
//!   when it does not (the embedded meta store is not shared between nodes), only if that inbox
//!   topic already exists in the event store. A reply to this node skips the store and completes
//!   at once.
//! * Every node consumes its own inbox (one task, started by `node`) and completes the waiting
//!   requester by correlation id. A reply past `expiresat`, or for a requester that gave up, is
//!   dropped with a log line. The requester gets `RequestTimeout` when `ttl` passes.
//!
//! Bounds: at most `max_pending_requests` requesters wait on one node; more are `Overloaded`.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventmesh_core::{
    CloudEvent, ErrorCode, EventMeshError, ExtensionValue, GroupName, Topic, TopicError,
};
use eventmesh_storage::{ConsumerRef, StorageError};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::node::node_key;
use super::session::SessionHandle;
use super::{Core, Shared, metrics};

/// Extension carrying the requester's node id.
pub const EXT_REPLY_TO: &str = "replyto";
/// Extension carrying the request's correlation id.
pub const EXT_CORRELATION_ID: &str = "correlationid";
/// Extension carrying when the requester stops waiting (Unix milliseconds).
pub const EXT_EXPIRES_AT: &str = "expiresat";
/// Prefix of every node's reply inbox topic; clients may neither publish nor subscribe to these.
pub const INBOX_TOPIC_PREFIX: &str = "eventmesh-inbox-";
/// The group of a node's own inbox cursor.
pub(crate) const INBOX_GROUP: &str = "eventmesh-inbox";
/// Replies one inbox fetch takes at most.
const INBOX_BATCH: usize = 256;

/// The reply inbox topic of node `node_id`.
pub fn inbox_topic(node_id: &str) -> Result<Topic, TopicError> {
    Topic::new(&format!("{INBOX_TOPIC_PREFIX}{node_id}"))
}

/// Reads an `expiresat` value: Unix milliseconds as an integer or a decimal string.
pub(crate) fn parse_expires_at(v: &ExtensionValue) -> Option<i64> {
    match v {
        ExtensionValue::Integer(i) => Some(*i),
        ExtensionValue::String(s) => s.trim().parse().ok(),
        ExtensionValue::Boolean(_) => None,
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn timeout(ttl: Duration) -> EventMeshError {
    metrics_request("timeout");
    EventMeshError::new(
        ErrorCode::RequestTimeout,
        format!("no reply within the ttl of {} ms", ttl.as_millis()),
    )
}

fn metrics_request(outcome: &'static str) {
    ::metrics::counter!(metrics::REQUESTS, "outcome" => outcome).increment(1);
}

/// Removes a waiter when its requester stops waiting, whatever the reason.
struct Waiter<'a> {
    core: &'a Core,
    correlation_id: String,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.core.requests.lock().remove(&self.correlation_id);
    }
}

impl Core {
    /// Sends a request to `topic` and waits for the reply, up to `ttl` (default
    /// `options.request_ttl`). Past it: `RequestTimeout`.
    pub async fn request(
        &self,
        session: &SessionHandle,
        topic: &Topic,
        mut event: CloudEvent,
        ttl: Option<Duration>,
    ) -> Result<CloudEvent, EventMeshError> {
        self.check_running()?;
        session.check_open()?;
        if topic.name().starts_with(INBOX_TOPIC_PREFIX) {
            return Err(EventMeshError::new(
                ErrorCode::Forbidden,
                format!("topic `{topic}` is a reply inbox"),
            ));
        }
        let ttl = ttl.unwrap_or(self.shared.options.request_ttl);
        if ttl.is_zero() {
            return Err(EventMeshError::new(
                ErrorCode::BadRequest,
                "request ttl must be > 0",
            ));
        }
        let deadline = Instant::now() + ttl;
        // Random, so that a client cannot guess another requester's id and answer in its place.
        let correlation_id = format!("{:032x}", rand::random::<u128>());
        let expires_at =
            wall_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let ext = &mut event.extensions;
        ext.insert(
            EXT_REPLY_TO.into(),
            ExtensionValue::String(self.shared.node.node_id.clone()),
        );
        ext.insert(
            EXT_CORRELATION_ID.into(),
            ExtensionValue::String(correlation_id.clone()),
        );
        ext.insert(
            EXT_EXPIRES_AT.into(),
            ExtensionValue::String(expires_at.to_string()),
        );
        let records = self.shared.records(topic, vec![event])?;

        let (tx, rx) = oneshot::channel();
        {
            let mut requests = self.requests.lock();
            if requests.len() >= self.shared.options.max_pending_requests {
                return Err(EventMeshError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "{} requests are already waiting for replies on this node",
                        requests.len()
                    ),
                ));
            }
            requests.insert(correlation_id.clone(), tx);
        }
        let _waiter = Waiter {
            core: self,
            correlation_id: correlation_id.clone(),
        };
        // The inbox must be in place before anyone can answer.
        if !self.is_ready()
            && tokio::time::timeout_at(deadline, self.wait_ready()).await != Ok(true)
        {
            return Err(if self.is_stopping() {
                self.check_running().err().unwrap_or_else(|| timeout(ttl))
            } else {
                timeout(ttl)
            });
        }
        self.charge(session, 1)?;
        self.shared.store_publish(topic, records).await?;
        metrics::published(topic, 1);
        tracing::debug!(message = "Request sent.", topic = %topic, correlation_id = %correlation_id, ttl_ms = ttl.as_millis() as u64);
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => {
                metrics_request("replied");
                Ok(reply)
            }
            Ok(Err(_)) => Err(EventMeshError::new(
                ErrorCode::ShuttingDown,
                "the runtime is shutting down",
            )),
            Err(_) => Err(timeout(ttl)),
        }
    }

    /// Answers a request. `reply` must echo the request's `replyto` and `correlationid` (and
    /// `expiresat` when it had one). A reply past `expiresat`, or to a node that is neither
    /// registered in the meta store nor has an inbox in the event store, is dropped with a log
    /// line and still answered `Ok` (the responder did its part).
    pub async fn reply(
        &self,
        session: &SessionHandle,
        reply: CloudEvent,
    ) -> Result<(), EventMeshError> {
        self.check_running()?;
        session.check_open()?;
        reply.validate()?;
        let reply_to = reply
            .extension_str(EXT_REPLY_TO)
            .map(str::to_owned)
            .ok_or_else(|| missing(EXT_REPLY_TO))?;
        let correlation_id = reply
            .extension_str(EXT_CORRELATION_ID)
            .map(str::to_owned)
            .ok_or_else(|| missing(EXT_CORRELATION_ID))?;
        if let Some(exp) = reply.extension(EXT_EXPIRES_AT).and_then(parse_expires_at)
            && exp < wall_ms()
        {
            late_reply(&correlation_id, "it arrived after expiresat");
            return Ok(());
        }
        self.charge(session, 1)?;
        if reply_to == self.shared.node.node_id {
            // The requester is here: no need for a round trip through the store.
            let records = self.shared.records(&inbox_topic(&reply_to)?, vec![reply])?;
            if let Some(r) = records.into_iter().next() {
                self.complete(r.event);
            }
            return Ok(());
        }
        let inbox = inbox_topic(&reply_to).map_err(|e| {
            EventMeshError::new(
                ErrorCode::BadRequest,
                format!("`{EXT_REPLY_TO}` is not a node id: {e}"),
            )
        })?;
        let records = self.shared.records(&inbox, vec![reply])?;
        match self.shared.meta.get(&node_key(&reply_to)).await {
            Ok(Some(_)) => self.shared.store_publish(&inbox, records).await,
            Ok(None) => {
                // Not in this node's meta store, which is not shared between nodes (the embedded
                // one): the requester may still be a node on the same event store. Its inbox
                // topic exists there if so; publish without creating it.
                match self.shared.store.publish(&inbox, &records).await {
                    Ok(_) => Ok(()),
                    Err(StorageError::UnknownTopic(_)) => {
                        late_reply(
                            &correlation_id,
                            "no node with that id uses this event store",
                        );
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(error) => {
                tracing::warn!(message = "Failed to look up the requester's node; sending the reply anyway.", %error, node = %reply_to);
                self.shared.store_publish(&inbox, records).await
            }
        }
    }

    /// Hands a reply to its waiting requester, or drops it with a log line.
    pub(crate) fn complete(&self, reply: CloudEvent) {
        let Some(correlation_id) = reply.extension_str(EXT_CORRELATION_ID).map(str::to_owned)
        else {
            tracing::warn!(message = "Dropped an inbox event without a correlation id.", event_id = %reply.id);
            return;
        };
        let waiter = self.requests.lock().remove(&correlation_id);
        match waiter {
            Some(tx) => {
                if tx.send(reply).is_err() {
                    late_reply(&correlation_id, "the requester stopped waiting");
                }
            }
            None => late_reply(
                &correlation_id,
                "no requester waits for it (timed out or unknown)",
            ),
        }
    }

    /// Requests waiting for a reply on this node.
    pub fn pending_requests(&self) -> usize {
        self.requests.lock().len()
    }
}

fn missing(ext: &str) -> EventMeshError {
    EventMeshError::new(
        ErrorCode::BadRequest,
        format!("a reply must echo the request's `{ext}` extension"),
    )
}

fn late_reply(correlation_id: &str, why: &str) {
    ::metrics::counter!(metrics::LATE_REPLIES).increment(1);
    tracing::info!(message = "Dropped a late reply.", correlation_id = %correlation_id, reason = why);
}

/// The inbox cursor of this node.
pub(crate) fn inbox_consumer(node_id: &str) -> Result<ConsumerRef, EventMeshError> {
    let group = GroupName::new(INBOX_GROUP)?;
    Ok(ConsumerRef::clustering(inbox_topic(node_id)?, group))
}

/// Consumes this node's inbox until cancelled, completing requesters.
pub(crate) async fn run_inbox(
    core: Weak<Core>,
    shared: Arc<Shared>,
    consumer: ConsumerRef,
    cancel: CancellationToken,
) {
    loop {
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return,
            r = shared.store.fetch(&consumer, INBOX_BATCH, shared.options.crash_lease, shared.options.fetch_wait) => r,
        };
        match fetched {
            Ok(deliveries) => {
                if deliveries.is_empty() {
                    continue;
                }
                let Some(core) = core.upgrade() else { return };
                let tokens: Vec<_> = deliveries.iter().map(|d| d.token.clone()).collect();
                for d in deliveries {
                    core.complete(d.record.event);
                }
                if let Err(error) = shared.store.ack(&consumer, &tokens).await {
                    tracing::warn!(message = "Failed to ack inbox replies.", %error, consumer = %consumer);
                }
            }
            Err(error) => {
                tracing::warn!(message = "Failed to fetch inbox replies.", %error, consumer = %consumer);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
