//! `ConsumerService` (v1): webhook `subscribe` (handed to the HTTP server's webhook push
//! engine), `subscribeStream` (see `stream.rs`) and `unsubscribe` (webhook URLs, or this
//! client's streams on this node).

use std::sync::Arc;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, ExtensionValue, GroupName, Topic};
use eventmesh_protocol_grpc::convert::{self, ClientIdentity, SubscriptionReply};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::consumer_service_server::ConsumerService;
use tonic::{Request, Response, Status, Streaming};

use super::GrpcContext;
use super::answer::{Failure, v1_answer};
use super::stream::{self, Dialect, Inbound, Item, OutStream};
use crate::core::{EXT_CORRELATION_ID, Push};
use crate::server::http::webhook::{PushFormat, SubscribeRequest, TopicItem};

pub(super) struct Consumer {
    pub(super) ctx: Arc<GrpcContext>,
}

/// Whether a heartbeat or subscription URL names a webhook (else: a stream subscriber, whose
/// SDK sends a placeholder such as `grpc_stream`).
pub(super) fn is_webhook_url(url: &str) -> bool {
    let u = url.trim().to_ascii_lowercase();
    u.starts_with("http://") || u.starts_with("https://")
}

fn group_of(pb: &v1::CloudEvent) -> Result<GroupName, Failure> {
    let g = convert::attribute(pb, keys::CONSUMER_GROUP).ok_or_else(|| {
        Failure::new(
            StatusCode::BodyErr,
            "attribute `consumergroup` is missing or empty",
        )
    })?;
    GroupName::new(&g).map_err(|e| Failure::new(StatusCode::BodyErr, e.to_string()))
}

/// Identity, group and items of a subscribe or unsubscribe message. An item's filter is its
/// own `filter`, else the message's `filter` attribute; a blank one is none.
fn subscription(pb: &v1::CloudEvent) -> Result<(ClientIdentity, GroupName, Vec<Item>), Failure> {
    let identity = convert::identity(pb)?;
    let group = group_of(pb)?;
    let default_filter = convert::attribute(pb, keys::FILTER);
    let items = convert::subscription_items(pb)?
        .into_iter()
        .map(|i| {
            let topic = Topic::new(i.topic.trim()).map_err(|e| {
                Failure::new(
                    StatusCode::BodyErr,
                    format!("invalid topic `{}`: {e}", i.topic),
                )
            })?;
            let filter = i
                .filter
                .clone()
                .or_else(|| default_filter.clone())
                .filter(|f| !f.trim().is_empty());
            Ok(Item {
                topic,
                mode: i.mode()?,
                ty: i.ty()?,
                filter,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok((identity, group, items))
}

/// The reply event of a `subscription_reply` message: the message itself, or, when its data is
/// the SDKs' `SubscriptionReply` JSON, the content, topic and properties it holds.
fn reply_event(pb: &v1::CloudEvent) -> Result<CloudEvent, Failure> {
    let mut event = convert::to_event(pb)?;
    if let Some(text) = convert::text_data(pb)
        && text.trim_start().starts_with('{')
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && value.get("content").is_some()
        && let Ok(reply) = serde_json::from_value::<SubscriptionReply>(value)
    {
        event.data = Some(Bytes::from(reply.content.into_bytes()));
        if !reply.topic.trim().is_empty() {
            event.subject = Some(reply.topic.trim().to_owned());
        }
        for (k, v) in reply.properties {
            if let Some(key) = eventmesh_protocol::convert::normalize_key(&k)
                && !matches!(
                    key.as_str(),
                    "id" | "source" | "specversion" | "type" | "data"
                )
            {
                event.extensions.insert(key, ExtensionValue::String(v));
            }
        }
    }
    Ok(event)
}

fn ack_ids(pb: &v1::CloudEvent) -> Result<Vec<u64>, Failure> {
    let text = convert::attribute(pb, keys::ACK_ID)
        .ok_or_else(|| Failure::new(StatusCode::BodyErr, "an ack names no `ackid`"))?;
    text.split(',')
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                Failure::new(
                    StatusCode::BodyErr,
                    format!("`ackid` `{s}` is not a number"),
                )
            })
        })
        .collect()
}

/// The v1 stream wire.
pub(super) struct V1Dialect;

impl Dialect for V1Dialect {
    type In = v1::CloudEvent;
    type Out = v1::CloudEvent;
    const NAME: &'static str = "v1";

    fn classify(&mut self, pb: v1::CloudEvent) -> Result<Inbound, Failure> {
        match convert::attribute(&pb, keys::SUB_MESSAGE_TYPE).as_deref() {
            Some(keys::SUB_MESSAGE_TYPE_ACK) => return Ok(Inbound::Ack(ack_ids(&pb)?)),
            Some(keys::SUB_MESSAGE_TYPE_NACK) => return Ok(Inbound::Nack(ack_ids(&pb)?)),
            Some(keys::SUB_MESSAGE_TYPE_REPLY) => return Ok(Inbound::Reply(reply_event(&pb)?)),
            _ => {}
        }
        // Older SDKs send replies back without `submessagetype`: the event they were pushed,
        // still carrying its correlation id, with the reply as data.
        if convert::subscription_items(&pb).is_err()
            && convert::attribute(&pb, EXT_CORRELATION_ID).is_some()
        {
            return Ok(Inbound::Reply(reply_event(&pb)?));
        }
        let (identity, group, items) = subscription(&pb)?;
        let explicit = convert::attribute(&pb, keys::ACK_MODE)
            .filter(|m| m.eq_ignore_ascii_case(keys::ACK_MODE_EXPLICIT))
            .map(|_| convert::attribute(&pb, keys::UNACK).and_then(|w| w.parse::<usize>().ok()));
        Ok(Inbound::Subscribe {
            identity,
            group,
            items,
            explicit,
        })
    }

    fn push(&self, push: &Push, ack_id: u64) -> v1::CloudEvent {
        let mut pb = convert::from_event(&push.record.event);
        pb.attributes.insert(
            keys::ACK_ID.to_owned(),
            convert::string_value(ack_id.to_string()),
        );
        pb
    }

    fn answer(&self, status: StatusCode, message: &str) -> v1::CloudEvent {
        convert::response(status, message)
    }
}

async fn subscribe_webhook(ctx: &GrpcContext, pb: &v1::CloudEvent) -> Result<String, Failure> {
    let (_identity, group, items) = subscription(pb)?;
    let url = convert::attribute(pb, keys::URL).ok_or_else(|| {
        Failure::new(
            StatusCode::BodyErr,
            "webhook subscribe needs a `url` attribute (use subscribeStream for a stream)",
        )
    })?;
    let Some(webhooks) = &ctx.webhooks else {
        return Err(Failure::new(
            StatusCode::SubscribeErr,
            "webhook subscriptions need the HTTP server (server.http.enabled = true)",
        ));
    };
    let format =
        PushFormat::from_protocol_type(convert::attribute(pb, keys::PROTOCOL_TYPE).as_deref());
    // One webhook subscribe per distinct filter (a filter belongs to the (group, topic)).
    let mut by_filter: Vec<(Option<String>, Vec<TopicItem>)> = Vec::new();
    for i in items {
        let item = TopicItem {
            topic: i.topic,
            mode: i.mode,
            ty: i.ty,
        };
        match by_filter.iter_mut().find(|(f, _)| *f == i.filter) {
            Some((_, list)) => list.push(item),
            None => by_filter.push((i.filter, vec![item])),
        }
    }
    for (filter, items) in by_filter {
        let req = SubscribeRequest {
            url: url.clone(),
            group: group.clone(),
            items,
            format,
            max_in_flight: None,
            push_rate: None,
        };
        webhooks
            .subscribe_filtered(req, filter)
            .await
            .map_err(|e| Failure::during(StatusCode::SubscribeErr, &e))?;
    }
    Ok("subscribe success".to_owned())
}

/// Unsubscribes a webhook URL (`url` attribute), or this client's streams on this node.
pub(super) async fn unsubscribe(
    ctx: &GrpcContext,
    identity: &ClientIdentity,
    group: &GroupName,
    topics: &[Topic],
    url: Option<&str>,
) -> Result<String, Failure> {
    if let Some(url) = url.filter(|u| is_webhook_url(u)) {
        let Some(webhooks) = &ctx.webhooks else {
            return Err(Failure::new(
                StatusCode::UnsubscribeErr,
                "webhook subscriptions need the HTTP server (server.http.enabled = true)",
            ));
        };
        webhooks
            .unsubscribe(group, url, topics)
            .await
            .map_err(|e| Failure::during(StatusCode::UnsubscribeErr, &e))?;
        return Ok("unsubscribe success".to_owned());
    }
    let mut removed = 0usize;
    let mut errors = Vec::new();
    for (session, held) in ctx.clients.streams_of(group, &identity.key()) {
        for topic in topics {
            if !held.lock().contains(topic) {
                continue;
            }
            match ctx.core.unsubscribe(&session, group, topic).await {
                Ok(()) => removed += 1,
                Err(e) => errors.push(e.message),
            }
            held.lock().remove(topic);
        }
    }
    if removed == 0 {
        return Err(Failure::new(
            StatusCode::UnsubscribeErr,
            if errors.is_empty() {
                format!(
                    "client `{}` of group `{group}` has no stream subscribed to those topics here",
                    identity.key()
                )
            } else {
                errors.join("; ")
            },
        ));
    }
    Ok("unsubscribe success".to_owned())
}

async fn unsubscribe_v1(ctx: &GrpcContext, pb: &v1::CloudEvent) -> Result<String, Failure> {
    let (identity, group, items) = subscription(pb)?;
    let topics: Vec<Topic> = items.into_iter().map(|i| i.topic).collect();
    let url = convert::attribute(pb, keys::URL);
    unsubscribe(ctx, &identity, &group, &topics, url.as_deref()).await
}

#[tonic::async_trait]
impl ConsumerService for Consumer {
    async fn subscribe(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let out = subscribe_webhook(&self.ctx, request.get_ref()).await;
        Ok(Response::new(v1_answer("subscribe", out)))
    }

    type subscribeStreamStream = OutStream<v1::CloudEvent>;

    async fn subscribe_stream(
        &self,
        request: Request<Streaming<v1::CloudEvent>>,
    ) -> Result<Response<Self::subscribeStreamStream>, Status> {
        let peer = request.remote_addr();
        let (out, task) = stream::open(self.ctx.clone(), V1Dialect, request.into_inner(), peer);
        self.ctx.streams.spawn(task.run());
        Ok(Response::new(out))
    }

    async fn unsubscribe(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let out = unsubscribe_v1(&self.ctx, request.get_ref()).await;
        Ok(Response::new(v1_answer("unsubscribe", out)))
    }
}
