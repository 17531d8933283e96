//! The legacy services (`eventmesh-client.proto`, package `eventmesh.common.protocol.grpc`:
//! Apache EventMesh v1.4–v1.8 and the Go SDK), on the same port as the v1 ones.
//!
//! * `PublisherService`: `publish`, `requestReply`, `batchPublish` with `SimpleMessage` /
//!   `BatchMessage` (checked as the Java runtime did: header identity, then `uniqueId`,
//!   `producerGroup`, `topic`, `content`, `ttl`), answered with `Response{respCode, respMsg,
//!   respTime}` in the same string codes as v1;
//! * `ConsumerService`: `subscribe` (webhook, `url`), `subscribeStream` (a `Subscription` with
//!   items subscribes; one with no items and a `reply` is a SYNC subscriber's reply; answers go
//!   down the stream as a `SimpleMessage` whose `content` is `{"respCode","respMsg"}`, events as
//!   `SimpleMessage`s), `unsubscribe`;
//! * `HeartbeatService`: `heartbeat` with `clientType` PUB = 0, SUB = 1.
//!
//! Legacy stream clients never acknowledge: an event counts as taken once it is handed to the
//! HTTP/2 stream (see `stream.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use eventmesh_core::{GroupName, SubscriptionMode, SubscriptionType, Topic};
use eventmesh_protocol_grpc::convert::{self, ClientIdentity, HeartbeatItem};
use eventmesh_protocol_grpc::legacy::{
    BatchMessage, Heartbeat as LegacyHeartbeatMsg, RequestHeader, Response as LegacyResponse,
    SimpleMessage, Subscription, consumer_service_server::ConsumerService,
    heartbeat_service_server::HeartbeatService, publisher_service_server::PublisherService,
};
use eventmesh_protocol_grpc::status::StatusCode;
use tonic::{Request, Response, Status, Streaming};

use super::GrpcContext;
use super::answer::{Failure, legacy_answer};
use super::consumer::unsubscribe as unsubscribe_streams;
use super::heartbeat::{ClientKind, heartbeat};
use super::metrics;
use super::publisher::{topic_of, ttl_of};
use super::stream::{self, Dialect, Inbound, Item, OutStream};
use crate::core::Push;
use crate::server::http::webhook::{PushFormat, SubscribeRequest, TopicItem};

pub(super) struct LegacyPublisher {
    pub(super) ctx: Arc<GrpcContext>,
}

pub(super) struct LegacyConsumer {
    pub(super) ctx: Arc<GrpcContext>,
}

pub(super) struct LegacyHeartbeat {
    pub(super) ctx: Arc<GrpcContext>,
}

fn identity(header: Option<&RequestHeader>) -> Result<ClientIdentity, Failure> {
    Ok(convert::legacy_identity(header)?)
}

async fn publish(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    msg: &SimpleMessage,
) -> Result<String, Failure> {
    let identity = identity(msg.header.as_ref())?;
    let event = convert::simple_to_event(msg)?;
    let topic = topic_of(&event)?;
    let session = ctx
        .clients
        .publisher(&identity.key(), &msg.producer_group, peer)
        .map_err(|e| Failure::of(&e))?;
    ctx.core
        .publish(&session, &topic, vec![event])
        .await
        .map_err(|e| Failure::of(&e))?;
    Ok("publish success".to_owned())
}

async fn batch(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    msg: &BatchMessage,
) -> Result<String, Failure> {
    let identity = identity(msg.header.as_ref())?;
    if msg.topic.trim().is_empty() || msg.producer_group.trim().is_empty() {
        return Err(Failure::new(
            StatusCode::BodyErr,
            "`topic` and `producerGroup` must be set",
        ));
    }
    let n = msg.message_item.len();
    if n == 0 {
        return Err(Failure::new(
            StatusCode::BatchPublishErr,
            "the batch has no message",
        ));
    }
    if n > ctx.options.max_batch_events {
        return Err(Failure::new(
            StatusCode::BatchPublishErr,
            format!(
                "the batch has {n} messages; the limit is {}",
                ctx.options.max_batch_events
            ),
        ));
    }
    let topic = Topic::new(msg.topic.trim()).map_err(|e| {
        Failure::new(
            StatusCode::BodyErr,
            format!("invalid topic `{}`: {e}", msg.topic),
        )
    })?;
    let events = msg
        .message_item
        .iter()
        .enumerate()
        .map(|(i, item)| {
            convert::batch_item_to_event(msg, item)
                .map_err(|e| Failure::new(e.status(), format!("message {i}: {e}")))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let session = ctx
        .clients
        .publisher(&identity.key(), &msg.producer_group, peer)
        .map_err(|e| Failure::of(&e))?;
    ctx.core
        .publish(&session, &topic, events)
        .await
        .map_err(|e| Failure::during(StatusCode::BatchPublishErr, &e))?;
    Ok(format!("batch publish success ({n} messages)"))
}

async fn request(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    msg: &SimpleMessage,
) -> Result<SimpleMessage, Failure> {
    let identity = identity(msg.header.as_ref())?;
    let event = convert::simple_to_event(msg)?;
    let topic = topic_of(&event)?;
    let ttl = ttl_of(&event);
    let session = ctx
        .clients
        .publisher(&identity.key(), &msg.producer_group, peer)
        .map_err(|e| Failure::of(&e))?;
    let reply = tokio::select! {
        r = ctx.core.request(&session, &topic, event, ttl) => r.map_err(|e| Failure::of(&e))?,
        () = ctx.shutdown.cancelled() => {
            return Err(Failure::new(StatusCode::Stop, "the runtime is shutting down"));
        }
    };
    Ok(convert::event_to_simple(&reply, msg.header.clone()))
}

/// A stream answer: a `SimpleMessage` with the request's header and `{"respCode","respMsg"}`.
fn stream_answer(
    header: Option<RequestHeader>,
    status: StatusCode,
    message: &str,
) -> SimpleMessage {
    let content = serde_json::json!({"respCode": status.code(), "respMsg": message}).to_string();
    SimpleMessage {
        header,
        content,
        ..SimpleMessage::default()
    }
}

fn items_of(sub: &Subscription) -> Result<Vec<Item>, Failure> {
    if sub.subscription_items.is_empty() {
        return Err(Failure::new(
            StatusCode::BodyErr,
            "the subscription lists no topic",
        ));
    }
    sub.subscription_items
        .iter()
        .map(|i| {
            let topic = Topic::new(i.topic.trim()).map_err(|e| {
                Failure::new(
                    StatusCode::BodyErr,
                    format!("invalid topic `{}`: {e}", i.topic),
                )
            })?;
            let mode = match i.mode {
                0 => SubscriptionMode::Clustering,
                1 => SubscriptionMode::Broadcasting,
                m => {
                    return Err(Failure::new(
                        StatusCode::BodyErr,
                        format!("unknown subscription mode {m}"),
                    ));
                }
            };
            let ty = match i.r#type {
                0 => SubscriptionType::Async,
                1 => SubscriptionType::Sync,
                t => {
                    return Err(Failure::new(
                        StatusCode::BodyErr,
                        format!("unknown subscription type {t}"),
                    ));
                }
            };
            Ok(Item {
                topic,
                mode,
                ty,
                filter: None,
            })
        })
        .collect()
}

fn group_of(sub: &Subscription) -> Result<GroupName, Failure> {
    if sub.consumer_group.trim().is_empty() {
        return Err(Failure::new(
            StatusCode::BodyErr,
            "`consumerGroup` is missing or empty",
        ));
    }
    GroupName::new(sub.consumer_group.trim())
        .map_err(|e| Failure::new(StatusCode::BodyErr, e.to_string()))
}

/// The legacy stream wire.
pub(super) struct LegacyDialect {
    header: Option<RequestHeader>,
}

impl Dialect for LegacyDialect {
    type In = Subscription;
    type Out = SimpleMessage;
    const NAME: &'static str = "legacy";

    fn classify(&mut self, sub: Subscription) -> Result<Inbound, Failure> {
        if sub.header.is_some() {
            self.header = sub.header.clone();
        }
        if sub.subscription_items.is_empty()
            && let Some(reply) = &sub.reply
        {
            return Ok(Inbound::Reply(convert::reply_to_event(reply)));
        }
        let identity = identity(sub.header.as_ref())?;
        let group = group_of(&sub)?;
        let items = items_of(&sub)?;
        Ok(Inbound::Subscribe {
            identity,
            group,
            items,
            explicit: None,
        })
    }

    fn push(&self, push: &Push, _ack_id: u64) -> SimpleMessage {
        convert::event_to_simple(&push.record.event, self.header.clone())
    }

    fn answer(&self, status: StatusCode, message: &str) -> SimpleMessage {
        stream_answer(self.header.clone(), status, message)
    }
}

async fn subscribe_webhook(ctx: &GrpcContext, sub: &Subscription) -> Result<String, Failure> {
    identity(sub.header.as_ref())?;
    let group = group_of(sub)?;
    let items = items_of(sub)?;
    if sub.url.trim().is_empty() {
        return Err(Failure::new(
            StatusCode::BodyErr,
            "webhook subscribe needs a `url` (use subscribeStream for a stream)",
        ));
    }
    let Some(webhooks) = &ctx.webhooks else {
        return Err(Failure::new(
            StatusCode::SubscribeErr,
            "webhook subscriptions need the HTTP server (server.http.enabled = true)",
        ));
    };
    let protocol = sub.header.as_ref().map(|h| h.protocol_type.as_str());
    let req = SubscribeRequest {
        url: sub.url.trim().to_owned(),
        group,
        items: items
            .into_iter()
            .map(|i| TopicItem {
                topic: i.topic,
                mode: i.mode,
                ty: i.ty,
            })
            .collect(),
        format: PushFormat::from_protocol_type(protocol),
        max_in_flight: None,
        push_rate: None,
    };
    webhooks
        .subscribe(req)
        .await
        .map_err(|e| Failure::during(StatusCode::SubscribeErr, &e))?;
    Ok("subscribe success".to_owned())
}

async fn unsubscribe(ctx: &GrpcContext, sub: &Subscription) -> Result<String, Failure> {
    let identity = identity(sub.header.as_ref())?;
    let group = group_of(sub)?;
    let topics: Vec<Topic> = items_of(sub)?.into_iter().map(|i| i.topic).collect();
    let url = Some(sub.url.trim()).filter(|u| !u.is_empty());
    unsubscribe_streams(ctx, &identity, &group, &topics, url).await
}

fn heartbeat_legacy(ctx: &GrpcContext, hb: &LegacyHeartbeatMsg) -> Result<String, Failure> {
    let identity = identity(hb.header.as_ref())?;
    let (kind, group) = match hb.client_type {
        0 => (ClientKind::Pub, &hb.producer_group),
        1 => (ClientKind::Sub, &hb.consumer_group),
        t => {
            return Err(Failure::new(
                StatusCode::BodyErr,
                format!("`clientType` must be PUB (0) or SUB (1), not {t}"),
            ));
        }
    };
    let group = Some(group.trim().to_owned()).filter(|g| !g.is_empty());
    let items: Vec<HeartbeatItem> = hb
        .heartbeat_items
        .iter()
        .map(|i| HeartbeatItem {
            topic: i.topic.clone(),
            url: i.url.clone(),
        })
        .collect();
    if items.iter().any(|i| i.topic.trim().is_empty()) {
        return Err(Failure::new(
            StatusCode::BodyErr,
            "a heartbeat item has an empty topic",
        ));
    }
    heartbeat(ctx, &identity, kind, group, &items)
}

#[tonic::async_trait]
impl PublisherService for LegacyPublisher {
    async fn publish(
        &self,
        request: Request<SimpleMessage>,
    ) -> Result<Response<LegacyResponse>, Status> {
        let peer = request.remote_addr();
        let out = publish(&self.ctx, peer, request.get_ref()).await;
        Ok(Response::new(legacy_answer("legacy.publish", out)))
    }

    async fn request_reply(
        &self,
        request: Request<SimpleMessage>,
    ) -> Result<Response<SimpleMessage>, Status> {
        let peer = request.remote_addr();
        let header = request.get_ref().header.clone();
        match self::request(&self.ctx, peer, request.get_ref()).await {
            Ok(reply) => {
                metrics::call("legacy.requestReply", StatusCode::Success.code());
                Ok(Response::new(reply))
            }
            Err(f) => {
                metrics::call("legacy.requestReply", f.status.code());
                let msg = format!("{}: {}", f.status.desc(), f.message);
                Ok(Response::new(stream_answer(header, f.status, &msg)))
            }
        }
    }

    async fn batch_publish(
        &self,
        request: Request<BatchMessage>,
    ) -> Result<Response<LegacyResponse>, Status> {
        let peer = request.remote_addr();
        let out = batch(&self.ctx, peer, request.get_ref()).await;
        Ok(Response::new(legacy_answer("legacy.batchPublish", out)))
    }
}

#[tonic::async_trait]
impl ConsumerService for LegacyConsumer {
    async fn subscribe(
        &self,
        request: Request<Subscription>,
    ) -> Result<Response<LegacyResponse>, Status> {
        let out = subscribe_webhook(&self.ctx, request.get_ref()).await;
        Ok(Response::new(legacy_answer("legacy.subscribe", out)))
    }

    type subscribeStreamStream = OutStream<SimpleMessage>;

    async fn subscribe_stream(
        &self,
        request: Request<Streaming<Subscription>>,
    ) -> Result<Response<Self::subscribeStreamStream>, Status> {
        let peer = request.remote_addr();
        let dialect = LegacyDialect { header: None };
        let (out, task) = stream::open(self.ctx.clone(), dialect, request.into_inner(), peer);
        self.ctx.streams.spawn(task.run());
        Ok(Response::new(out))
    }

    async fn unsubscribe(
        &self,
        request: Request<Subscription>,
    ) -> Result<Response<LegacyResponse>, Status> {
        let out = unsubscribe(&self.ctx, request.get_ref()).await;
        Ok(Response::new(legacy_answer("legacy.unsubscribe", out)))
    }
}

#[tonic::async_trait]
impl HeartbeatService for LegacyHeartbeat {
    async fn heartbeat(
        &self,
        request: Request<LegacyHeartbeatMsg>,
    ) -> Result<Response<LegacyResponse>, Status> {
        let out = heartbeat_legacy(&self.ctx, request.get_ref());
        Ok(Response::new(legacy_answer("legacy.heartbeat", out)))
    }
}
