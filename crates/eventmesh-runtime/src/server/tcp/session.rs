//! One connection's state machine (protocol section 2.6), run by one task.
//!
//! ```text
//! connected ──HELLO──▶ session ──SUBSCRIBE / LISTEN──▶ pushing ──┐
//!    │  (RECOMMEND)        │  publish / request / reply / acks     │
//!    │                     ▼                                       ▼
//!    └── bad input ──▶ SERVER_GOODBYE(1) ──▶ closed ◀── CLIENT_GOODBYE, idle, I/O error
//!      shutdown / reject ──▶ SERVER_GOODBYE(0) ─┐
//!      redirect ──▶ REDIRECT_TO_CLIENT ─────────┴▶ draining (acks only, up to the grace) ──▶ closed
//! ```
//!
//! The task `select!`s over: shutdown, control requests (redirect, reject), writing its output
//! buffer, finished operations (publishes and requests run concurrently, at most `max_pending`),
//! the next frame, the next core push (once the client sent `LISTEN_REQUEST`), and a timer (idle
//! timeout, or the end of draining). It stops reading and pushing while its output buffer is
//! over a high-water mark, so a client that does not read slows only itself.
//!
//! Acks: each push gets a server-global `seq`; the client's `*_TO_CLIENT_ACK` with that `seq`
//! acks the delivery in the core (code 0), or nacks it (any other code: the event is redelivered
//! after the backoff). Closing the connection closes the core session: its un-acked pushes go
//! at once to other members of the group.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::{GroupName, SessionMeta, Topic, Transport};
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::convert::{KeyPolicy, event_from_package, subscription_from_item};
use eventmesh_protocol::tcp::{
    Body, Command, Direction, Header, OpStatus, Package, ProtocolType, Purpose,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::TcpContext;
use super::clients::{Control, Registration};
use super::connection::{FrameReader, FrameWriter, ReadError};
use super::publish::{self, Outcome, PushedRequest, complete_reply, fail, status_of};
use super::push::push_frame;
use crate::core::{DeliveryId, MemberEndpoint, Push, PushKind, SessionHandle};
use crate::telemetry::tcp::{BadInput, FrameCounters, Goodbye};

/// Unsent output above which the connection stops reading and pushing.
const HIGH_WATER: usize = 1024 * 1024;
/// Pushes remembered for their ack, as a multiple of the window. The core holds at most a
/// window of them un-acked; older ones were settled without this client (ack timeout) and an ack
/// of them would be refused anyway.
const FORGET_FACTOR: usize = 4;
/// How long the last frames (a goodbye) may take to leave.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// The `desc` of the shutdown goodbye (as the Java runtime).
const SHUTDOWN_DESC: &str = "graceful normal quit from eventmesh";
/// The header property naming a stable client id for BROADCASTING positions.
const CLIENT_ID_PROPERTY: &str = "clientid";

/// The framed socket and the frame counters.
struct Wire {
    reader: FrameReader,
    writer: FrameWriter,
    counters: Arc<FrameCounters>,
}

impl Wire {
    /// Queues `package` in the client's framing. A frame over the limit is replaced by its bare
    /// header with code 1 (the client still gets an answer).
    fn send(&mut self, package: &Package) {
        let dialect = self.reader.reply_dialect();
        match self.writer.queue(package, dialect) {
            Ok(()) => self.counters.sent(package.header.command),
            Err(error) => {
                warn!(message = "Failed to encode a frame; answering without its body.", %error, command = %package.header.command);
                let mut header = package.header.clone();
                header.code = OpStatus::Fail.code();
                header.desc = Some(error.to_string());
                header.properties.clear();
                if self
                    .writer
                    .queue(&Package::header_only(header), dialect)
                    .is_ok()
                {
                    self.counters.sent(package.header.command);
                }
            }
        }
    }
}

/// A push waiting for its ack.
struct Unacked {
    delivery: DeliveryId,
    topic: Topic,
}

/// What a connection knows once the client said hello.
struct Session {
    handle: Arc<SessionHandle>,
    group: GroupName,
    purpose: Purpose,
    /// `protocoltype` of the HELLO header.
    hello_protocol: Option<ProtocolType>,
    /// `protocoltype` of the SUBSCRIBE header, per topic.
    topic_protocols: HashMap<Topic, ProtocolType>,
    topics: Vec<Topic>,
    endpoint: MemberEndpoint,
    pushes: mpsc::Receiver<Push>,
    listening: bool,
    unacked: HashMap<String, Unacked>,
    /// Push seqs in push order, to forget pushes the core settled without an ack from this
    /// client (timed out, or acked by nobody): at most [`FORGET_FACTOR`] × window are kept.
    push_order: VecDeque<String>,
    /// Requests pushed and not yet answered or acked, oldest first (at most the window).
    requests: VecDeque<PushedRequest>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// Said goodbye or redirect: only acks until everything is acked or the instant passes.
    Draining(Instant),
    Closed,
}

enum Event {
    Shutdown,
    Control(Control),
    Written(std::io::Result<()>),
    Done(Result<Outcome, JoinError>),
    Frame(Result<Option<Package>, ReadError>),
    Push(Push),
    Timer,
}

/// One connection.
pub(super) struct Handler {
    ctx: Arc<TcpContext>,
    id: u64,
    peer: SocketAddr,
    wire: Wire,
    shutdown: CancellationToken,
    registration: Registration,
    control: mpsc::Receiver<Control>,
    session: Option<Session>,
    pending: JoinSet<Outcome>,
    last_input: Instant,
    phase: Phase,
    /// Why the connection ended, for the log line.
    end: &'static str,
    dialect_known: bool,
}

async fn next_push(session: &mut Option<Session>) -> Option<Push> {
    match session {
        Some(s) => s.pushes.recv().await,
        None => std::future::pending().await,
    }
}

impl Handler {
    pub(super) fn new(
        ctx: Arc<TcpContext>,
        counters: Arc<FrameCounters>,
        id: u64,
        peer: SocketAddr,
        stream: TcpStream,
        shutdown: CancellationToken,
    ) -> Self {
        let max = ctx.options.max_frame_bytes;
        let (read, write) = stream.into_split();
        let (registration, control) = ctx.clients.register(id, peer);
        Handler {
            id,
            peer,
            wire: Wire {
                reader: FrameReader::new(read, max),
                writer: FrameWriter::new(write, max),
                counters,
            },
            shutdown,
            registration,
            control,
            session: None,
            pending: JoinSet::new(),
            last_input: Instant::now(),
            phase: Phase::Open,
            end: "closed",
            dialect_known: false,
            ctx,
        }
    }

    /// Serves the connection until it closes.
    pub(super) async fn run(mut self) {
        debug!(message = "Connection opened.", connection_id = self.id, peer = %self.peer);
        loop {
            match self.phase {
                Phase::Closed => break,
                Phase::Draining(_) if self.drained() => {
                    self.end = "drained";
                    break;
                }
                _ => {}
            }
            let open = self.phase == Phase::Open;
            let room = self.wire.writer.pending() < HIGH_WATER;
            let can_read = room && self.pending.len() < self.ctx.options.max_pending;
            let can_push = open && room && self.session.as_ref().is_some_and(|s| s.listening);
            let deadline = match self.phase {
                Phase::Draining(until) => until,
                _ => self.last_input + self.ctx.options.idle_timeout,
            };
            let event = tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if open => Event::Shutdown,
                Some(c) = self.control.recv(), if open => Event::Control(c),
                r = self.wire.writer.write_some(), if self.wire.writer.pending() > 0 => Event::Written(r),
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => Event::Done(done),
                f = self.wire.reader.read_frame(), if can_read => Event::Frame(f),
                Some(p) = next_push(&mut self.session), if can_push => Event::Push(p),
                () = tokio::time::sleep_until(deadline) => Event::Timer,
            };
            self.on_event(event).await;
        }
        self.close().await;
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Shutdown => {
                Goodbye { reason: "shutdown" }.emit();
                self.goodbye(OpStatus::Success, SHUTDOWN_DESC.to_owned());
                self.drain();
            }
            Event::Control(Control::Reject(desc)) => {
                Goodbye { reason: "reject" }.emit();
                info!(message = "Rejecting the client.", connection_id = self.id, desc = %desc);
                self.goodbye(OpStatus::Success, desc);
                self.drain();
            }
            Event::Control(Control::Redirect(to)) => {
                Goodbye { reason: "redirect" }.emit();
                info!(
                    message = "Redirecting the client.",
                    connection_id = self.id,
                    ip = to.ip.as_deref().unwrap_or(""),
                    port = to.port
                );
                let header = Header::new(Command::RedirectToClient, None);
                self.wire.send(&Package::new(header, Body::Redirect(to)));
                self.drain();
            }
            Event::Written(Ok(())) => {}
            Event::Written(Err(error)) => {
                debug!(message = "Failed to write to the client.", connection_id = self.id, %error);
                self.close_now("write error");
            }
            Event::Done(Ok(Outcome::Reply(p))) => self.wire.send(&p),
            Event::Done(Ok(Outcome::Nothing)) => {}
            Event::Done(Err(e)) => {
                if e.is_panic() {
                    warn!(message = "A TCP operation panicked.", connection_id = self.id, error = %e);
                }
            }
            Event::Frame(Ok(Some(p))) => self.on_frame(p).await,
            Event::Frame(Ok(None)) => self.close_now("client closed"),
            Event::Frame(Err(ReadError::Protocol(e))) => {
                let reason = reason_of(&e);
                self.bad_input(reason, e.to_string());
            }
            Event::Frame(Err(ReadError::Io(error))) => {
                debug!(message = "Connection lost.", connection_id = self.id, %error);
                self.close_now("connection lost");
            }
            Event::Push(push) => self.on_push(push),
            Event::Timer => match self.phase {
                Phase::Open => {
                    Goodbye { reason: "idle" }.emit();
                    let idle = humantime::format_duration(self.ctx.options.idle_timeout);
                    info!(message = "Client idle past its timeout; saying goodbye.", connection_id = self.id, idle_timeout = %idle);
                    self.goodbye(
                        OpStatus::Fail,
                        format!("no frame for {idle} (send a heartbeat every 30s); closing the idle connection"),
                    );
                    self.close_now("idle");
                }
                Phase::Draining(_) => self.close_now("drain deadline"),
                Phase::Closed => {}
            },
        }
    }

    fn close_now(&mut self, why: &'static str) {
        self.end = why;
        self.phase = Phase::Closed;
    }

    fn drain(&mut self) {
        self.phase = Phase::Draining(Instant::now() + self.ctx.options.shutdown_grace);
    }

    /// Nothing left that the client could still ack or be answered.
    fn drained(&self) -> bool {
        self.pending.is_empty() && self.session.as_ref().is_none_or(|s| s.unacked.is_empty())
    }

    fn goodbye(&mut self, status: OpStatus, desc: String) {
        let header = Header::new(Command::ServerGoodbyeRequest, None).with_status(status, desc);
        self.wire.send(&Package::header_only(header));
    }

    /// Answers bad input with `SERVER_GOODBYE_REQUEST` (code 1, `desc`) and closes.
    fn bad_input(&mut self, reason: &'static str, desc: String) {
        warn!(message = "Bad input from a client; saying goodbye.", connection_id = self.id, peer = %self.peer, reason, error = %desc);
        BadInput { reason }.emit();
        self.goodbye(OpStatus::Fail, desc);
        self.close_now("bad input");
    }

    fn answer(&mut self, request: &Header, status: OpStatus, desc: impl Into<String>) {
        self.wire.send(&fail(request, status, desc));
    }

    fn ok(&mut self, request: &Header) {
        self.answer(request, OpStatus::Success, OpStatus::Success.desc());
    }

    async fn close(mut self) {
        if let Some(s) = self.session.take() {
            // The core hands the session's un-acked pushes to other members at once.
            s.handle.close();
        }
        self.pending.abort_all();
        if let Err(error) = self.wire.writer.finish(CLOSE_FLUSH).await {
            debug!(message = "Failed to flush the last frames.", connection_id = self.id, %error);
        }
        debug!(message = "Connection closed.", connection_id = self.id, peer = %self.peer, reason = self.end);
    }

    async fn on_frame(&mut self, package: Package) {
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
                let p = header
                    .property_string(eventmesh_protocol::tcp::PROTOCOL_TYPE)
                    .unwrap_or_default();
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

    fn on_message(&mut self, package: Package) {
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

    fn on_push(&mut self, push: Push) {
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

/// The metric label of a decode error.
fn reason_of(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::UnknownCommand(_) => "unknown_command",
        ProtocolError::InvalidHeader(_)
        | ProtocolError::MissingCommand
        | ProtocolError::InvalidHeaderField { .. } => "header",
        ProtocolError::InvalidBody { .. } => "body",
        _ => "framing",
    }
}
