//! Subscribing: handlers, the per-subscription worker, and acks.
//!
//! Each subscription has one worker task that calls its handler for one event at a time. When
//! the handler returns `Ok` the event is acknowledged (and, for a request pushed to a SYNC
//! subscription, the reply is sent first as `RESPONSE_TO_SERVER`). When it returns `Err` nothing
//! is sent: the runtime delivers the event again after its ack timeout, or at once to another
//! member if this client disconnects.

use std::fmt;
use std::future::Future;

use eventmesh_core::{CloudEvent, GroupName, SubscriptionMode, SubscriptionType, TopicPattern};
use eventmesh_protocol::convert;
use eventmesh_protocol::tcp::{Command as Wire, Header, Package};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::client::Client;
use super::session::{Command, Outgoing, Push, Route, check};
use crate::config::{Protocol, Purpose};
use crate::error::Error;

/// How an event reached a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    /// `ASYNC_MESSAGE_TO_CLIENT`: a CLUSTERING, ASYNC subscription.
    Async,
    /// `BROADCAST_MESSAGE_TO_CLIENT`: a BROADCASTING subscription.
    Broadcast,
    /// `REQUEST_TO_CLIENT`: a request to a SYNC subscription; the handler's value is the reply.
    Request,
}

impl DeliveryKind {
    pub(crate) fn of(command: Wire) -> Option<DeliveryKind> {
        match command {
            Wire::AsyncMessageToClient => Some(DeliveryKind::Async),
            Wire::BroadcastMessageToClient => Some(DeliveryKind::Broadcast),
            Wire::RequestToClient => Some(DeliveryKind::Request),
            _ => None,
        }
    }
}

/// An event pushed to a subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The subscription's topic.
    pub topic: String,
    /// How it was pushed.
    pub kind: DeliveryKind,
    /// The event. Its extensions include what the runtime added (e.g. `protocoltype`, and for
    /// requests `replyto`, `correlationid`, `expiresat`, `ttl`).
    pub event: CloudEvent,
}

/// A handler's failure: the event is not acknowledged and will be delivered again.
///
/// Anything that converts into a boxed error converts into it, so `?` works on most errors,
/// and `Err("reason".into())` on strings.
pub struct HandlerError(Box<dyn std::error::Error + Send + Sync>);

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError(e.into())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a handler's success value means for a request pushed to a SYNC subscription.
pub trait IntoReply {
    /// The reply to send, if any (`None` only acknowledges).
    fn into_reply(self) -> Option<CloudEvent>;
}

impl IntoReply for () {
    fn into_reply(self) -> Option<CloudEvent> {
        None
    }
}

impl IntoReply for CloudEvent {
    fn into_reply(self) -> Option<CloudEvent> {
        Some(self)
    }
}

impl IntoReply for Option<CloudEvent> {
    fn into_reply(self) -> Option<CloudEvent> {
        self
    }
}

/// Handles the events of one subscription. Implemented for every
/// `Fn(Delivery) -> impl Future<Output = Result<R, HandlerError>>` closure.
pub trait Handler: Send + Sync + 'static {
    /// The success value: `()` for ASYNC subscriptions, a [`CloudEvent`] (or
    /// `Option<CloudEvent>`) reply for SYNC ones.
    type Reply: IntoReply + Send;

    /// Handles one delivery. `Ok` acknowledges it; `Err` leaves it to be delivered again.
    fn handle(
        &self,
        delivery: Delivery,
    ) -> impl Future<Output = Result<Self::Reply, HandlerError>> + Send;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send,
    R: IntoReply + Send,
{
    type Reply = R;

    fn handle(
        &self,
        delivery: Delivery,
    ) -> impl Future<Output = Result<Self::Reply, HandlerError>> + Send {
        self(delivery)
    }
}

/// The `RESPONSE_TO_SERVER` package answering `request` with `reply`. The reply inherits every
/// extension of the request it does not set itself (as the Java SDK's responders echo the
/// request's properties), so the runtime's correlation extensions come back; its subject
/// defaults to the request's.
pub(crate) fn reply_package(
    request: &CloudEvent,
    mut reply: CloudEvent,
    protocol: Protocol,
) -> Result<Package, Error> {
    for (name, value) in &request.extensions {
        reply
            .extensions
            .entry(name.clone())
            .or_insert_with(|| value.clone());
    }
    if reply.subject.is_none() {
        reply.subject.clone_from(&request.subject);
    }
    Ok(convert::event_package(
        Header::new(Wire::ResponseToServer, None),
        &reply,
        protocol.wire(),
    )?)
}

async fn worker<H: Handler>(
    handler: H,
    mut pushes: mpsc::Receiver<Push>,
    out: mpsc::Sender<Outgoing>,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    loop {
        let push = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = kill.cancelled() => break,
            push = pushes.recv() => match push {
                Some(p) => p,
                None => break,
            },
        };
        let Push {
            epoch,
            ack,
            protocol,
            delivery,
        } = push;
        let topic = delivery.topic.clone();
        let request = (delivery.kind == DeliveryKind::Request).then(|| delivery.event.clone());
        let result = tokio::select! {
            () = kill.cancelled() => break,
            result = handler.handle(delivery) => result,
        };
        let outgoing = match result {
            Err(error) => {
                warn!(message = "Handler failed; the event is not acknowledged and will be delivered again.", topic, %error);
                continue;
            }
            Ok(value) => match (request, value.into_reply()) {
                (Some(request), Some(reply)) => match reply_package(&request, reply, protocol) {
                    Ok(reply) => Outgoing::Reply { epoch, ack, reply },
                    Err(error) => {
                        warn!(message = "Cannot encode the reply; the request is not acknowledged.", topic, %error);
                        continue;
                    }
                },
                _ => Outgoing::Ack { epoch, ack },
            },
        };
        tokio::select! {
            () = kill.cancelled() => break,
            sent = out.send(outgoing) => if sent.is_err() { break },
        }
    }
}

impl Client {
    /// Subscribes to `topic` with `handler`, then makes sure the session listens.
    ///
    /// * `mode`: CLUSTERING shares the topic's events among the live clients of this client's
    ///   group; BROADCASTING gives each of them every event.
    /// * `ty`: ASYNC gets events; SYNC gets requests, and the handler's value is the reply.
    ///
    /// The handler runs on its own task, one event at a time; it stops when the client is
    /// closed or [`Client::unsubscribe`] is called. The subscription is restored on every
    /// reconnect. Needs a client with [`Purpose::Sub`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (bad topic, or a `pub` client), [`Error::AlreadySubscribed`],
    /// [`Error::Server`] if the server refuses, [`Error::Timeout`], [`Error::Disconnected`].
    pub async fn subscribe<H: Handler>(
        &self,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
        handler: H,
    ) -> Result<(), Error> {
        self.subscribe_filtered(topic, mode, ty, None, handler)
            .await
    }

    /// [`Client::subscribe`] with an optional filter: a CloudEvents SQL (CESQL 1.0) expression
    /// such as `type = 'order.created' AND source LIKE '/shop/%'`. The mesh pushes only the
    /// events it matches; the others are done for the group without delivery. The filter
    /// belongs to the (group, topic): every member must subscribe with the same one.
    ///
    /// # Errors
    /// As [`Client::subscribe`]; an invalid filter, or one that differs from the group's, is
    /// [`Error::Server`] with the server's reason (for a bad expression, the parse error).
    pub async fn subscribe_filtered<H: Handler>(
        &self,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
        filter: Option<&str>,
        handler: H,
    ) -> Result<(), Error> {
        let config = self.config();
        if config.purpose != Purpose::Sub {
            return Err(Error::InvalidArgument(
                "subscribing needs a client built with Purpose::Sub".into(),
            ));
        }
        let group = GroupName::new(config.group())
            .map_err(|e| Error::InvalidArgument(format!("group: {e}")))?;
        let topic_name = eventmesh_core::Topic::new(topic)
            .map_err(|e| Error::InvalidArgument(format!("topic {topic:?}: {e}")))?;
        let item = convert::item_from_subscription(&eventmesh_core::Subscription {
            group,
            topic: TopicPattern::Exact(topic_name),
            mode,
            ty,
            filter: filter.map(str::to_owned),
        });
        let (tx, rx) = mpsc::channel(config.subscriber_buffer);
        let stop = CancellationToken::new();
        let worker = tokio::spawn(worker(
            handler,
            rx,
            self.inner.outgoing.clone(),
            stop.clone(),
            self.inner.kill.clone(),
        ));
        let route = Route {
            item,
            tx,
            stop,
            worker: Some(worker),
        };
        let timeout = config.request_timeout;
        let answer = self
            .call(timeout, |reply| Command::Subscribe { route, reply })
            .await?;
        check(answer)?;
        self.call(timeout, |reply| Command::Listen { reply }).await
    }

    /// Unsubscribes from every topic (the protocol has no per-topic unsubscribe) and stops
    /// their handlers.
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub async fn unsubscribe(&self) -> Result<(), Error> {
        let answer = self
            .call(self.config().request_timeout, |reply| {
                Command::Unsubscribe { reply }
            })
            .await?;
        check(answer).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use eventmesh_core::ExtensionValue;

    use super::*;

    #[test]
    fn replies_echo_the_request_extensions() {
        let mut request = CloudEvent::new("r", "/", "t")
            .with_extension("correlationid", "c-1")
            .with_extension("replyto", "node-1")
            .with_extension("expiresat", "123");
        request.subject = Some("T".into());
        let reply = CloudEvent::new("a", "/", "t")
            .with_data("text/plain", "pong")
            .with_extension("replyto", "mine");
        let p = reply_package(&request, reply, Protocol::CloudEvents).unwrap();
        assert_eq!(p.header.command, Wire::ResponseToServer);
        let back = eventmesh_protocol::cloudevents::decode_event(p.raw_body().unwrap()).unwrap();
        assert_eq!(back.extension_str("correlationid"), Some("c-1"));
        assert_eq!(back.extension_str("expiresat"), Some("123"));
        assert_eq!(
            back.extension("replyto"),
            Some(&ExtensionValue::String("mine".into()))
        );
        assert_eq!(back.subject.as_deref(), Some("T"));
    }

    #[test]
    fn closures_are_handlers() {
        fn assert_handler<H: Handler>(_: &H) {}
        let ack = |_d: Delivery| async { Ok(()) };
        assert_handler(&ack);
        let echo = |d: Delivery| async move { Ok(d.event) };
        assert_handler(&echo);
        let failing = |_d: Delivery| async { Err::<(), _>("no".into()) };
        assert_handler(&failing);
        let e: HandlerError = std::io::Error::other("disk").into();
        assert_eq!(e.to_string(), "disk");
    }
}
