//! The connection task: the one task per client that owns the socket.
//!
//! It takes [`Command`]s from the client handles and [`Outgoing`] acks and replies from the
//! subscription workers, matches answers to requests by `seq`, routes pushes to the worker of
//! their topic, sends heartbeats, and reconnects (see [`crate::reconnect`]). A [`Session`] is one
//! TCP connection's worth of state; the task outlives sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_protocol::convert::{self, KeyPolicy};
use eventmesh_protocol::tcp::{
    Body, Command as Wire, Direction, Header, PROTOCOL_DESC, PROTOCOL_TYPE, PROTOCOL_VERSION,
    Package, Subscription, SubscriptionItem,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::connection::{Connection, ReadError, WRITE_HIGH_WATER, new_seq};
use super::subscriber::{Delivery, DeliveryKind};
use crate::config::{ClientConfig, Protocol};
use crate::error::Error;
use crate::reconnect::{Reconnect, Targets};

/// The state of a client's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected and greeted (HELLO answered, subscriptions restored).
    Connected {
        /// The server address in use.
        address: String,
    },
    /// The connection was lost (or redirected) and a new one is being opened.
    Reconnecting,
    /// The client is closed; it will not reconnect.
    Closed,
}

/// The HELLO header property naming the client's identity.
pub(crate) const CLIENT_ID: &str = "clientid";

/// Answer channel of a request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a client handle asks the connection task to do.
pub(crate) enum Command {
    /// Send a request (its `seq` is assigned here) and answer with the server's answer.
    Request {
        package: Package,
        reply: Reply<Package>,
    },
    /// Register a subscription's worker and send `SUBSCRIBE_REQUEST`.
    Subscribe { route: Route, reply: Reply<Package> },
    /// Send `LISTEN_REQUEST` unless this session already listens.
    Listen { reply: Reply<()> },
    /// Send `UNSUBSCRIBE_REQUEST` and drop every subscription.
    Unsubscribe { reply: Reply<Package> },
}

/// A subscription: its wire item and its worker.
pub(crate) struct Route {
    pub(crate) item: SubscriptionItem,
    pub(crate) tx: mpsc::Sender<Push>,
    /// Tells the worker to stop after the event in hand (its ack still goes out).
    pub(crate) stop: CancellationToken,
    pub(crate) worker: Option<JoinHandle<()>>,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A pushed event on its way to a worker.
pub(crate) struct Push {
    /// The session it arrived on; its ack is only valid there.
    pub(crate) epoch: u64,
    /// The ack to send when the handler succeeds (the push echoed, as the Java SDK does).
    pub(crate) ack: Package,
    /// The body format for a reply.
    pub(crate) protocol: Protocol,
    pub(crate) delivery: Delivery,
}

/// What a worker sends back once its handler succeeded.
pub(crate) enum Outgoing {
    Ack {
        epoch: u64,
        ack: Package,
    },
    /// A SYNC subscriber's answer: `RESPONSE_TO_SERVER` (its `seq` is assigned here), then the ack.
    Reply {
        epoch: u64,
        ack: Package,
        reply: Package,
    },
}

enum Pending {
    Caller {
        reply: Reply<Package>,
        /// The topic to drop if a subscribe fails or its caller goes away.
        forget: Option<String>,
    },
    Heartbeat,
    Listen,
    Goodbye,
}

enum Listen {
    NotSent,
    InFlight(Vec<Reply<()>>),
    Done,
}

/// One TCP connection's worth of state.
pub(crate) struct Session {
    conn: Connection,
    epoch: u64,
    pending: HashMap<String, Pending>,
    listen: Listen,
    heartbeat: Option<String>,
}

impl Session {
    /// A fresh `seq`, unused by any request waiting on this session.
    fn seq(&self) -> String {
        loop {
            let seq = new_seq();
            if !self.pending.contains_key(&seq) {
                return seq;
            }
        }
    }

    /// Assigns a seq and queues `package`.
    fn send(&mut self, mut package: Package, pending: Pending) -> Result<(), (Error, Pending)> {
        let seq = self.seq();
        package.header.seq = Some(seq.clone());
        match self.conn.queue(&package) {
            Ok(()) => {
                self.pending.insert(seq, pending);
                Ok(())
            }
            Err(e) => Err((Error::Protocol(e), pending)),
        }
    }
}

/// Why a session ended.
enum End {
    /// The client is closing.
    Closed,
    /// The connection failed.
    Lost(String),
    /// `SERVER_GOODBYE_REQUEST`.
    ServerGoodbye { code: i32, desc: Option<String> },
    /// `REDIRECT_TO_CLIENT` to this address.
    Redirect(String),
}

impl End {
    fn into_error(self) -> Error {
        match self {
            End::Closed => Error::Closed,
            End::Lost(_) | End::Redirect(_) => Error::Disconnected,
            End::ServerGoodbye { code, desc } => {
                Error::from_answer(Wire::ServerGoodbyeRequest, code, desc)
            }
        }
    }
}

/// The connection task.
pub(crate) struct Task {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) cancel: CancellationToken,
    /// Cancelled when the task ends: stops every worker, even in the middle of a handler.
    kill: CancellationToken,
    pub(crate) targets: Targets,
    commands: mpsc::Receiver<Command>,
    outgoing: mpsc::Receiver<Outgoing>,
    routes: HashMap<String, Route>,
    state: watch::Sender<ConnectionState>,
    epoch: u64,
    /// Sent as the HELLO `clientid` property: the member identity, stable across reconnects.
    client_id: String,
}

/// Whether `command` answers a client request (and so carries the request's `seq`).
fn is_answer(command: Wire) -> bool {
    command.direction() == Direction::ServerToClient
        && Wire::ALL.iter().any(|c| c.reply() == Some(command))
}

/// The answer checked: a non-zero code is an error.
pub(crate) fn check(answer: Package) -> Result<Package, Error> {
    if answer.header.code == 0 {
        Ok(answer)
    } else {
        Err(Error::from_answer(
            answer.header.command,
            answer.header.code,
            answer.header.desc.clone(),
        ))
    }
}

/// The event a push or answer carries. A header without the protocol properties (which every
/// runtime sets) is read as `fallback`.
pub(crate) fn event_of(
    package: &Package,
    fallback: Protocol,
) -> Result<eventmesh_core::CloudEvent, Error> {
    if package.header.properties.contains_key(PROTOCOL_TYPE) {
        return Ok(convert::event_from_package(package, KeyPolicy::Normalize)?);
    }
    let mut package = package.clone();
    package.header = package
        .header
        .with_property(PROTOCOL_TYPE, fallback.wire().as_str())
        .with_property(PROTOCOL_VERSION, "1.0")
        .with_property(PROTOCOL_DESC, "tcp");
    Ok(convert::event_from_package(&package, KeyPolicy::Normalize)?)
}

impl Task {
    pub(crate) fn new(
        config: Arc<ClientConfig>,
        cancel: CancellationToken,
        kill: CancellationToken,
        commands: mpsc::Receiver<Command>,
        outgoing: mpsc::Receiver<Outgoing>,
        state: watch::Sender<ConnectionState>,
    ) -> Self {
        let client_id = config
            .client_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", std::process::id(), crate::random_id()));
        Task {
            targets: Targets::new(config.address.clone()),
            config,
            cancel,
            kill,
            commands,
            outgoing,
            routes: HashMap::new(),
            state,
            epoch: 0,
            client_id,
        }
    }

    /// Runs until the client is closed (or gives up reconnecting).
    pub(crate) async fn run(mut self, first: Session) {
        let mut session = first;
        loop {
            let end = self.serve(&mut session).await;
            // After a redirect or a goodbye the server still reads for a while: acks that are
            // ready go out before the connection is dropped.
            let server_reads = matches!(end, End::ServerGoodbye { .. } | End::Redirect(_));
            let how = match end {
                End::Closed => {
                    self.drain_workers(&mut session).await;
                    self.goodbye(session).await;
                    break;
                }
                End::Lost(reason) => {
                    warn!(message = "Connection lost; reconnecting.", address = %session.conn.address(), %reason);
                    Reconnect::AfterDelay
                }
                End::ServerGoodbye { code, desc } => {
                    info!(message = "The server said goodbye; reconnecting.", address = %session.conn.address(), code, desc = desc.as_deref().unwrap_or(""));
                    Reconnect::AfterDelay
                }
                End::Redirect(address) => {
                    info!(message = "Redirected by the server.", from = %session.conn.address(), to = %address);
                    self.targets.redirect(address);
                    Reconnect::Now
                }
            };
            if server_reads {
                while let Ok(out) = self.outgoing.try_recv() {
                    self.on_outgoing(&mut session, out);
                }
            }
            self.abandon(session, || Error::Disconnected);
            self.state.send_replace(ConnectionState::Reconnecting);
            match self.reconnect(how).await {
                Some(next) => session = next,
                None => break,
            }
        }
        self.routes.clear();
        self.kill.cancel();
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            reject(command, || Error::Closed);
        }
        self.state.send_replace(ConnectionState::Closed);
        debug!(message = "Connection task ended.");
    }

    /// Opens a session on `address`: HELLO, then the subscriptions and LISTEN if there are any.
    pub(crate) async fn open_session(&mut self, address: &str) -> Result<Session, Error> {
        let conn = Connection::connect(
            address,
            self.config.connect_timeout,
            self.config.max_frame_bytes,
        )
        .await?;
        self.epoch += 1;
        let mut session = Session {
            conn,
            epoch: self.epoch,
            pending: HashMap::new(),
            listen: Listen::NotSent,
            heartbeat: None,
        };
        let hello = Package::new(
            Header::new(Wire::HelloRequest, None).with_property(CLIENT_ID, self.client_id.clone()),
            Body::UserAgent(Box::new(self.config.user_agent.clone())),
        );
        check(self.exchange(&mut session, hello).await?)?;
        if !self.routes.is_empty() {
            let subscription = Subscription {
                topic_list: self.routes.values().map(|r| r.item.clone()).collect(),
            };
            let subscribe = Package::new(
                Header::new(Wire::SubscribeRequest, None),
                Body::Subscription(subscription),
            );
            check(self.exchange(&mut session, subscribe).await?)?;
            let listen = Package::header_only(Header::new(Wire::ListenRequest, None));
            check(self.exchange(&mut session, listen).await?)?;
            session.listen = Listen::Done;
        }
        self.targets.connected(address);
        self.state.send_replace(ConnectionState::Connected {
            address: address.to_owned(),
        });
        debug!(
            message = "Session open.",
            address,
            topics = self.routes.len()
        );
        Ok(session)
    }

    /// Sends `package` and waits for its answer, handling whatever else arrives meanwhile.
    async fn exchange(&mut self, s: &mut Session, mut package: Package) -> Result<Package, Error> {
        let seq = s.seq();
        package.header.seq = Some(seq.clone());
        let expected = package.header.command.reply();
        s.conn.queue(&package)?;
        let timeout = self.config.request_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let answer = match tokio::time::timeout_at(deadline, s.conn.read_package()).await {
                Err(_) => return Err(Error::Timeout(timeout)),
                Ok(Err(e)) => return Err(read_error(e)),
                Ok(Ok(p)) => p,
            };
            if answer.header.seq.as_deref() == Some(seq.as_str())
                && Some(answer.header.command) == expected
            {
                return Ok(answer);
            }
            if let Some(end) = self.on_frame(s, answer) {
                return Err(end.into_error());
            }
        }
    }

    async fn serve(&mut self, s: &mut Session) -> End {
        let period = self.config.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = s.conn.backlog() < WRITE_HIGH_WATER;
            tokio::select! {
                () = self.cancel.cancelled() => return End::Closed,
                read = s.conn.read_package() => match read {
                    Ok(package) => {
                        if let Some(end) = self.on_frame(s, package) {
                            return end;
                        }
                    }
                    Err(e) => return End::Lost(e.to_string()),
                },
                command = self.commands.recv(), if room => match command {
                    Some(command) => self.on_command(s, command),
                    None => return End::Closed,
                },
                Some(out) = self.outgoing.recv(), if room => self.on_outgoing(s, out),
                _ = heartbeat.tick() => {
                    if let Some(end) = self.on_heartbeat(s) {
                        return end;
                    }
                }
            }
        }
    }

    fn on_command(&mut self, s: &mut Session, command: Command) {
        match command {
            Command::Request { package, reply } => {
                if reply.is_closed() {
                    return;
                }
                if let Err((e, Pending::Caller { reply, .. })) = s.send(
                    package,
                    Pending::Caller {
                        reply,
                        forget: None,
                    },
                ) {
                    let _ = reply.send(Err(e));
                }
            }
            Command::Subscribe { route, reply } => {
                let topic = route.item.topic.clone();
                if self.routes.contains_key(&topic) {
                    let _ = reply.send(Err(Error::AlreadySubscribed(topic)));
                    return;
                }
                let package = Package::new(
                    Header::new(Wire::SubscribeRequest, None),
                    Body::Subscription(Subscription {
                        topic_list: vec![route.item.clone()],
                    }),
                );
                self.routes.insert(topic.clone(), route);
                let pending = Pending::Caller {
                    reply,
                    forget: Some(topic.clone()),
                };
                if let Err((e, Pending::Caller { reply, .. })) = s.send(package, pending) {
                    self.routes.remove(&topic);
                    let _ = reply.send(Err(e));
                }
            }
            Command::Listen { reply } => match &mut s.listen {
                Listen::Done => {
                    let _ = reply.send(Ok(()));
                }
                Listen::InFlight(waiters) => waiters.push(reply),
                Listen::NotSent => {
                    let package = Package::header_only(Header::new(Wire::ListenRequest, None));
                    match s.send(package, Pending::Listen) {
                        Ok(()) => s.listen = Listen::InFlight(vec![reply]),
                        Err((e, _)) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            },
            Command::Unsubscribe { reply } => {
                let topic_list = self.routes.values().map(|r| r.item.clone()).collect();
                self.routes.clear();
                let package = Package::new(
                    Header::new(Wire::UnsubscribeRequest, None),
                    Body::Subscription(Subscription { topic_list }),
                );
                let pending = Pending::Caller {
                    reply,
                    forget: None,
                };
                if let Err((e, Pending::Caller { reply, .. })) = s.send(package, pending) {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    fn on_outgoing(&mut self, s: &mut Session, out: Outgoing) {
        let (epoch, ack, reply) = match out {
            Outgoing::Ack { epoch, ack } => (epoch, ack, None),
            Outgoing::Reply { epoch, ack, reply } => (epoch, ack, Some(reply)),
        };
        if epoch != s.epoch {
            debug!(
                message =
                    "Dropping an ack for an earlier connection; the server redelivers the event."
            );
            return;
        }
        if let Some(mut reply) = reply {
            reply.header.seq = Some(s.seq());
            if let Err(error) = s.conn.queue(&reply) {
                warn!(message = "Cannot send a reply; not acknowledging the request.", %error);
                return;
            }
        }
        if let Err(error) = s.conn.queue(&ack) {
            warn!(message = "Cannot send an ack.", %error);
        }
    }

    fn on_heartbeat(&mut self, s: &mut Session) -> Option<End> {
        let mut forget = Vec::new();
        s.pending.retain(|_, p| match p {
            Pending::Caller { reply, forget: f } if reply.is_closed() => {
                forget.extend(f.take());
                false
            }
            _ => true,
        });
        for topic in forget {
            self.routes.remove(&topic);
        }
        if s.heartbeat.is_some() {
            return Some(End::Lost(format!(
                "no heartbeat answer within {} ms",
                self.config.heartbeat_interval.as_millis()
            )));
        }
        let package = Package::header_only(Header::new(Wire::HeartbeatRequest, None));
        let seq = s.seq();
        let mut package = package;
        package.header.seq = Some(seq.clone());
        if let Err(error) = s.conn.queue(&package) {
            return Some(End::Lost(error.to_string()));
        }
        s.pending.insert(seq.clone(), Pending::Heartbeat);
        s.heartbeat = Some(seq);
        None
    }

    /// Handles one frame from the server; `Some` ends the session.
    fn on_frame(&mut self, s: &mut Session, package: Package) -> Option<End> {
        let command = package.header.command;
        match command {
            Wire::AsyncMessageToClient | Wire::BroadcastMessageToClient | Wire::RequestToClient => {
                self.on_push(s, package);
            }
            Wire::ResponseToClient => {
                let ack = Package::new(
                    Header::new(Wire::ResponseToClientAck, package.header.seq.clone()),
                    package.body.clone(),
                );
                if let Err(error) = s.conn.queue(&ack) {
                    warn!(message = "Cannot acknowledge a response.", %error);
                }
                self.resolve(s, package);
            }
            Wire::ServerGoodbyeRequest => {
                return Some(End::ServerGoodbye {
                    code: package.header.code,
                    desc: package.header.desc,
                });
            }
            Wire::RedirectToClient => match &package.body {
                Body::Redirect(r) => match (r.ip.as_deref(), u16::try_from(r.port)) {
                    (Some(ip), Ok(port)) if !ip.trim().is_empty() && port != 0 => {
                        let ip = ip.trim();
                        let address = if ip.contains(':') {
                            format!("[{ip}]:{port}")
                        } else {
                            format!("{ip}:{port}")
                        };
                        return Some(End::Redirect(address));
                    }
                    _ => warn!(
                        message = "Ignoring a redirect without a usable address.",
                        ip = r.ip.as_deref().unwrap_or(""),
                        port = r.port
                    ),
                },
                _ => warn!(message = "Ignoring a redirect without a body."),
            },
            c if is_answer(c) => self.resolve(s, package),
            other => debug!(message = "Ignoring an unexpected command.", command = %other),
        }
        None
    }

    fn resolve(&mut self, s: &mut Session, answer: Package) {
        let Some(seq) = answer.header.seq.clone() else {
            debug!(message = "Ignoring an answer without seq.", command = %answer.header.command);
            return;
        };
        match s.pending.remove(&seq) {
            Some(Pending::Caller { reply, forget }) => {
                let failed = answer.header.code != 0;
                if reply.send(Ok(answer)).is_err() || failed {
                    // A failed subscribe, or one whose caller gave up: no handler for the topic.
                    if let Some(topic) = forget {
                        self.routes.remove(&topic);
                    }
                }
            }
            Some(Pending::Heartbeat) => {
                if s.heartbeat.as_deref() == Some(seq.as_str()) {
                    s.heartbeat = None;
                }
            }
            Some(Pending::Listen) => {
                let waiters = match std::mem::replace(&mut s.listen, Listen::NotSent) {
                    Listen::InFlight(w) => w,
                    _ => Vec::new(),
                };
                if answer.header.code == 0 {
                    s.listen = Listen::Done;
                }
                for waiter in waiters {
                    let _ = waiter.send(check(answer.clone()).map(drop));
                }
            }
            Some(Pending::Goodbye) => {}
            None => {
                debug!(message = "Ignoring an answer to no pending request.", command = %answer.header.command, seq)
            }
        }
    }

    fn on_push(&mut self, s: &mut Session, package: Package) {
        let command = package.header.command;
        let (Some(ack_command), Some(kind)) = (command.ack(), DeliveryKind::of(command)) else {
            return;
        };
        let protocol = match package.header.protocol_type() {
            Some(Ok(t)) if t.as_str() == Protocol::CloudEvents.wire().as_str() => {
                Protocol::CloudEvents
            }
            Some(Ok(_)) => Protocol::EventMeshMessage,
            _ => self.config.protocol,
        };
        let event = match event_of(&package, protocol) {
            Ok(e) => e,
            Err(error) => {
                warn!(message = "Cannot decode a pushed event; not acknowledging it.", command = %command, %error);
                return;
            }
        };
        let topic = event.subject.clone().unwrap_or_default();
        let route = match self.routes.get(&topic) {
            Some(r) => r,
            None if self.routes.len() == 1 => match self.routes.values().next() {
                Some(r) => r,
                None => return,
            },
            None => {
                warn!(
                    message = "No subscription for a pushed event; not acknowledging it.",
                    topic
                );
                return;
            }
        };
        let push = Push {
            epoch: s.epoch,
            ack: Package::new(
                Header::new(ack_command, package.header.seq.clone()),
                package.body.clone(),
            ),
            protocol,
            delivery: Delivery {
                topic: route.item.topic.clone(),
                kind,
                event,
            },
        };
        if let Err(e) = route.tx.try_send(push) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "the subscription's buffer is full",
                mpsc::error::TrySendError::Closed(_) => "the subscription's handler stopped",
            };
            warn!(
                message = "Dropping a pushed event without ack; the server will deliver it again.",
                topic, reason
            );
        }
    }

    /// Lets every worker finish the event in hand and sends the acks (within a short
    /// deadline); events still buffered are left un-acked, for the server to redeliver.
    async fn drain_workers(&mut self, s: &mut Session) {
        let workers: Vec<JoinHandle<()>> = self
            .routes
            .values_mut()
            .filter_map(|r| {
                r.stop.cancel();
                r.worker.take()
            })
            .collect();
        let deadline = Instant::now() + self.config.request_timeout.min(Duration::from_secs(5));
        for mut worker in workers {
            loop {
                tokio::select! {
                    _ = &mut worker => break,
                    Some(out) = self.outgoing.recv() => self.on_outgoing(s, out),
                    () = tokio::time::sleep_until(deadline) => {
                        warn!(message = "A handler did not finish in time; stopping it.");
                        break;
                    }
                }
            }
        }
        while let Ok(out) = self.outgoing.try_recv() {
            self.on_outgoing(s, out);
        }
    }

    /// Says CLIENT_GOODBYE and waits (briefly) for the answer, then closes the socket.
    async fn goodbye(&mut self, mut s: Session) {
        let package = Package::header_only(Header::new(Wire::ClientGoodbyeRequest, None));
        let seq = s.seq();
        let mut package = package;
        package.header.seq = Some(seq.clone());
        if s.conn.queue(&package).is_ok() {
            s.pending.insert(seq.clone(), Pending::Goodbye);
            let wait = self.config.request_timeout.min(Duration::from_secs(5));
            let deadline = Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, s.conn.read_package()).await {
                    Ok(Ok(p))
                        if p.header.command == Wire::ClientGoodbyeResponse
                            && p.header.seq.as_deref() == Some(seq.as_str()) =>
                    {
                        break;
                    }
                    // Pushes arriving now are not handled (nor acknowledged): redelivered.
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
        self.abandon(s, || Error::Closed);
    }

    /// Ends a session: every waiting caller gets `error`, the socket is closed.
    fn abandon(&mut self, s: Session, error: impl Fn() -> Error) {
        let Session {
            conn,
            pending,
            listen,
            ..
        } = s;
        for (_, p) in pending {
            if let Pending::Caller { reply, forget } = p {
                let _ = reply.send(Err(error()));
                if let Some(topic) = forget {
                    self.routes.remove(&topic);
                }
            }
        }
        if let Listen::InFlight(waiters) = listen {
            for w in waiters {
                let _ = w.send(Err(error()));
            }
        }
        // Flush what is queued (acks, the goodbye) without holding the task up for long.
        let shutdown = conn.shutdown();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), shutdown).await;
        });
    }
}

fn reject(command: Command, error: impl Fn() -> Error) {
    match command {
        Command::Request { reply, .. }
        | Command::Subscribe { reply, .. }
        | Command::Unsubscribe { reply } => {
            let _ = reply.send(Err(error()));
        }
        Command::Listen { reply } => {
            let _ = reply.send(Err(error()));
        }
    }
}

fn read_error(e: ReadError) -> Error {
    match e {
        ReadError::Eof => Error::Disconnected,
        ReadError::Io(e) => Error::Io(e),
        ReadError::Protocol(e) => Error::Protocol(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_replies_of_client_requests() {
        assert!(is_answer(Wire::HelloResponse));
        assert!(is_answer(Wire::AsyncMessageToServerAck));
        assert!(is_answer(Wire::ResponseToClient));
        assert!(!is_answer(Wire::AsyncMessageToClient));
        assert!(!is_answer(Wire::ServerGoodbyeResponse));
        assert!(!is_answer(Wire::RedirectToClient));
    }

    #[test]
    fn non_zero_codes_are_errors() {
        let ok = Package::header_only(Header::new(Wire::HelloResponse, Some("1".into())));
        assert!(check(ok.clone()).is_ok());
        let mut bad = ok;
        bad.header.code = 3;
        assert!(check(bad).is_err_and(|e| e.is_rate_limited()));
    }
}
