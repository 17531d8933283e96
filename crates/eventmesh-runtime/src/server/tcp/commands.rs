//! The commands of a connection that said (or is saying) hello: HELLO, RECOMMEND, heartbeat,
//! goodbyes, SUBSCRIBE / UNSUBSCRIBE / LISTEN, message commands, acks, and core pushes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use eventmesh_core::{GroupName, SessionMeta, Topic, Transport};
use eventmesh_protocol::convert::{KeyPolicy, event_from_package, subscription_from_item};
use eventmesh_protocol::tcp::{
    Body, Command, Dialect, Direction, Header, OpStatus, PROTOCOL_TYPE, Package, ProtocolType,
    Purpose,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::publish::{self, PushedRequest, complete_reply, status_of};
use super::push::push_frame;
use super::session::{CLIENT_ID_PROPERTY, FORGET_FACTOR, Handler, Phase, Session, Unacked};
use crate::core::{Push, PushKind};
use crate::telemetry::tcp::BadInput;

impl Handler {
    pub(super) async fn on_frame(&mut self, package: Package) {
        let cmd = package.header.command;
        self.last_input = Instant::now();
        self.wire.counters.received(cmd);
        if !self.dialect_known
            && let Some(d) = self.wire.reader.dialect()
        {
            self.dialect_known = true;
            self.registration.update(|c| c.dialect = Some(d.as_str()));
        }
        if let Some(s) = &self.session {
            s.handle.touch();
        }
        match cmd.direction() {
            Direction::ServerToClient => {
                return self.bad_input(
                    "wrong_direction",
                    format!("{cmd} is a server-to-client command; a client may not send it"),
                );
            }
            Direction::Unused => {
                return self.answer(
                    &package.header,
                    OpStatus::Fail,
                    format!("{cmd} is not supported by this server"),
                );
            }
            Direction::ClientToServer => {}
        }
        if self.session.is_none()
            && !matches!(cmd, Command::HelloRequest | Command::RecommendRequest)
        {
            return self.bad_input(
                "no_hello",
                format!("{cmd} before HELLO_REQUEST: a client must say hello first"),
            );
        }
        if matches!(self.phase, Phase::Draining(_))
            && !matches!(
                cmd,
                Command::HeartbeatRequest
                    | Command::ClientGoodbyeRequest
                    | Command::ServerGoodbyeResponse
                    | Command::AsyncMessageToClientAck
                    | Command::BroadcastMessageToClientAck
                    | Command::RequestToClientAck
                    | Command::ResponseToClientAck
            )
        {
            return self.answer(
                &package.header,
                OpStatus::Fail,
                "this server is closing the connection (shutdown or redirect); reconnect",
            );
        }
        match cmd {
            Command::HelloRequest => self.on_hello(package),
            Command::RecommendRequest => {
                let body = serde_json::to_vec(&self.ctx.options.advertise).unwrap_or_default();
                let header = package
                    .header
                    .reply(OpStatus::Success, Some(OpStatus::Success.desc().to_owned()));
                self.wire
                    .send(&Package::new(header, Body::Raw(Bytes::from(body))));
            }
            Command::HeartbeatRequest => self.ok(&package.header),
            Command::ClientGoodbyeRequest => {
                self.ok(&package.header);
                self.close_now("client goodbye");
            }
            Command::ServerGoodbyeResponse => {
                debug!(
                    message = "Client answered the goodbye.",
                    connection_id = self.id
                );
            }
            Command::SubscribeRequest => self.on_subscribe(package).await,
            Command::UnsubscribeRequest => self.on_unsubscribe(package).await,
            Command::ListenRequest => self.on_listen(&package.header),
            Command::AsyncMessageToServer
            | Command::BroadcastMessageToServer
            | Command::RequestToServer
            | Command::ResponseToServer => self.on_message(package),
            Command::AsyncMessageToClientAck
            | Command::BroadcastMessageToClientAck
            | Command::RequestToClientAck => self.on_ack(&package.header),
            Command::ResponseToClientAck => {}
            other => self.answer(
                &package.header,
                OpStatus::Fail,
                format!("{other} is not supported by this server"),
            ),
        }
    }

    fn refuse_hello(&mut self, header: &Header, desc: String) {
        warn!(message = "Refused a client's hello.", connection_id = self.id, peer = %self.peer, error = %desc);
        BadInput { reason: "hello" }.emit();
        self.answer(header, OpStatus::Fail, desc);
        self.close_now("hello refused");
    }

    fn on_hello(&mut self, package: Package) {
        let header = &package.header;
        if self.session.is_some() {
            return self.answer(header, OpStatus::Fail, "this connection already said hello");
        }
        let Body::UserAgent(ua) = &package.body else {
            return self.bad_input(
                "hello",
                "HELLO_REQUEST carries no UserAgent body".to_owned(),
            );
        };
        if ua.version.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return self.refuse_hello(header, "the UserAgent has no `version`".to_owned());
        }
        let Some(purpose) = ua.purpose() else {
            return self.refuse_hello(
                header,
                format!(
                    "the UserAgent `purpose` must be \"pub\" or \"sub\", not {:?}",
                    ua.purpose.as_deref().unwrap_or("")
                ),
            );
        };
        let Some(group) = ua.effective_group() else {
            return self.refuse_hello(header, "the UserAgent names no `group`".to_owned());
        };
        let group = match GroupName::new(&group) {
            Ok(g) => g,
            Err(e) => return self.refuse_hello(header, format!("invalid group `{group}`: {e}")),
        };
        let hello_protocol = match header.protocol_type() {
            None => None,
            Some(Ok(ProtocolType::OpenMessage)) | Some(Err(_)) => {
                let p = header.property_string(PROTOCOL_TYPE).unwrap_or_default();
                return self.refuse_hello(
                    header,
                    format!(
                        "unsupported protocoltype {p:?}: use \"eventmeshmessage\" or \"cloudevents\""
                    ),
                );
            }
            Some(Ok(p)) => Some(p),
        };
        let client_identity = header
            .property_string(CLIENT_ID_PROPERTY)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                let host = ua.host.as_deref().unwrap_or("");
                let path = ua.path.as_deref().unwrap_or("");
                if host.is_empty() && ua.pid == 0 && path.is_empty() {
                    String::new()
                } else {
                    format!("{host}/{}/{path}", ua.pid)
                }
            });
        let core = &self.ctx.core;
        let meta = SessionMeta {
            id: core.new_session_id(),
            transport: Transport::Tcp,
            peer: Some(self.peer),
            client_identity: client_identity.clone(),
            principal: None,
            traceparent: header.property_string("traceparent"),
        };
        let handle = match core.open_session(meta) {
            Ok(h) => Arc::new(h),
            Err(e) => {
                let status = status_of(&e);
                self.answer(header, status, e.message);
                return self.close_now("hello refused");
            }
        };
        let window = match usize::try_from(ua.unack) {
            Ok(n) if n > 0 => n.min(self.ctx.options.max_unack),
            _ => core.options().window,
        };
        let (tx, rx) = mpsc::channel(window.max(1));
        let endpoint = core.endpoint(tx, Some(window));
        let session_id = handle.id();
        tracing::Span::current().record("client_id", tracing::field::display(&client_identity));
        info!(
            message = "Client said hello.",
            connection_id = self.id,
            session = %session_id,
            group = %group,
            purpose = purpose.as_str(),
            window,
            client_id = %client_identity,
            dialect = self.wire.reader.reply_dialect().as_str(),
        );
        self.registration.update(|c| {
            c.session = Some(session_id);
            c.group = Some(group.to_string());
            c.purpose = Some(purpose.as_str().to_owned());
        });
        self.session = Some(Session {
            handle,
            group,
            purpose,
            hello_protocol,
            topic_protocols: HashMap::new(),
            topics: Vec::new(),
            endpoint,
            pushes: rx,
            listening: false,
            unacked: HashMap::new(),
            push_order: VecDeque::new(),
            requests: VecDeque::new(),
        });
        self.ok(header);
    }

    async fn on_subscribe(&mut self, package: Package) {
        let header = &package.header;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if s.purpose != Purpose::Sub {
            return self.answer(
                header,
                OpStatus::Fail,
                "a client that said hello with purpose \"pub\" cannot subscribe; use purpose \"sub\"",
            );
        }
        let Body::Subscription(sub) = &package.body else {
            return self.answer(
                header,
                OpStatus::Fail,
                "SUBSCRIBE_REQUEST carries no topicList",
            );
        };
        if sub.topic_list.is_empty() {
            return self.answer(
                header,
                OpStatus::Fail,
                "SUBSCRIBE_REQUEST has an empty topicList",
            );
        }
        let protocol = match header.protocol_type() {
            Some(Ok(ProtocolType::OpenMessage)) | Some(Err(_)) => {
                return self.answer(
                    header,
                    OpStatus::Fail,
                    "unsupported protocoltype: use \"eventmeshmessage\" or \"cloudevents\"",
                );
            }
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let core = self.ctx.core.clone();
        let mut errors: Vec<(OpStatus, String)> = Vec::new();
        for item in &sub.topic_list {
            let subscription = match subscription_from_item(&s.group, item) {
                Ok(x) => x,
                Err(e) => {
                    errors.push((OpStatus::Fail, e.to_string()));
                    continue;
                }
            };
            let Some(topic) = subscription.topic.exact().cloned() else {
                errors.push((OpStatus::Fail, format!("`{}` is not a topic", item.topic)));
                continue;
            };
            match core
                .subscribe(&s.handle, subscription, s.endpoint.clone())
                .await
            {
                Ok(()) => {
                    if !s.topics.contains(&topic) {
                        s.topics.push(topic.clone());
                    }
                    if let Some(p) = protocol {
                        s.topic_protocols.insert(topic, p);
                    }
                }
                Err(e) => errors.push((status_of(&e), e.message)),
            }
        }
        let topics: Vec<String> = s.topics.iter().map(ToString::to_string).collect();
        self.registration.update(|c| c.topics = topics);
        match errors.first() {
            None => self.ok(header),
            Some((status, _)) => {
                let status = *status;
                let desc = errors
                    .iter()
                    .map(|(_, d)| d.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.answer(header, status, desc);
            }
        }
    }

    /// Unsubscribes the topics the body lists, or (as the Java runtime) every topic.
    async fn on_unsubscribe(&mut self, package: Package) {
        let header = &package.header;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let listed: Vec<Topic> = match &package.body {
            Body::Subscription(sub) => sub
                .topic_list
                .iter()
                .filter_map(|i| Topic::new(&i.topic).ok())
                .collect(),
            _ => Vec::new(),
        };
        let targets: Vec<Topic> = if listed.is_empty() {
            s.topics.clone()
        } else {
            listed
        };
        let core = self.ctx.core.clone();
        let mut errors = Vec::new();
        for topic in &targets {
            if let Err(e) = core.unsubscribe(&s.handle, &s.group, topic).await {
                errors.push(e.message);
            }
            s.topics.retain(|t| t != topic);
            s.topic_protocols.remove(topic);
            s.unacked.retain(|_, u| u.topic != *topic);
        }
        let topics: Vec<String> = s.topics.iter().map(ToString::to_string).collect();
        self.registration.update(|c| c.topics = topics);
        if errors.is_empty() {
            self.ok(header);
        } else {
            self.answer(header, OpStatus::Fail, errors.join("; "));
        }
    }

    fn on_listen(&mut self, header: &Header) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if s.purpose != Purpose::Sub {
            return self.answer(
                header,
                OpStatus::Fail,
                "only a client that said hello with purpose \"sub\" may listen",
            );
        }
        s.listening = true;
        self.ok(header);
    }

    fn on_message(&mut self, mut package: Package) {
        if self.wire.reader.dialect() == Some(Dialect::V10)
            && !package.header.properties.contains_key(PROTOCOL_TYPE)
        {
            // v1.0 clients predate the protocol properties: their messages are AccessMessages,
            // the eventmeshmessage shape.
            package.header = package
                .header
                .with_protocol(ProtocolType::EventMeshMessage, "1.0");
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let core = self.ctx.core.clone();
        let handle = s.handle.clone();
        match package.header.command {
            Command::RequestToServer => {
                let fallback = s.hello_protocol.unwrap_or(ProtocolType::EventMeshMessage);
                self.pending
                    .spawn(publish::request(core, handle, package, fallback));
            }
            Command::ResponseToServer => {
                let mut event = match event_from_package(&package, KeyPolicy::Normalize) {
                    Ok(e) => e,
                    Err(error) => {
                        debug!(message = "Dropped a reply that is not an event.", connection_id = self.id, %error);
                        return;
                    }
                };
                let echoed = event
                    .extension_str(crate::core::EXT_CORRELATION_ID)
                    .map(str::to_owned);
                match echoed {
                    Some(c) => s
                        .requests
                        .retain(|r| r.correlation_id.as_deref() != Some(&c)),
                    None => match s.requests.pop_front() {
                        Some(r) => complete_reply(&mut event, &r),
                        None => {
                            debug!(
                                message = "Dropped a reply that matches no request.",
                                connection_id = self.id
                            );
                            return;
                        }
                    },
                }
                self.pending.spawn(publish::reply(core, handle, event));
            }
            _ => {
                self.pending.spawn(publish::publish(core, handle, package));
            }
        }
    }

    fn on_ack(&mut self, header: &Header) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let Some(seq) = header.seq.as_deref() else {
            debug!(
                message = "Ignored an ack without seq.",
                connection_id = self.id
            );
            return;
        };
        let Some(u) = s.unacked.remove(seq) else {
            debug!(
                message = "Ignored an ack of an unknown seq.",
                connection_id = self.id,
                seq
            );
            return;
        };
        if header.command == Command::RequestToClientAck {
            s.requests.retain(|r| r.seq != seq);
        }
        let core = &self.ctx.core;
        let result = if header.code == OpStatus::Success.code() {
            core.ack(&s.handle, u.delivery)
        } else {
            core.nack(&s.handle, u.delivery)
        };
        if let Err(error) = result {
            debug!(message = "Ack not applied.", connection_id = self.id, seq, delivery = %u.delivery, %error);
        }
    }

    pub(super) fn on_push(&mut self, push: Push) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let seq = self.ctx.next_push_seq();
        let chosen = s
            .topic_protocols
            .get(&push.topic)
            .copied()
            .or(s.hello_protocol);
        let dialect = self.wire.reader.reply_dialect();
        let queued = push_frame(&push, seq.clone(), chosen).and_then(|frame| {
            self.wire
                .writer
                .queue(&frame, dialect)
                .map(|()| frame.header.command)
        });
        match queued {
            Ok(command) => {
                self.wire.counters.sent(command);
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
                        seq: seq.clone(),
                        reply_to: reply_to.clone(),
                        correlation_id: correlation_id.clone(),
                        expires_at_ms: *expires_at_ms,
                    });
                }
                while s.push_order.len() >= FORGET_FACTOR * s.endpoint.window() {
                    if let Some(old) = s.push_order.pop_front() {
                        s.unacked.remove(&old);
                    }
                }
                s.push_order.push_back(seq.clone());
                s.unacked.insert(
                    seq,
                    Unacked {
                        delivery: push.delivery,
                        topic: push.topic,
                    },
                );
            }
            Err(error) => {
                warn!(message = "Failed to encode a push; refusing it.", connection_id = self.id, %error, topic = %push.topic, delivery = %push.delivery);
                if let Err(error) = self.ctx.core.nack(&s.handle, push.delivery) {
                    debug!(message = "Nack not applied.", %error);
                }
            }
        }
    }
}
