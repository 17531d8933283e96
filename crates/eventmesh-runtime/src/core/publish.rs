//! Publishing: validation, `max_event_bytes`, rate limits, topic auto-creation, the store call.
//!
//! A batch is accepted or refused as a whole: every event is validated and sized first, then the
//! global and the session's token buckets are charged together (a refusal by one refunds the
//! other), then the store appends the batch all or nothing. Over a rate limit the caller gets
//! `Overloaded`, never a silent drop. Topics are created on first use and remembered; a topic
//! deleted behind the cache's back is created again once.

use eventmesh_core::{CloudEvent, ErrorCode, EventId, EventMeshError, EventRecord, Topic};
use eventmesh_storage::StorageError;

use super::request_reply::INBOX_TOPIC_PREFIX;
use super::session::SessionHandle;
use super::{Core, Shared, metrics};

impl Shared {
    /// Creates `topic` in the store unless it is known to exist.
    pub(crate) async fn ensure_topic(&self, topic: &Topic) -> Result<(), EventMeshError> {
        if self.topics.read().contains(topic) {
            return Ok(());
        }
        let created = self.store.create_topic(topic).await?;
        if created {
            tracing::info!(message = "Topic created.", topic = %topic);
        }
        self.topics.write().insert(topic.clone());
        Ok(())
    }

    /// Appends records to the store (no limits: for the core's own writes and checked batches).
    pub(crate) async fn store_publish(
        &self,
        topic: &Topic,
        records: Vec<EventRecord>,
    ) -> Result<(), EventMeshError> {
        self.ensure_topic(topic).await?;
        match self.store.publish(topic, &records).await {
            Ok(_) => Ok(()),
            Err(StorageError::UnknownTopic(_)) => {
                // Deleted since we cached it: create it again, once.
                self.topics.write().remove(topic);
                self.ensure_topic(topic).await?;
                self.store
                    .publish(topic, &records)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Wraps events into records for `topic`, checking each and its encoded size.
    pub(crate) fn records(
        &self,
        topic: &Topic,
        events: Vec<CloudEvent>,
    ) -> Result<Vec<EventRecord>, EventMeshError> {
        let max = self.options.max_event_bytes;
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                event.validate().map_err(|e| {
                    metrics::rejected("invalid");
                    EventMeshError::new(
                        ErrorCode::InvalidEvent,
                        format!("event {i} (id `{}`): {e}", event.id),
                    )
                })?;
                let record = EventRecord::new(topic.clone(), event);
                // The hint is an upper bound: encode only when it is over the limit.
                if record.encoded_len_hint() > max {
                    let len = record.to_bytes().len();
                    if len > max {
                        metrics::rejected("too_large");
                        return Err(EventMeshError::new(
                            ErrorCode::EventTooLarge,
                            format!(
                                "event {i} (id `{}`) is {len} bytes encoded; the limit is {max}",
                                record.event.id
                            ),
                        ));
                    }
                }
                Ok(record)
            })
            .collect()
    }
}

impl Core {
    /// Publishes a batch to `topic`, all or nothing, and returns the mesh ids in order once the
    /// store holds the batch durably (under its policy). An empty batch is accepted as is.
    pub async fn publish(
        &self,
        session: &SessionHandle,
        topic: &Topic,
        events: Vec<CloudEvent>,
    ) -> Result<Vec<EventId>, EventMeshError> {
        self.check_running()?;
        session.check_open()?;
        if topic.name().starts_with(INBOX_TOPIC_PREFIX) {
            return Err(EventMeshError::new(
                ErrorCode::Forbidden,
                format!(
                    "topic `{topic}` is a reply inbox reserved for the mesh; answer requests with reply"
                ),
            ));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let records = self.shared.records(topic, events)?;
        self.charge(session, records.len())?;
        let ids: Vec<EventId> = records.iter().map(|r| r.id).collect();
        let n = records.len();
        if let Err(e) = self.shared.store_publish(topic, records).await {
            metrics::rejected("storage");
            tracing::warn!(message = "Failed to store a publish.", error = %e, topic = %topic, events = n, session = %session.id());
            return Err(e);
        }
        metrics::published(topic, n);
        Ok(ids)
    }

    /// Takes `n` tokens from the global and the session's buckets, both or neither.
    pub(crate) fn charge(&self, session: &SessionHandle, n: usize) -> Result<(), EventMeshError> {
        if !self.global_limit.try_take(n) {
            metrics::rejected("overloaded");
            return Err(EventMeshError::new(
                ErrorCode::Overloaded,
                format!(
                    "global publish rate of {}/s exceeded; retry later",
                    self.shared.options.publish_rate
                ),
            ));
        }
        if !session.limiter.try_take(n) {
            self.global_limit.refund(n);
            metrics::rejected("overloaded");
            return Err(EventMeshError::new(
                ErrorCode::Overloaded,
                format!(
                    "session publish rate of {}/s exceeded; retry later",
                    self.shared.options.session_publish_rate
                ),
            ));
        }
        Ok(())
    }
}
