//! `HeartbeatService` (v1, and the legacy heartbeat through [`heartbeat`]).
//!
//! A heartbeat keeps the client's core sessions alive (`client_expiry`) and its webhook URLs
//! (`server.http.webhook.url_ttl`). A subscriber's heartbeat lists the topics it believes it
//! holds; when this node holds none of a listed (group, topic) for that client (a stream of the
//! same `ip/pid/sys`, or the listed webhook URL), the answer is `statuscode` "30"
//! (`CLIENT_RESUBSCRIBE`): the node restarted or expired the client, which then subscribes
//! again.

use std::sync::Arc;

use eventmesh_core::{GroupName, Topic};
use eventmesh_protocol_grpc::convert::{self, ClientIdentity, HeartbeatItem};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event_attribute_value::Attr;
use eventmesh_protocol_grpc::v1::heartbeat_service_server::HeartbeatService;
use tonic::{Request, Response, Status};

use super::GrpcContext;
use super::answer::{Failure, v1_answer};
use super::consumer::is_webhook_url;

/// Publisher or subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientKind {
    Pub,
    Sub,
}

pub(super) struct Heartbeat {
    pub(super) ctx: Arc<GrpcContext>,
}

/// Handles a heartbeat of either package.
pub(super) fn heartbeat(
    ctx: &GrpcContext,
    identity: &ClientIdentity,
    kind: ClientKind,
    group: Option<String>,
    items: &[HeartbeatItem],
) -> Result<String, Failure> {
    let (field, status) = match kind {
        ClientKind::Pub => ("producergroup", StatusCode::BodyErr),
        ClientKind::Sub => ("consumergroup", StatusCode::BodyErr),
    };
    let group =
        group.ok_or_else(|| Failure::new(status, format!("`{field}` is missing or empty")))?;
    let key = identity.key();
    if kind == ClientKind::Pub {
        ctx.clients.touch_publisher(&key, &group);
        return Ok("heartbeat success".to_owned());
    }
    let group =
        GroupName::new(&group).map_err(|e| Failure::new(StatusCode::BodyErr, e.to_string()))?;
    let mut streams: Vec<Topic> = Vec::new();
    let mut hooks: Vec<(Topic, String)> = Vec::new();
    for item in items {
        let topic = Topic::new(item.topic.trim()).map_err(|e| {
            Failure::new(
                StatusCode::BodyErr,
                format!("heartbeat topic `{}`: {e}", item.topic),
            )
        })?;
        if is_webhook_url(&item.url) {
            hooks.push((topic, item.url.trim().to_owned()));
        } else {
            streams.push(topic);
        }
    }
    let held = ctx.clients.heartbeat_streams(&group, &key);
    let mut missing: Vec<String> = streams
        .iter()
        .filter(|t| !held.contains(t))
        .map(ToString::to_string)
        .collect();
    if !hooks.is_empty() {
        let known = ctx
            .webhooks
            .as_ref()
            .map_or(0, |w| w.heartbeat(&group, &hooks));
        if known < hooks.len() {
            missing.extend(hooks.iter().map(|(t, u)| format!("{t} ({u})")));
        }
    }
    if missing.is_empty() {
        Ok("heartbeat success".to_owned())
    } else {
        Err(Failure::new(
            StatusCode::ClientResubscribe,
            format!(
                "this node holds no subscription of client `{key}` in group `{group}` for {}",
                missing.join(", ")
            ),
        ))
    }
}

fn client_kind(pb: &v1::CloudEvent) -> Result<ClientKind, Failure> {
    let bad = |v: String| {
        Failure::new(
            StatusCode::BodyErr,
            format!("`clienttype` must be 1 (PUB) or 2 (SUB), not `{v}`"),
        )
    };
    let value = pb
        .attributes
        .get(keys::CLIENT_TYPE)
        .ok_or_else(|| Failure::new(StatusCode::BodyErr, "`clienttype` is missing"))?;
    let n = match &value.attr {
        Some(Attr::CeInteger(i)) => *i,
        _ => {
            let s = convert::value_string(value).unwrap_or_default();
            s.trim().parse::<i32>().map_err(|_| bad(s.clone()))?
        }
    };
    match n {
        keys::CLIENT_TYPE_PUB => Ok(ClientKind::Pub),
        keys::CLIENT_TYPE_SUB => Ok(ClientKind::Sub),
        other => Err(bad(other.to_string())),
    }
}

fn heartbeat_v1(ctx: &GrpcContext, pb: &v1::CloudEvent) -> Result<String, Failure> {
    let identity = convert::identity(pb)?;
    let kind = client_kind(pb)?;
    let group = match kind {
        ClientKind::Pub => convert::attribute(pb, keys::PRODUCER_GROUP),
        ClientKind::Sub => convert::attribute(pb, keys::CONSUMER_GROUP),
    };
    let items = convert::heartbeat_items(pb)?;
    heartbeat(ctx, &identity, kind, group, &items)
}

#[tonic::async_trait]
impl HeartbeatService for Heartbeat {
    async fn heartbeat(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let out = heartbeat_v1(&self.ctx, request.get_ref());
        Ok(Response::new(v1_answer("heartbeat", out)))
    }
}
