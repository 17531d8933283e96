//! One subscriber stream (`subscribeStream`, both packages): a core session, one member
//! endpoint shared by the stream's subscriptions, pushes down the response stream, and what
//! the client sends up the request stream (subscriptions, replies, acknowledgements).
//!
//! ```text
//! open ──subscription──▶ subscribed ──pushes / replies / acks──▶ …
//!   │                        │
//!   └──── client ends, stream breaks, client expired ───▶ closed (un-acked events go back)
//!          shutdown ──▶ draining (acks only, up to the grace) ──▶ closed with UNAVAILABLE
//! ```
//!
//! **Taking an event (at-least-once).** Each pushed event carries an `ackid` attribute. A client
//! that subscribes with `ackmode = explicit` (EventMesh-rs SDK) answers each one with a message
//! `submessagetype = ack` (or `nack`: redeliver) naming it in `ackid` (several ids separated by
//! commas); until then the event counts against the stream's window (`unack`, capped by
//! `max_unack`) and is redelivered after the core's ack timeout, or at once to another member
//! when the stream ends. Clients that never ack (Apache EventMesh SDKs) keep working: their
//! event counts as taken once the server handed it to the HTTP/2 response stream (tonic polled
//! it from the response channel), as the Java runtime's `onNext` did; one lost in a connection
//! that breaks after that is not redelivered.
//!
//! **Flow control.** The response channel is small and behind HTTP/2 flow control: a client
//! that reads slowly stops the stream taking pushes, its window fills, and the core stops
//! pushing to it (other members are not held back).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use eventmesh_core::{
    CloudEvent, ExtensionValue, GroupName, SessionMeta, Subscription, SubscriptionMode,
    SubscriptionType, Topic, TopicPattern, Transport,
};
use eventmesh_protocol_grpc::convert::ClientIdentity;
use eventmesh_protocol_grpc::status::StatusCode;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::GrpcContext;
use super::answer::Failure;
use super::clients::StreamEntry;
use super::metrics;
use crate::core::{
    Core, DeliveryId, EXT_CORRELATION_ID, EXT_EXPIRES_AT, EXT_REPLY_TO, MemberEndpoint, Push,
    PushKind, SessionHandle,
};

/// Messages waiting in the response channel at most (HTTP/2 flow control is behind it).
const OUT_CAPACITY: usize = 16;
/// Pushes remembered for their ack, as a multiple of the window (older ones were settled by
/// the core without this client: an ack of them would be refused anyway).
const FORGET_FACTOR: usize = 4;

/// One subscription item of a stream subscription.
pub(super) struct Item {
    pub(super) topic: Topic,
    pub(super) mode: SubscriptionMode,
    pub(super) ty: SubscriptionType,
    /// The CloudEvents SQL filter (legacy subscriptions have no place for one).
    pub(super) filter: Option<String>,
}

/// What a client sent up the request stream.
pub(super) enum Inbound {
    /// Subscribe (more) topics.
    Subscribe {
        identity: ClientIdentity,
        group: GroupName,
        items: Vec<Item>,
        /// `ackmode = explicit`, with the window asked for.
        explicit: Option<Option<usize>>,
    },
    /// A SYNC subscriber's reply.
    Reply(CloudEvent),
    /// Events handled.
    Ack(Vec<u64>),
    /// Events refused: redeliver.
    Nack(Vec<u64>),
}

/// The wire of one package: how messages read and write.
pub(super) trait Dialect: Send + 'static {
    /// What the client sends.
    type In: Send + 'static;
    /// What the server sends.
    type Out: Send + 'static;
    /// For logs.
    const NAME: &'static str;
    /// Reads a client message.
    fn classify(&mut self, msg: Self::In) -> Result<Inbound, Failure>;
    /// A push, named `ack_id`.
    fn push(&self, push: &Push, ack_id: u64) -> Self::Out;
    /// An answer.
    fn answer(&self, status: StatusCode, message: &str) -> Self::Out;
}

/// What goes down the response channel.
pub(super) enum Outgoing<T> {
    /// A message; a push to a client that does not ack carries its delivery, acked when tonic
    /// takes the message.
    Msg(T, Option<(DeliveryId, Arc<SessionHandle>)>),
    /// End the stream with this status.
    End(Status),
}

/// The response stream handed to tonic.
pub(super) struct OutStream<T> {
    rx: mpsc::Receiver<Outgoing<T>>,
    core: Arc<Core>,
    done: bool,
}

impl<T> tokio_stream::Stream for OutStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Outgoing::End(status))) => {
                self.done = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(Some(Outgoing::Msg(msg, taken))) => {
                if let Some((delivery, session)) = taken {
                    // Taken by the HTTP/2 stream: the client never acks.
                    match self.core.ack(&session, delivery) {
                        Ok(()) => metrics::pushes("acked", 1),
                        Err(error) => {
                            debug!(message = "Ack on write not applied.", %delivery, %error);
                        }
                    }
                }
                Poll::Ready(Some(Ok(msg)))
            }
        }
    }
}

/// A pushed SYNC request, remembered to complete a reply that does not echo it.
struct PushedRequest {
    reply_to: Option<String>,
    correlation_id: Option<String>,
    expires_at_ms: Option<i64>,
}

struct Subscribed {
    session: Arc<SessionHandle>,
    group: GroupName,
    endpoint: MemberEndpoint,
    pushes: mpsc::Receiver<Push>,
    explicit: bool,
    topics: Arc<Mutex<BTreeSet<Topic>>>,
    unacked: HashMap<u64, DeliveryId>,
    order: VecDeque<u64>,
    requests: VecDeque<PushedRequest>,
    stream_id: u64,
}

/// One stream's task.
pub(super) struct StreamTask<D: Dialect> {
    ctx: Arc<GrpcContext>,
    dialect: D,
    inbound: Streaming<D::In>,
    out: mpsc::Sender<Outgoing<D::Out>>,
    peer: Option<SocketAddr>,
    state: Option<Subscribed>,
    next_ack: u64,
    draining: Option<Instant>,
    end: &'static str,
}

enum Event<I, O> {
    Shutdown,
    Gone,
    In(Result<Option<I>, Status>),
    Push(Option<(mpsc::OwnedPermit<Outgoing<O>>, Push)>),
    Tick,
}

/// Starts a stream: returns the response stream and the task serving it (the caller spawns it).
pub(super) fn open<D: Dialect>(
    ctx: Arc<GrpcContext>,
    dialect: D,
    inbound: Streaming<D::In>,
    peer: Option<SocketAddr>,
) -> (OutStream<D::Out>, StreamTask<D>) {
    let (tx, rx) = mpsc::channel(OUT_CAPACITY);
    let stream = OutStream {
        rx,
        core: ctx.core.clone(),
        done: false,
    };
    let task = StreamTask {
        ctx,
        dialect,
        inbound,
        out: tx,
        peer,
        state: None,
        next_ack: 1,
        draining: None,
        end: "closed",
    };
    (stream, task)
}

async fn sleep_until_some(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn next_push<T: Send + 'static>(
    state: &mut Option<Subscribed>,
    out: &mpsc::Sender<Outgoing<T>>,
) -> Option<(mpsc::OwnedPermit<Outgoing<T>>, Push)> {
    let s = state.as_mut()?;
    // Room in the response channel first, then the push: while the client reads slowly, the
    // push stays in the core's channel and the window does the rest.
    let permit = out.clone().reserve_owned().await.ok()?;
    let push = s.pushes.recv().await?;
    Some((permit, push))
}

impl<D: Dialect> StreamTask<D> {
    /// Serves the stream until it ends.
    pub(super) async fn run(mut self) {
        let gauge = metrics::streams();
        gauge.increment(1.0);
        let shutdown = self.ctx.shutdown.clone();
        let tick_every = self
            .ctx
            .options
            .client_expiry
            .map_or(Duration::from_secs(5), |e| {
                (e / 4).max(Duration::from_millis(50))
            });
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let can_push = self.draining.is_none() && self.state.is_some();
            // While draining, wake up when the grace ends (the tick may be far longer).
            let grace_end = self.draining;
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled(), if self.draining.is_none() => Event::Shutdown,
                () = self.out.closed() => Event::Gone,
                m = self.inbound.message() => Event::In(m),
                p = next_push(&mut self.state, &self.out), if can_push => Event::Push(p),
                _ = tick.tick() => Event::Tick,
                () = sleep_until_some(grace_end), if grace_end.is_some() => Event::Tick,
            };
            match event {
                Event::Shutdown => {
                    self.drain();
                }
                Event::Gone => {
                    self.end = "client gone";
                    break;
                }
                Event::In(Ok(Some(msg))) => self.on_message(msg).await,
                Event::In(Ok(None)) => {
                    self.end = "client ended the stream";
                    break;
                }
                Event::In(Err(status)) => {
                    debug!(message = "Subscriber stream broke.", dialect = D::NAME, status = %status);
                    self.end = "stream broke";
                    break;
                }
                Event::Push(Some((permit, push))) => self.on_push(permit, push),
                Event::Push(None) => {
                    self.end = "session closed";
                    break;
                }
                Event::Tick => {}
            }
            if let Some(s) = &self.state
                && s.session.is_closed()
            {
                info!(message = "Subscriber stream expired: no heartbeat.", dialect = D::NAME, group = %s.group, peer = ?self.peer);
                let _ = self.out.try_send(Outgoing::End(Status::deadline_exceeded(
                    "no heartbeat within the client expiry; subscribe again",
                )));
                self.end = "expired";
                break;
            }
            if let Some(until) = self.draining
                && (Instant::now() >= until
                    || self.state.as_ref().is_none_or(|s| s.unacked.is_empty()))
            {
                let _ = self.out.try_send(Outgoing::End(Status::unavailable(
                    "eventmesh is shutting down; reconnect",
                )));
                self.end = "shutdown";
                break;
            }
        }
        self.close();
        gauge.decrement(1.0);
    }

    fn drain(&mut self) {
        let until = Instant::now() + self.ctx.options.shutdown_grace;
        self.draining = Some(until);
    }

    fn close(&mut self) {
        if let Some(s) = self.state.take() {
            // The core hands the session's un-acked pushes to other members at once.
            s.session.close();
            self.ctx.clients.remove_stream(s.stream_id);
            debug!(message = "Subscriber stream closed.", dialect = D::NAME, group = %s.group, reason = self.end, unacked = s.unacked.len());
        }
    }

    /// Sends a message, waiting for room: while serving, until shutdown begins; while
    /// draining, until the grace ends (answers during the drain, such as "8" to a subscription,
    /// still reach a client that reads).
    async fn emit(&mut self, msg: D::Out) {
        let give_up = async {
            match self.draining {
                Some(until) => tokio::time::sleep_until(until).await,
                None => self.ctx.shutdown.cancelled().await,
            }
        };
        tokio::select! {
            biased;
            r = self.out.send(Outgoing::Msg(msg, None)) => {
                if r.is_err() {
                    debug!(message = "Subscriber stream gone before an answer.", dialect = D::NAME);
                }
            }
            () = give_up => {
                debug!(message = "Answer dropped: the subscriber does not read and eventmesh is stopping.", dialect = D::NAME);
            }
        }
    }

    async fn answer(&mut self, outcome: Result<String, Failure>) {
        let msg = match outcome {
            Ok(text) => {
                metrics::call("subscribeStream", StatusCode::Success.code());
                self.dialect.answer(StatusCode::Success, &text)
            }
            Err(f) => {
                metrics::call("subscribeStream", f.status.code());
                debug!(message = "Stream message refused.", dialect = D::NAME, status = f.status.code(), error = %f.message);
                self.dialect
                    .answer(f.status, &format!("{}: {}", f.status.desc(), f.message))
            }
        };
        self.emit(msg).await;
    }

    async fn on_message(&mut self, msg: D::In) {
        if let Some(s) = &self.state {
            s.session.touch();
        }
        let inbound = match self.dialect.classify(msg) {
            Ok(i) => i,
            Err(f) => return self.answer(Err(f)).await,
        };
        match inbound {
            Inbound::Subscribe {
                identity,
                group,
                items,
                explicit,
            } => {
                if self.draining.is_some() {
                    return self
                        .answer(Err(Failure::new(
                            StatusCode::Stop,
                            "eventmesh is shutting down",
                        )))
                        .await;
                }
                let outcome = self.subscribe(identity, group, items, explicit).await;
                self.answer(outcome).await;
            }
            Inbound::Reply(event) => {
                if let Err(f) = self.reply(event).await {
                    self.answer(Err(f)).await;
                }
            }
            Inbound::Ack(ids) => self.settle(&ids, true),
            Inbound::Nack(ids) => self.settle(&ids, false),
        }
    }

    async fn subscribe(
        &mut self,
        identity: ClientIdentity,
        group: GroupName,
        items: Vec<Item>,
        explicit: Option<Option<usize>>,
    ) -> Result<String, Failure> {
        let core = self.ctx.core.clone();
        if let Some(s) = &self.state {
            if s.group != group {
                return Err(Failure::new(
                    StatusCode::SubscribeErr,
                    format!(
                        "this stream serves consumer group `{}`; open another stream for `{group}`",
                        s.group
                    ),
                ));
            }
        } else {
            let client_key = identity.key();
            let handle = core
                .open_session(SessionMeta {
                    id: core.new_session_id(),
                    transport: Transport::Grpc,
                    peer: self.peer,
                    client_identity: client_key.clone(),
                    principal: Some(eventmesh_core::Principal {
                        subject: identity.username.clone(),
                    }),
                    traceparent: None,
                })
                .map_err(|e| Failure::during(StatusCode::SubscribeErr, &e))?;
            handle.set_idle_timeout(self.ctx.options.client_expiry);
            let handle = Arc::new(handle);
            let default_window = core.options().window;
            let window = match explicit {
                Some(asked) => asked
                    .filter(|w| *w > 0)
                    .unwrap_or(default_window)
                    .min(self.ctx.options.max_unack),
                None => default_window,
            }
            .max(1);
            let (tx, rx) = mpsc::channel(window);
            let endpoint = core.endpoint(tx, Some(window));
            let topics = Arc::new(Mutex::new(BTreeSet::new()));
            let stream_id = self.ctx.clients.add_stream(StreamEntry {
                group: group.clone(),
                client_key: client_key.clone(),
                session: handle.clone(),
                topics: topics.clone(),
            });
            info!(message = "Subscriber stream opened.", dialect = D::NAME, group = %group, client_id = %client_key, window, explicit_ack = explicit.is_some(), peer = ?self.peer);
            self.state = Some(Subscribed {
                session: handle,
                group: group.clone(),
                endpoint,
                pushes: rx,
                explicit: explicit.is_some(),
                topics,
                unacked: HashMap::new(),
                order: VecDeque::new(),
                requests: VecDeque::new(),
                stream_id,
            });
        }
        let Some(s) = self.state.as_mut() else {
            return Err(Failure::new(StatusCode::SubscribeErr, "no session"));
        };
        let mut errors: Vec<Failure> = Vec::new();
        for item in items {
            let sub = Subscription {
                group: group.clone(),
                topic: TopicPattern::Exact(item.topic.clone()),
                mode: item.mode,
                ty: item.ty,
                filter: item.filter,
            };
            match core.subscribe(&s.session, sub, s.endpoint.clone()).await {
                Ok(()) => {
                    s.topics.lock().insert(item.topic);
                }
                Err(e) => errors.push(Failure::during(StatusCode::SubscribeErr, &e)),
            }
        }
        match errors.first() {
            None => Ok("subscribe success".to_owned()),
            Some(first) => Err(Failure::new(
                first.status,
                errors
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    fn on_push(&mut self, permit: mpsc::OwnedPermit<Outgoing<D::Out>>, push: Push) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        let ack_id = self.next_ack;
        self.next_ack += 1;
        if let PushKind::Request {
            correlation_id,
            reply_to,
            expires_at_ms,
        } = &push.kind
        {
            if s.requests.len() >= s.endpoint.window() {
                s.requests.pop_front();
            }
            s.requests.push_back(PushedRequest {
                reply_to: reply_to.clone(),
                correlation_id: correlation_id.clone(),
                expires_at_ms: *expires_at_ms,
            });
        }
        let msg = self.dialect.push(&push, ack_id);
        let taken = if s.explicit {
            while s.order.len() >= FORGET_FACTOR * s.endpoint.window() {
                if let Some(old) = s.order.pop_front() {
                    s.unacked.remove(&old);
                }
            }
            s.order.push_back(ack_id);
            s.unacked.insert(ack_id, push.delivery);
            None
        } else {
            Some((push.delivery, s.session.clone()))
        };
        metrics::pushes("sent", 1);
        permit.send(Outgoing::Msg(msg, taken));
    }

    fn settle(&mut self, ids: &[u64], ack: bool) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        let core = &self.ctx.core;
        let (mut done, mut unknown) = (0u64, 0u64);
        for id in ids {
            let Some(delivery) = s.unacked.remove(id) else {
                unknown += 1;
                continue;
            };
            let r = if ack {
                core.ack(&s.session, delivery)
            } else {
                core.nack(&s.session, delivery)
            };
            match r {
                Ok(()) => done += 1,
                Err(error) => debug!(message = "Ack not applied.", %delivery, %error),
            }
        }
        metrics::pushes(if ack { "acked" } else { "nacked" }, done);
        if unknown > 0 {
            debug!(
                message = "Ignored acks of unknown or settled events.",
                dialect = D::NAME,
                count = unknown
            );
        }
    }

    async fn reply(&mut self, mut event: CloudEvent) -> Result<(), Failure> {
        let Some(s) = self.state.as_mut() else {
            return Err(Failure::new(
                StatusCode::ReplyErr,
                "a reply before any subscription on this stream",
            ));
        };
        match event.extension_str(EXT_CORRELATION_ID).map(str::to_owned) {
            Some(c) => s
                .requests
                .retain(|r| r.correlation_id.as_deref() != Some(c.as_str())),
            None => match s.requests.pop_front() {
                Some(r) => complete_reply(&mut event, &r),
                None => {
                    return Err(Failure::new(
                        StatusCode::ReplyErr,
                        "the reply names no `correlationid` and no request is waiting on this stream",
                    ));
                }
            },
        }
        let session = s.session.clone();
        if event.id.is_empty() {
            event.id = format!("reply-{:016x}", rand::random::<u64>());
        }
        if event.source.is_empty() {
            event.source = "/".to_owned();
        }
        if event.ty.is_empty() {
            event.ty = "eventmesh.reply".to_owned();
        }
        match self.ctx.core.reply(&session, event).await {
            Ok(()) => {
                metrics::call("subscribeStream.reply", StatusCode::Success.code());
                Ok(())
            }
            Err(e) => {
                warn!(message = "Reply refused.", dialect = D::NAME, error = %e);
                Err(Failure::during(StatusCode::ReplyErr, &e))
            }
        }
    }
}

fn complete_reply(event: &mut CloudEvent, r: &PushedRequest) {
    let ext = &mut event.extensions;
    if let Some(v) = &r.reply_to {
        ext.entry(EXT_REPLY_TO.to_owned())
            .or_insert_with(|| ExtensionValue::String(v.clone()));
    }
    if let Some(c) = &r.correlation_id {
        ext.insert(
            EXT_CORRELATION_ID.to_owned(),
            ExtensionValue::String(c.clone()),
        );
    }
    if let Some(x) = r.expires_at_ms {
        ext.entry(EXT_EXPIRES_AT.to_owned())
            .or_insert_with(|| ExtensionValue::String(x.to_string()));
    }
}
