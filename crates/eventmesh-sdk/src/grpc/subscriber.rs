//! The gRPC stream subscriber: one task per subscriber owning the `subscribeStream` call, its
//! heartbeats and its reconnects.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventmesh_core::{CloudEvent, SubscriptionMode, SubscriptionType};
use eventmesh_protocol_grpc::convert::{self, HeartbeatItem, SubscriptionItem};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event::Data;
use eventmesh_protocol_grpc::v1::consumer_service_client::ConsumerServiceClient;
use eventmesh_protocol_grpc::v1::heartbeat_service_client::HeartbeatServiceClient;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{GrpcConfig, GrpcError, STREAM_URL};
use crate::tcp::HandlerError;

/// The longest pause between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Messages queued for the request stream at most.
const OUT_CAPACITY: usize = 64;
/// How long closing waits for the server to end the stream (so queued acks reach it).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Ends the request stream and waits, at most [`CLOSE_WAIT`], for the server to end the
/// response stream: the acks queued before reach the server, which then returns what is still
/// un-acked to the group at once. Events pushed meanwhile are left un-acked.
async fn finish(tx: mpsc::Sender<v1::CloudEvent>, inbound: &mut tonic::Streaming<v1::CloudEvent>) {
    drop(tx);
    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
    if tokio::time::timeout(CLOSE_WAIT, drained).await.is_err() {
        debug!(message = "The server did not end the stream in time; closing it.");
    }
}

/// One event handed to the handler.
#[derive(Clone, Debug)]
pub struct GrpcDelivery {
    /// The topic.
    pub topic: String,
    /// The event (its extensions include what the runtime added; requests carry `replyto`,
    /// `correlationid`, `expiresat`).
    pub event: CloudEvent,
    /// Whether it is a request (a SYNC subscription): the handler's `Some` is the reply.
    pub is_request: bool,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Option<CloudEvent>, HandlerError>> + Send>>;
type Handler = Arc<dyn Fn(GrpcDelivery) -> BoxFuture + Send + Sync>;

/// A running stream subscriber. Dropping it stops it (un-acked events are redelivered).
pub struct GrpcSubscriber {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    resubscribes: Arc<AtomicU64>,
}

impl std::fmt::Debug for GrpcSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcSubscriber")
            .field("closed", &self.cancel.is_cancelled())
            .finish()
    }
}

impl GrpcSubscriber {
    /// Subscribes to `topics` in `config.consumer_group` and calls `handler` for each event, one
    /// at a time: `Ok(None)` acknowledges it, `Ok(Some(reply))` answers a request then
    /// acknowledges it, `Err` refuses it (redelivered later). Returns once the server accepted
    /// the subscription.
    pub async fn start<F, Fut>(
        config: GrpcConfig,
        topics: Vec<(String, SubscriptionMode, SubscriptionType)>,
        handler: F,
    ) -> Result<Self, GrpcError>
    where
        F: Fn(GrpcDelivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CloudEvent>, HandlerError>> + Send + 'static,
    {
        Self::start_filtered(config, topics, None, handler).await
    }

    /// [`GrpcSubscriber::start`] with a filter for every topic: a CloudEvents SQL (CESQL 1.0)
    /// expression such as `type = 'order.created' AND source LIKE '/shop/%'`, sent as the
    /// subscription's `filter` attribute. The mesh pushes only the events it matches; the
    /// others are done for the group without delivery. The filter belongs to the (group,
    /// topic): every member must subscribe with the same one. A blank filter is none.
    ///
    /// # Errors
    /// As [`GrpcSubscriber::start`]; an invalid expression, or one that differs from the
    /// group's, is [`GrpcError::Server`] with `statuscode` "17" and the server's reason (for a
    /// bad expression, the parse error with its position).
    pub async fn start_filtered<F, Fut>(
        config: GrpcConfig,
        topics: Vec<(String, SubscriptionMode, SubscriptionType)>,
        filter: Option<&str>,
        handler: F,
    ) -> Result<Self, GrpcError>
    where
        F: Fn(GrpcDelivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CloudEvent>, HandlerError>> + Send + 'static,
    {
        if topics.is_empty() {
            return Err(GrpcError::Config("no topic to subscribe".to_owned()));
        }
        let handler: Handler = Arc::new(move |d| Box::pin(handler(d)) as BoxFuture);
        let items: Vec<SubscriptionItem> = topics
            .into_iter()
            .map(|(t, m, ty)| SubscriptionItem::new(t, m, ty))
            .collect();
        let cancel = CancellationToken::new();
        let resubscribes = Arc::new(AtomicU64::new(0));
        let (first_tx, first_rx) = oneshot::channel();
        let worker = Worker {
            config: Arc::new(config),
            items,
            filter: filter.filter(|f| !f.trim().is_empty()).map(str::to_owned),
            handler,
            cancel: cancel.clone(),
            resubscribes: resubscribes.clone(),
        };
        let timeout = worker.config.timeout;
        let task = tokio::spawn(worker.run(first_tx));
        let sub = GrpcSubscriber {
            cancel,
            task: Some(task),
            resubscribes,
        };
        match tokio::time::timeout(timeout, first_rx).await {
            Ok(Ok(Ok(()))) => Ok(sub),
            Ok(Ok(Err(e))) => {
                sub.close().await;
                Err(e)
            }
            Ok(Err(_)) => Err(GrpcError::Closed),
            Err(_) => {
                sub.close().await;
                Err(GrpcError::Answer(format!(
                    "no answer to the subscription within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    /// How often the subscriber subscribed again after its first subscription (server restarts,
    /// broken streams, `statuscode` "30").
    pub fn resubscribes(&self) -> u64 {
        self.resubscribes.load(Ordering::Relaxed)
    }

    /// Stops the subscriber and waits for its task: the stream is ended after the acks of the
    /// events handled so far (waiting at most 2 s for the server to close it).
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for GrpcSubscriber {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Worker {
    config: Arc<GrpcConfig>,
    items: Vec<SubscriptionItem>,
    filter: Option<String>,
    handler: Handler,
    cancel: CancellationToken,
    resubscribes: Arc<AtomicU64>,
}

enum Ended {
    Cancelled,
    Failed(GrpcError),
}

impl Worker {
    async fn run(self, first: oneshot::Sender<Result<(), GrpcError>>) {
        let mut first = Some(first);
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.session(&mut first).await {
                Ended::Cancelled => return,
                Ended::Failed(e) => {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    warn!(message = "gRPC subscriber stream lost; reconnecting.", error = %e, backoff_ms = backoff.as_millis() as u64);
                }
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn subscription(&self) -> v1::CloudEvent {
        let c = &self.config;
        let mut attributes = c.identity();
        use convert::string_value as s;
        attributes.insert(keys::CONSUMER_GROUP.to_owned(), s(c.consumer_group.clone()));
        attributes.insert(keys::DATA_CONTENT_TYPE.to_owned(), s("application/json"));
        attributes.insert(keys::ACK_MODE.to_owned(), s(keys::ACK_MODE_EXPLICIT));
        attributes.insert(keys::UNACK.to_owned(), s(c.window.to_string()));
        if let Some(f) = &self.filter {
            attributes.insert(keys::FILTER.to_owned(), s(f.clone()));
        }
        v1::CloudEvent {
            id: crate::random_id(),
            source: "/eventmesh-sdk-rust".to_owned(),
            spec_version: "1.0".to_owned(),
            r#type: "eventmesh.subscription".to_owned(),
            attributes,
            data: Some(Data::TextData(convert::subscription_data(&self.items))),
        }
    }

    fn heartbeat(&self) -> v1::CloudEvent {
        let c = &self.config;
        let mut attributes = c.identity();
        attributes.insert(
            keys::CLIENT_TYPE.to_owned(),
            convert::integer_value(keys::CLIENT_TYPE_SUB),
        );
        attributes.insert(
            keys::CONSUMER_GROUP.to_owned(),
            convert::string_value(c.consumer_group.clone()),
        );
        let items: Vec<HeartbeatItem> = self
            .items
            .iter()
            .map(|i| HeartbeatItem {
                topic: i.topic.clone(),
                url: STREAM_URL.to_owned(),
            })
            .collect();
        v1::CloudEvent {
            id: crate::random_id(),
            source: "/eventmesh-sdk-rust".to_owned(),
            spec_version: "1.0".to_owned(),
            r#type: "eventmesh.heartbeat".to_owned(),
            attributes,
            data: Some(Data::TextData(convert::heartbeat_data(&items))),
        }
    }

    fn control(&self, kind: &str, ack_id: &str) -> v1::CloudEvent {
        let mut attributes = self.config.identity();
        attributes.insert(
            keys::SUB_MESSAGE_TYPE.to_owned(),
            convert::string_value(kind),
        );
        attributes.insert(keys::ACK_ID.to_owned(), convert::string_value(ack_id));
        v1::CloudEvent {
            id: crate::random_id(),
            source: "/eventmesh-sdk-rust".to_owned(),
            spec_version: "1.0".to_owned(),
            r#type: "eventmesh.ack".to_owned(),
            attributes,
            data: None,
        }
    }

    fn reply(&self, request: &CloudEvent, topic: &str, mut reply: CloudEvent) -> v1::CloudEvent {
        for k in ["correlationid", "replyto", "expiresat"] {
            if let Some(v) = request.extension(k) {
                reply.extensions.insert(k.to_owned(), v.clone());
            }
        }
        if reply.subject.is_none() {
            reply.subject = Some(topic.to_owned());
        }
        let mut pb = convert::from_event(&reply);
        pb.attributes.extend(self.config.identity());
        pb.attributes.insert(
            keys::SUB_MESSAGE_TYPE.to_owned(),
            convert::string_value(keys::SUB_MESSAGE_TYPE_REPLY),
        );
        pb.attributes.insert(
            keys::PRODUCER_GROUP.to_owned(),
            convert::string_value(self.config.consumer_group.clone()),
        );
        pb
    }

    async fn session(&self, first: &mut Option<oneshot::Sender<Result<(), GrpcError>>>) -> Ended {
        let channel = tokio::select! {
            () = self.cancel.cancelled() => return Ended::Cancelled,
            c = self.config.connect() => match c {
                Ok(c) => c,
                Err(e) => return Ended::Failed(e),
            },
        };
        let mut consumer = ConsumerServiceClient::new(channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut heartbeats = HeartbeatServiceClient::new(channel);
        let (tx, rx) = mpsc::channel::<v1::CloudEvent>(OUT_CAPACITY);
        if tx.send(self.subscription()).await.is_err() {
            return Ended::Failed(GrpcError::Closed);
        }
        let opened = tokio::select! {
            () = self.cancel.cancelled() => return Ended::Cancelled,
            r = consumer.subscribe_stream(ReceiverStream::new(rx)) => r,
        };
        let mut inbound = match opened {
            Ok(r) => r.into_inner(),
            Err(status) => return Ended::Failed(GrpcError::Rpc(status)),
        };
        if first.is_none() {
            self.resubscribes.fetch_add(1, Ordering::Relaxed);
        }
        let period = self.config.heartbeat_interval;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => {
                    finish(tx, &mut inbound).await;
                    return Ended::Cancelled;
                }
                _ = beat.tick() => {
                    let answer = heartbeats.heartbeat(self.heartbeat()).await.map(tonic::Response::into_inner);
                    match answer.as_ref().ok().and_then(convert::response_status) {
                        Some((code, msg)) if code == StatusCode::ClientResubscribe.code() => {
                            info!(message = "Server asked to subscribe again.", reason = %msg);
                            self.resubscribes.fetch_add(1, Ordering::Relaxed);
                            if tx.send(self.subscription()).await.is_err() {
                                return Ended::Failed(GrpcError::Closed);
                            }
                        }
                        Some((code, msg)) if code != StatusCode::Success.code() => {
                            warn!(message = "Heartbeat refused.", code = %code, reason = %msg);
                        }
                        Some(_) => {}
                        None => debug!(message = "Heartbeat failed.", error = ?answer.err()),
                    }
                }
                m = inbound.message() => match m {
                    Ok(Some(msg)) => {
                        if let Some((code, text)) = convert::response_status(&msg) {
                            let ok = code == StatusCode::Success.code();
                            if let Some(tx) = first.take() {
                                if ok {
                                    let _ = tx.send(Ok(()));
                                } else {
                                    let _ = tx.send(Err(GrpcError::Server { code, message: text }));
                                    return Ended::Cancelled;
                                }
                            } else if !ok {
                                warn!(message = "Server refused a stream message.", code = %code, reason = %text);
                            }
                            continue;
                        }
                        match self.handle(msg, &tx).await {
                            Ok(true) => {}
                            Ok(false) => {
                                finish(tx, &mut inbound).await;
                                return Ended::Cancelled;
                            }
                            Err(e) => return Ended::Failed(e),
                        }
                    }
                    Ok(None) => return Ended::Failed(GrpcError::Answer("the server ended the stream".to_owned())),
                    Err(status) => return Ended::Failed(GrpcError::Rpc(status)),
                },
            }
        }
    }

    /// Runs the handler on one pushed event and acks or refuses it; `Ok(false)` when the
    /// subscriber was closed meanwhile (the event stays un-acked: the server redelivers it).
    async fn handle(
        &self,
        msg: v1::CloudEvent,
        tx: &mpsc::Sender<v1::CloudEvent>,
    ) -> Result<bool, GrpcError> {
        let ack_id = convert::attribute(&msg, keys::ACK_ID);
        let event = match convert::to_event(&msg) {
            Ok(e) => e,
            Err(error) => {
                warn!(message = "Dropped an event that cannot be read.", %error);
                if let Some(id) = &ack_id {
                    let _ = tx.send(self.control(keys::SUB_MESSAGE_TYPE_NACK, id)).await;
                }
                return Ok(true);
            }
        };
        let topic = event.subject.clone().unwrap_or_default();
        let is_request = event.extension("correlationid").is_some();
        let delivery = GrpcDelivery {
            topic: topic.clone(),
            event: event.clone(),
            is_request,
        };
        let outcome = tokio::select! {
            () = self.cancel.cancelled() => return Ok(false),
            o = (self.handler)(delivery) => o,
        };
        let verdict = match outcome {
            Ok(Some(reply)) if is_request => {
                tx.send(self.reply(&event, &topic, reply))
                    .await
                    .map_err(|_| GrpcError::Closed)?;
                keys::SUB_MESSAGE_TYPE_ACK
            }
            Ok(_) => keys::SUB_MESSAGE_TYPE_ACK,
            Err(error) => {
                debug!(message = "Handler failed; refusing the event.", %error);
                keys::SUB_MESSAGE_TYPE_NACK
            }
        };
        if let Some(id) = ack_id {
            tx.send(self.control(verdict, &id))
                .await
                .map_err(|_| GrpcError::Closed)?;
        }
        Ok(true)
    }
}
