//! [`NatsStore`]: the [`EventStore`] over NATS JetStream.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, ConnectOptions, Event, RequestErrorKind, ServerAddr};
use async_trait::async_trait;
use bytes::Bytes;
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use futures_util::future::join_all;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::api::{Api, ConsumerSpec, Start, StreamSpec};
use crate::consumer::{PullEnd, Pulled, parse_ack_subject, pull, read_token, token_for};
use crate::error::NatsError;
use crate::held::Held;
use crate::lease::Leases;
use crate::names::Names;
use crate::options::{Credentials, NatsOptions};

/// The NATS JetStream event store. See the crate docs for the mapping and the guarantees.
#[derive(Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    js: async_nats::jetstream::Context,
    api: Api,
    names: Names,
    opts: NatsOptions,
    masked_url: String,
    leases: Leases,
    /// Deliveries whose lease runs, to drop the server's duplicate copies of them.
    held: Held,
    /// Consumers known to exist (checked once, then trusted until a pull finds no answer):
    /// JetStream does not answer a pull on a consumer that does not exist.
    known: Mutex<HashSet<Arc<str>>>,
    closed: AtomicBool,
}

fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let shift = u32::try_from(attempts.min(16)).unwrap_or(16);
    Duration::from_millis(25u64.saturating_mul(1u64 << shift)).min(max)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl NatsStore {
    /// Connects to NATS, checks that JetStream answers, and starts the lease keeper. Fails with
    /// [`StorageError::Unavailable`] when no server can be reached within `connect_timeout` and
    /// with [`StorageError::Invalid`] for invalid options. After that first connection the client
    /// reconnects by itself, for ever, with pauses growing to `max_reconnect_backoff`.
    pub async fn connect(opts: NatsOptions) -> StorageResult<Self> {
        let parsed = opts.parse()?;
        let masked_url = opts.masked_url();
        let addrs = parsed
            .servers
            .iter()
            .map(|s| {
                s.parse::<ServerAddr>().map_err(|e| {
                    StorageError::Invalid(format!("NATS URL `{masked_url}`: {s}: {e}"))
                })
            })
            .collect::<StorageResult<Vec<_>>>()?;
        let max_backoff = opts.max_reconnect_backoff;
        let log_url = masked_url.clone();
        let mut co = ConnectOptions::new()
            .name("eventmesh")
            .connection_timeout(opts.connect_timeout)
            .request_timeout(Some(opts.request_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_backoff))
            .event_callback(move |event| {
                let url = log_url.clone();
                async move {
                    match event {
                        Event::Disconnected => warn!(
                            message = "NATS connection lost; reconnecting.",
                            url = %url
                        ),
                        Event::Connected => info!(message = "Connected to NATS.", url = %url),
                        Event::Closed => debug!(message = "NATS connection closed.", url = %url),
                        other => warn!(message = "NATS client event.", event = %other, url = %url),
                    }
                }
            });
        co = match parsed.credentials {
            Credentials::None => co,
            Credentials::UserPassword(u, p) => co.user_and_password(u, p),
            Credentials::Token(t) => co.token(t),
        };
        let client = match tokio::time::timeout(
            opts.connect_timeout + Duration::from_secs(1),
            co.connect(addrs),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(StorageError::Unavailable(format!(
                    "cannot connect to NATS at {masked_url}: {e}"
                )));
            }
            Err(_) => {
                return Err(StorageError::Unavailable(format!(
                    "cannot connect to NATS at {masked_url} within {} ms",
                    opts.connect_timeout.as_millis()
                )));
            }
        };
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(opts.request_timeout)
            .ack_timeout(opts.request_timeout)
            .build(client.clone());
        let api = Api::new(client.clone(), opts.request_timeout);
        if let Err(e) = api.account_info().await {
            return Err(StorageError::Unavailable(format!(
                "NATS at {masked_url} does not offer JetStream (start nats-server with -js): {e}"
            )));
        }
        let leases = Leases::start(client.clone(), opts.ack_wait);
        info!(
            message = "Opened the NATS JetStream store.",
            url = %masked_url,
            stream_prefix = %opts.stream_prefix,
            replicas = opts.replicas,
            ack_wait_ms = u64::try_from(opts.ack_wait.as_millis()).unwrap_or(u64::MAX)
        );
        Ok(NatsStore {
            inner: Arc::new(Inner {
                client,
                js,
                api,
                names: Names::new(&opts.stream_prefix),
                opts,
                masked_url,
                leases,
                held: Held::default(),
                known: Mutex::new(HashSet::new()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &NatsOptions {
        &self.inner.opts
    }
}

impl Inner {
    fn check_open(&self) -> StorageResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Open and connected right now; a call made while reconnecting fails at once.
    fn check_ready(&self) -> StorageResult<()> {
        self.check_open()?;
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(StorageError::Unavailable(format!(
                "not connected to NATS at {} ({state:?}; reconnecting by itself)",
                self.masked_url
            ))),
        }
    }

    fn unavailable(&self, what: &str) -> StorageError {
        StorageError::Unavailable(format!(
            "{what} (NATS at {}, request timeout {} ms)",
            self.masked_url,
            self.opts.request_timeout.as_millis()
        ))
    }

    /// Maps an error of a call on a topic's stream.
    fn on_stream(&self, topic: &Topic, e: NatsError) -> StorageError {
        if e.is_stream_not_found() {
            StorageError::UnknownTopic(topic.to_string())
        } else {
            e.into()
        }
    }

    /// Maps an error of a call on a cursor's consumer.
    fn on_consumer(&self, c: &ConsumerRef, e: NatsError) -> StorageError {
        if e.is_stream_not_found() {
            StorageError::UnknownTopic(c.topic.to_string())
        } else if e.is_consumer_not_found() {
            StorageError::UnknownConsumer(c.to_string())
        } else {
            e.into()
        }
    }

    fn consumer_key(&self, c: &ConsumerRef) -> (String, String, Arc<str>) {
        let stream = self.names.stream(&c.topic);
        let consumer = self.names.consumer(c);
        let key: Arc<str> = Arc::from(format!("{stream}/{consumer}"));
        (stream, consumer, key)
    }

    fn spec<'a>(&self, c: &ConsumerRef, name: &'a str, start: StartFrom) -> ConsumerSpec<'a> {
        ConsumerSpec {
            name,
            description: format!("eventmesh cursor {c}"),
            start: match start {
                StartFrom::Earliest | StartFrom::Offset(0) => Start::All,
                StartFrom::Latest => Start::New,
                StartFrom::Offset(seq) => Start::Sequence(seq),
                StartFrom::Time(ms) => Start::Time(ms),
            },
            ack_wait: self.opts.ack_wait,
            max_ack_pending: self.opts.max_ack_pending,
            inactive_threshold: c.member.as_ref().map(|_| self.opts.member_expiry),
        }
    }

    /// Why a pull found no consumer: the topic or the cursor is missing, or the server is not
    /// ready to serve it.
    async fn missing_consumer(
        &self,
        c: &ConsumerRef,
        stream: &str,
        consumer: &str,
    ) -> StorageError {
        match self.api.consumer_info(stream, consumer).await {
            Err(e) => self.on_consumer(c, e),
            Ok(_) => self.unavailable(&format!("consumer {stream}/{consumer} is not ready yet")),
        }
    }

    /// Checks once that the consumer exists (JetStream leaves pulls on a missing consumer
    /// unanswered), then remembers it.
    async fn ensure_known(
        &self,
        c: &ConsumerRef,
        stream: &str,
        consumer: &str,
        key: &Arc<str>,
    ) -> StorageResult<()> {
        if self.known.lock().contains(key) {
            return Ok(());
        }
        self.api
            .consumer_info(stream, consumer)
            .await
            .map_err(|e| self.on_consumer(c, e))?;
        self.known.lock().insert(key.clone());
        Ok(())
    }

    /// The delivery `reply` was acked or nacked: a copy of its event is no longer a duplicate.
    fn release_held(&self, key: &Arc<str>, reply: &str) {
        if let Some(a) = parse_ack_subject(reply) {
            self.held.release(key, a.stream_seq);
        }
    }

    fn forget(&self, key: &str) {
        self.known
            .lock()
            .retain(|k| &**k != key && !k.starts_with(&format!("{key}/")));
        self.leases.forget_consumer(key);
        self.held.forget_consumer(key);
    }

    /// Sends one acknowledgement kind for a delivery and waits for the server to confirm it.
    /// `Ok(false)`: nobody serves the consumer any more (deleted or sought): nothing to do.
    async fn confirm(&self, reply: &str, body: Bytes) -> StorageResult<bool> {
        match self.client.request(reply.to_owned(), body).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(false),
            Err(e) => {
                Err(self.unavailable(&format!("no confirmation of an ack from JetStream: {e}")))
            }
        }
    }

    fn to_delivery(&self, c: &ConsumerRef, p: Pulled) -> Option<Delivery> {
        let record = match EventRecord::decode(&p.payload) {
            Ok(r) if r.topic == c.topic => r,
            Ok(r) => {
                warn!(
                    message = "Dropped a stored event of another topic.",
                    cursor = %c,
                    topic = %r.topic,
                    stream_seq = p.ack.stream_seq
                );
                self.terminate(p.reply);
                return None;
            }
            Err(error) => {
                warn!(
                    message = "Dropped a stored message that is not an event record.",
                    %error,
                    cursor = %c,
                    stream_seq = p.ack.stream_seq
                );
                self.terminate(p.reply);
                return None;
            }
        };
        Some(Delivery {
            token: token_for(&p.reply),
            offset: Offset {
                partition: 0,
                seq: p.ack.stream_seq,
            },
            delivery_count: u32::try_from(p.ack.delivered).unwrap_or(u32::MAX),
            record,
        })
    }

    /// `+TERM`: the server never hands the message out again.
    fn terminate(&self, reply: String) {
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = client.publish(reply, Bytes::from_static(b"+TERM")).await {
                warn!(message = "Could not terminate a foreign message.", %error);
            }
        });
    }
}

#[async_trait]
impl EventStore for NatsStore {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        let s = &self.inner;
        s.check_ready()?;
        let stream = s.names.stream(topic);
        match s.api.stream_info(&stream).await {
            Ok(_) => return Ok(false),
            Err(e) if e.is_stream_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let subject = s.names.subject(topic);
        let spec = StreamSpec {
            name: &stream,
            subject: &subject,
            description: Names::description(topic),
            replicas: s.opts.replicas,
            duplicate_window: s.opts.duplicate_window,
        };
        match s.api.create_stream(&spec).await {
            Ok(_) => {
                info!(message = "Created topic stream.", topic = %topic, stream = %stream);
                Ok(true)
            }
            // Created meanwhile by another node.
            Err(e) if s.api.stream_info(&stream).await.is_ok() => {
                debug!(message = "Topic stream created concurrently.", topic = %topic, error = %e);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        let s = &self.inner;
        s.check_ready()?;
        let stream = s.names.stream(topic);
        s.api
            .delete_stream(&stream)
            .await
            .map_err(|e| s.on_stream(topic, e))?;
        s.forget(&stream);
        info!(message = "Deleted topic stream.", topic = %topic, stream = %stream);
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        let s = &self.inner;
        s.check_ready()?;
        let streams = s.api.list_streams().await?;
        Ok(streams
            .into_iter()
            .filter_map(|info| {
                let topic = s
                    .names
                    .topic_of(&info.config.name, info.config.description.as_deref())?;
                Some(TopicInfo {
                    topic,
                    partitions: 1,
                    retained_events: info.state.messages,
                    retained_bytes: Some(info.state.bytes),
                })
            })
            .collect())
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        let s = &self.inner;
        s.check_open()?;
        if let Some(r) = records.iter().find(|r| r.topic != *topic) {
            return Err(StorageError::Invalid(format!(
                "event {} is for topic `{}`, not `{topic}`; the batch was refused as a whole",
                r.id, r.topic
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let max_payload = s.client.server_info().max_payload;
        let payloads: Vec<Bytes> = records.iter().map(EventRecord::to_bytes).collect();
        if let Some((r, p)) = records
            .iter()
            .zip(&payloads)
            .find(|(_, p)| max_payload > 0 && p.len() > max_payload)
        {
            return Err(StorageError::Invalid(format!(
                "event {} is {} bytes stored; the NATS server accepts at most {max_payload} (raise max_payload); the batch was refused as a whole",
                r.id,
                p.len()
            )));
        }
        s.check_ready()?;
        let stream = s.names.stream(topic);
        let subject = s.names.subject(topic);
        let bound = s.opts.request_timeout + Duration::from_millis(500);
        let sent = async {
            let mut acks = Vec::with_capacity(records.len());
            for (r, payload) in records.iter().zip(payloads) {
                let msg = PublishMessage::build()
                    .payload(payload)
                    .message_id(r.id.to_string())
                    .expected_stream(&stream);
                acks.push(s.js.send_publish(subject.clone(), msg).await?);
            }
            let mut offsets = Vec::with_capacity(acks.len());
            for ack in acks {
                let ack = ack.await?;
                offsets.push(Offset {
                    partition: 0,
                    seq: ack.sequence,
                });
            }
            Ok::<_, async_nats::jetstream::context::PublishError>(offsets)
        };
        let result = match tokio::time::timeout(bound, sent).await {
            Ok(r) => r,
            Err(_) => {
                return Err(s.unavailable(&format!(
                    "publish of {} events to `{topic}` not acknowledged by JetStream in time; some may be stored",
                    records.len()
                )));
            }
        };
        match result {
            Ok(offsets) => Ok(offsets),
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                match s.api.stream_info(&stream).await {
                    Err(e) if e.is_stream_not_found() => {
                        Err(StorageError::UnknownTopic(topic.to_string()))
                    }
                    _ => Err(s.unavailable(&format!(
                        "JetStream did not take the publish to `{topic}` (no responders)"
                    ))),
                }
            }
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => Err(
                StorageError::Invalid(format!("publish to `{topic}` refused: {e}")),
            ),
            Err(e) => Err(s.unavailable(&format!(
                "publish of {} events to `{topic}` failed ({e}); some may be stored",
                records.len()
            ))),
        }
    }

    async fn subscribe(&self, c: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_ready()?;
        let (stream, consumer, _) = s.consumer_key(c);
        match s.api.consumer_info(&stream, &consumer).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_consumer_not_found() => {}
            Err(e) => return Err(s.on_consumer(c, e)),
        }
        let spec = s.spec(c, &consumer, start);
        match s.api.create_consumer(&stream, &spec).await {
            Ok(_) => {
                info!(message = "Created cursor.", cursor = %c, consumer = %consumer, start = ?start);
                Ok(())
            }
            Err(e) if e.is_stream_not_found() => {
                Err(StorageError::UnknownTopic(c.topic.to_string()))
            }
            // Created meanwhile by another node: keep its position.
            Err(e) if s.api.consumer_info(&stream, &consumer).await.is_ok() => {
                debug!(message = "Cursor created concurrently.", cursor = %c, error = %e);
                Ok(())
            }
            Err(e) => Err(s.on_consumer(c, e)),
        }
    }

    async fn unsubscribe(&self, c: &ConsumerRef) -> StorageResult<()> {
        let s = &self.inner;
        s.check_ready()?;
        let (stream, consumer, key) = s.consumer_key(c);
        match s.api.delete_consumer(&stream, &consumer).await {
            Ok(_) => {}
            Err(e) if e.is_consumer_not_found() => {}
            Err(e) => return Err(s.on_consumer(c, e)),
        }
        s.forget(&key);
        info!(message = "Deleted cursor.", cursor = %c, consumer = %consumer);
        Ok(())
    }

    async fn fetch(
        &self,
        c: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let s = &self.inner;
        s.check_ready()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let (stream, consumer, key) = s.consumer_key(c);
        s.ensure_known(c, &stream, &consumer, &key).await?;
        let started = Instant::now();
        let grace = s.opts.request_timeout;
        let (mut got, mut end) = pull(&s.client, &stream, &consumer, max, None, grace).await?;
        if got.is_empty() && end == PullEnd::Done && !wait.is_zero() {
            (got, end) = pull(&s.client, &stream, &consumer, 1, Some(wait), grace).await?;
            if !got.is_empty() && max > 1 && end == PullEnd::Done {
                let (more, e) = pull(&s.client, &stream, &consumer, max - 1, None, grace).await?;
                got.extend(more);
                end = e;
            }
        }
        if got.is_empty() {
            match end {
                PullEnd::NoConsumer => {
                    s.forget(&key);
                    return Err(s.missing_consumer(c, &stream, &consumer).await);
                }
                PullEnd::TimedOut => {
                    s.check_ready()?;
                    // No answer at all: the consumer may be gone (deleted by another node).
                    s.known.lock().remove(&key);
                }
                PullEnd::ConsumerDeleted => {
                    s.known.lock().remove(&key);
                }
                PullEnd::Done => {}
            }
        }
        let mut out = Vec::with_capacity(got.len());
        let now = Instant::now();
        for p in got {
            let (seq, delivered) = (p.ack.stream_seq, p.ack.delivered);
            if !s.held.admit(&key, seq, delivered, now, started + lease) {
                warn!(
                    message = "Dropped a duplicate copy of a delivery whose lease still runs (a redelivery bug of nats-server 2.9 and early 2.10).",
                    cursor = %c,
                    stream_seq = seq,
                    delivered
                );
                continue;
            }
            s.leases.track(&p.reply, &key, started, lease);
            if let Some(d) = s.to_delivery(c, p) {
                out.push(d);
            }
        }
        Ok(out)
    }

    async fn ack(&self, c: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (stream, consumer, key) = s.consumer_key(c);
        let replies = tokens
            .iter()
            .map(|t| read_token(t, &stream, &consumer))
            .collect::<StorageResult<Vec<_>>>()?;
        if replies.is_empty() {
            return Ok(());
        }
        s.check_ready()?;
        for r in &replies {
            s.leases.release(r);
            s.release_held(&key, r);
        }
        let results = join_all(
            replies
                .iter()
                .map(|r| s.confirm(r, Bytes::from_static(b"+ACK"))),
        )
        .await;
        for r in results {
            r?;
        }
        Ok(())
    }

    async fn nack(&self, c: &ConsumerRef, token: &AckToken, delay: Duration) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (stream, consumer, key) = s.consumer_key(c);
        let reply = read_token(token, &stream, &consumer)?;
        s.check_ready()?;
        s.leases.release(reply);
        s.release_held(&key, reply);
        let body = if delay.is_zero() {
            Bytes::from_static(b"-NAK")
        } else {
            Bytes::from(format!("-NAK {{\"delay\":{}}}", nanos(delay)))
        };
        s.confirm(reply, body).await.map(drop)
    }

    async fn extend_lease(
        &self,
        c: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let s = &self.inner;
        s.check_open()?;
        let (stream, consumer, key) = s.consumer_key(c);
        let replies = tokens
            .iter()
            .map(|t| read_token(t, &stream, &consumer))
            .collect::<StorageResult<Vec<_>>>()?;
        if replies.is_empty() {
            return Ok(());
        }
        s.check_ready()?;
        let sent = Instant::now();
        let results = join_all(
            replies
                .iter()
                .map(|r| s.confirm(r, Bytes::from_static(b"+WPI"))),
        )
        .await;
        for (r, ok) in replies.iter().zip(results) {
            if ok? {
                s.leases.extended(r, &key, sent, lease);
                if let Some(a) = parse_ack_subject(r) {
                    s.held.extend(&key, a.stream_seq, sent + lease);
                }
            }
        }
        Ok(())
    }

    async fn seek(&self, c: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let s = &self.inner;
        s.check_ready()?;
        let (stream, consumer, key) = s.consumer_key(c);
        s.api
            .consumer_info(&stream, &consumer)
            .await
            .map_err(|e| s.on_consumer(c, e))?;
        // JetStream cannot move a consumer: it is made again, under the same name.
        match s.api.delete_consumer(&stream, &consumer).await {
            Ok(_) => {}
            Err(e) if e.is_consumer_not_found() => {}
            Err(e) => return Err(s.on_consumer(c, e)),
        }
        s.forget(&key);
        let spec = s.spec(c, &consumer, target);
        s.api
            .create_consumer(&stream, &spec)
            .await
            .map_err(|e| s.on_consumer(c, e))?;
        info!(message = "Moved cursor.", cursor = %c, target = ?target);
        Ok(())
    }

    async fn cursor_info(&self, c: &ConsumerRef) -> StorageResult<CursorInfo> {
        let s = &self.inner;
        s.check_ready()?;
        let (stream, consumer, _) = s.consumer_key(c);
        let info = s
            .api
            .consumer_info(&stream, &consumer)
            .await
            .map_err(|e| s.on_consumer(c, e))?;
        Ok(CursorInfo {
            committed: vec![(0, info.ack_floor.stream_seq.saturating_add(1))],
            in_flight: info.num_ack_pending,
            backlog: Some(info.num_pending.saturating_add(info.num_ack_pending)),
        })
    }

    async fn health(&self) -> StorageResult<()> {
        let s = &self.inner;
        s.check_ready()?;
        s.api.account_info().await.map_err(Into::into)
    }

    async fn close(&self) -> StorageResult<()> {
        let s = &self.inner;
        if s.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        s.leases.close();
        // Everything sent so far reaches the server, then the connection closes.
        let drained = tokio::time::timeout(s.opts.request_timeout, s.client.drain()).await;
        if !matches!(drained, Ok(Ok(()))) {
            warn!(message = "NATS connection did not drain cleanly on close.", url = %s.masked_url);
        }
        info!(message = "Closed the NATS JetStream store.", url = %s.masked_url);
        Ok(())
    }
}
