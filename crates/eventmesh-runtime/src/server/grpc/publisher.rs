//! `PublisherService` (v1): `publish`, `publishOneWay`, `requestReply`, `batchPublish`,
//! `batchPublishOneWay`.
//!
//! Every event must carry the client identity attributes (status `6` otherwise), `uniqueid`,
//! `producergroup`, `subject` (the topic) and `ttl`, and data of the kind its content type calls
//! for (status `7` otherwise). A batch goes to one topic, all or nothing, with at most
//! `max_batch_events` events (status `10` otherwise). One-way calls are answered with an empty
//! message whatever became of the event (failures are logged and counted).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{CloudEvent, Topic};
use eventmesh_protocol_grpc::convert::{self, ClientIdentity};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::publisher_service_server::PublisherService;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::GrpcContext;
use super::answer::{Failure, v1_answer};
use super::metrics;
use crate::core::SessionHandle;

pub(super) struct Publisher {
    pub(super) ctx: Arc<GrpcContext>,
}

/// A checked publish: the client's session, the topic and the event.
struct Prepared {
    session: Arc<SessionHandle>,
    topic: Topic,
    event: CloudEvent,
}

/// The topic an event names in `subject`.
pub(super) fn topic_of(event: &CloudEvent) -> Result<Topic, Failure> {
    let subject = event
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BodyErr,
                "attribute `subject` (the topic) is missing",
            )
        })?;
    Topic::new(subject).map_err(|e| {
        Failure::new(
            StatusCode::BodyErr,
            format!("invalid topic `{subject}`: {e}"),
        )
    })
}

/// The `ttl` attribute in milliseconds, when it is a positive number.
pub(super) fn ttl_of(event: &CloudEvent) -> Option<Duration> {
    let ms: u64 = event
        .extension(keys::TTL)?
        .to_string()
        .trim()
        .parse()
        .ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn prepare(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    pb: v1::CloudEvent,
) -> Result<Prepared, Failure> {
    let (identity, group) = check(&pb)?;
    let session = ctx
        .clients
        .publisher(&identity.key(), &group, peer)
        .map_err(|e| Failure::of(&e))?;
    into_prepared(session, pb)
}

/// The identity and producer group of a publish, after checking its attributes.
fn check(pb: &v1::CloudEvent) -> Result<(ClientIdentity, String), Failure> {
    let identity = convert::identity(pb)?;
    convert::check_publish(pb)?;
    let group = convert::attribute(pb, keys::PRODUCER_GROUP).unwrap_or_default();
    Ok((identity, group))
}

fn into_prepared(session: Arc<SessionHandle>, pb: v1::CloudEvent) -> Result<Prepared, Failure> {
    let event = convert::into_event(pb)?;
    let topic = topic_of(&event)?;
    Ok(Prepared {
        session,
        topic,
        event,
    })
}

async fn publish_one(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    pb: v1::CloudEvent,
) -> Result<String, Failure> {
    let p = prepare(ctx, peer, pb)?;
    ctx.core
        .publish(&p.session, &p.topic, vec![p.event])
        .await
        .map_err(|e| Failure::of(&e))?;
    Ok("publish success".to_owned())
}

async fn publish_batch(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    batch: v1::CloudEventBatch,
) -> Result<String, Failure> {
    let n = batch.events.len();
    if n == 0 {
        return Err(Failure::new(
            StatusCode::BatchPublishErr,
            "the batch has no event",
        ));
    }
    if n > ctx.options.max_batch_events {
        return Err(Failure::new(
            StatusCode::BatchPublishErr,
            format!(
                "the batch has {n} events; the limit is {}",
                ctx.options.max_batch_events
            ),
        ));
    }
    // The batch is published with the session of its first event's client; events from the
    // same client and group (the usual batch) need no session lookup of their own.
    let mut session: Option<(Arc<SessionHandle>, ClientIdentity, String)> = None;
    let mut topic: Option<Topic> = None;
    let mut events = Vec::with_capacity(n);
    for (i, pb) in batch.events.into_iter().enumerate() {
        let at = |f: Failure| Failure::new(f.status, format!("event {i}: {}", f.message));
        let (identity, group) = check(&pb).map_err(at)?;
        let handle = match &session {
            Some((h, first, first_group)) if *first == identity && *first_group == group => {
                h.clone()
            }
            _ => ctx
                .clients
                .publisher(&identity.key(), &group, peer)
                .map_err(|e| at(Failure::of(&e)))?,
        };
        let p = into_prepared(handle, pb).map_err(at)?;
        match &topic {
            None => topic = Some(p.topic),
            Some(t) if *t != p.topic => {
                return Err(Failure::new(
                    StatusCode::BatchPublishErr,
                    format!(
                        "event {i} goes to topic `{}`, event 0 to `{t}`: a batch goes to one topic",
                        p.topic
                    ),
                ));
            }
            Some(_) => {}
        }
        if session.is_none() {
            session = Some((p.session, identity, group));
        }
        events.push(p.event);
    }
    let session = session.map(|(h, _, _)| h);
    let (Some(session), Some(topic)) = (session, topic) else {
        return Err(Failure::new(
            StatusCode::BatchPublishErr,
            "the batch has no event",
        ));
    };
    ctx.core
        .publish(&session, &topic, events)
        .await
        .map_err(|e| Failure::during(StatusCode::BatchPublishErr, &e))?;
    Ok(format!("batch publish success ({n} events)"))
}

/// Sends a request and waits for its reply (or the server's shutdown).
async fn request(
    ctx: &GrpcContext,
    peer: Option<SocketAddr>,
    pb: v1::CloudEvent,
) -> Result<v1::CloudEvent, Failure> {
    let p = prepare(ctx, peer, pb)?;
    let ttl = ttl_of(&p.event);
    let reply = tokio::select! {
        r = ctx.core.request(&p.session, &p.topic, p.event, ttl) => r.map_err(|e| Failure::of(&e))?,
        () = ctx.shutdown.cancelled() => {
            return Err(Failure::new(StatusCode::Stop, "the runtime is shutting down"));
        }
    };
    Ok(convert::from_event(&reply))
}

#[tonic::async_trait]
impl PublisherService for Publisher {
    async fn publish(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let peer = request.remote_addr();
        let out = publish_one(&self.ctx, peer, request.into_inner()).await;
        Ok(Response::new(v1_answer("publish", out)))
    }

    async fn request_reply(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let peer = request.remote_addr();
        match self::request(&self.ctx, peer, request.into_inner()).await {
            Ok(reply) => {
                metrics::call("requestReply", StatusCode::Success.code());
                Ok(Response::new(reply))
            }
            Err(f) => Ok(Response::new(v1_answer("requestReply", Err(f)))),
        }
    }

    async fn publish_one_way(
        &self,
        request: Request<v1::CloudEvent>,
    ) -> Result<Response<()>, Status> {
        let peer = request.remote_addr();
        let out = publish_one(&self.ctx, peer, request.into_inner()).await;
        one_way("publishOneWay", out);
        Ok(Response::new(()))
    }

    async fn batch_publish(
        &self,
        request: Request<v1::CloudEventBatch>,
    ) -> Result<Response<v1::CloudEvent>, Status> {
        let peer = request.remote_addr();
        let out = publish_batch(&self.ctx, peer, request.into_inner()).await;
        Ok(Response::new(v1_answer("batchPublish", out)))
    }

    async fn batch_publish_one_way(
        &self,
        request: Request<v1::CloudEventBatch>,
    ) -> Result<Response<()>, Status> {
        let peer = request.remote_addr();
        let out = publish_batch(&self.ctx, peer, request.into_inner()).await;
        one_way("batchPublishOneWay", out);
        Ok(Response::new(()))
    }
}

/// Counts (and logs a failure of) a one-way call, whose caller hears nothing of it.
fn one_way(method: &'static str, out: Result<String, Failure>) {
    match out {
        Ok(_) => metrics::call(method, StatusCode::Success.code()),
        Err(f) => {
            metrics::call(method, f.status.code());
            debug!(message = "One-way publish refused.", method, status = f.status.code(), error = %f.message);
        }
    }
}
