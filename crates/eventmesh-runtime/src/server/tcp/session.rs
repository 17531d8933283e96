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
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{GroupName, Topic};
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::tcp::{Body, Command, Header, OpStatus, Package, ProtocolType, Purpose};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::TcpContext;
use super::clients::{Control, Registration};
use super::connection::{FrameReader, FrameWriter, ReadError};
use super::publish::{Outcome, PushedRequest, fail};
use crate::core::{DeliveryId, MemberEndpoint, Push, SessionHandle};
use crate::telemetry::tcp::{BadInput, FrameCounters, Goodbye};

/// Unsent output above which the connection stops reading and pushing.
const HIGH_WATER: usize = 1024 * 1024;
/// Pushes remembered for their ack, as a multiple of the window. The core holds at most a
/// window of them un-acked; older ones were settled without this client (ack timeout) and an ack
/// of them would be refused anyway.
pub(super) const FORGET_FACTOR: usize = 4;
/// How long the last frames (a goodbye) may take to leave.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// The `desc` of the shutdown goodbye (as the Java runtime).
const SHUTDOWN_DESC: &str = "graceful normal quit from eventmesh";
/// The header property naming a stable client id for BROADCASTING positions.
pub(super) const CLIENT_ID_PROPERTY: &str = "clientid";

/// The framed socket and the frame counters.
pub(super) struct Wire {
    pub(super) reader: FrameReader,
    pub(super) writer: FrameWriter,
    pub(super) counters: Arc<FrameCounters>,
}

impl Wire {
    /// Queues `package` in the client's framing. A frame over the limit is replaced by its bare
    /// header with code 1 (the client still gets an answer).
    pub(super) fn send(&mut self, package: &Package) {
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
pub(super) struct Unacked {
    pub(super) delivery: DeliveryId,
    pub(super) topic: Topic,
}

/// What a connection knows once the client said hello.
pub(super) struct Session {
    pub(super) handle: Arc<SessionHandle>,
    pub(super) group: GroupName,
    pub(super) purpose: Purpose,
    /// `protocoltype` of the HELLO header.
    pub(super) hello_protocol: Option<ProtocolType>,
    /// `protocoltype` of the SUBSCRIBE header, per topic.
    pub(super) topic_protocols: HashMap<Topic, ProtocolType>,
    pub(super) topics: Vec<Topic>,
    pub(super) endpoint: MemberEndpoint,
    pub(super) pushes: mpsc::Receiver<Push>,
    pub(super) listening: bool,
    pub(super) unacked: HashMap<String, Unacked>,
    /// Push seqs in push order, to forget pushes the core settled without an ack from this
    /// client (timed out, or acked by nobody): at most [`FORGET_FACTOR`] × window are kept.
    pub(super) push_order: VecDeque<String>,
    /// Requests pushed and not yet answered or acked, oldest first (at most the window).
    pub(super) requests: VecDeque<PushedRequest>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
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
    pub(super) ctx: Arc<TcpContext>,
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) wire: Wire,
    pub(super) shutdown: CancellationToken,
    pub(super) registration: Registration,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) session: Option<Session>,
    pub(super) pending: JoinSet<Outcome>,
    pub(super) last_input: Instant,
    pub(super) phase: Phase,
    /// Why the connection ended, for the log line.
    pub(super) end: &'static str,
    pub(super) dialect_known: bool,
    /// The idle timer (re-armed from `last_input` when it fires), or the end of draining.
    pub(super) timer: Pin<Box<Sleep>>,
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
            timer: Box::pin(tokio::time::sleep(ctx.options.idle_timeout)),
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
            let event = tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if open => Event::Shutdown,
                Some(c) = self.control.recv(), if open => Event::Control(c),
                r = self.wire.writer.write_some(), if self.wire.writer.pending() > 0 => Event::Written(r),
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => Event::Done(done),
                f = self.wire.reader.read_frame(), if can_read => Event::Frame(f),
                Some(p) = next_push(&mut self.session), if can_push => Event::Push(p),
                () = &mut self.timer => Event::Timer,
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
            Event::Done(first) => {
                // Take every finished operation at once: one write for all their answers.
                let mut next = Some(first);
                while let Some(done) = next {
                    match done {
                        Ok(Outcome::Reply(p)) => self.wire.send(&p),
                        Ok(Outcome::Nothing) => {}
                        Err(e) if e.is_panic() => {
                            warn!(message = "A TCP operation panicked.", connection_id = self.id, error = %e);
                        }
                        Err(_) => {}
                    }
                    next = self.pending.try_join_next();
                }
            }
            Event::Frame(Ok(Some(p))) => {
                self.on_frame(p).await;
                // Handle the frames already read before going back to the socket.
                while self.phase != Phase::Closed
                    && self.pending.len() < self.ctx.options.max_pending
                    && self.wire.writer.pending() < HIGH_WATER
                {
                    match self.wire.reader.buffered_frame() {
                        Ok(Some(p)) => self.on_frame(p).await,
                        Ok(None) => break,
                        Err(e) => {
                            let reason = reason_of(&e);
                            self.bad_input(reason, e.to_string());
                        }
                    }
                }
            }
            Event::Frame(Ok(None)) => self.close_now("client closed"),
            Event::Frame(Err(ReadError::Protocol(e))) => {
                let reason = reason_of(&e);
                self.bad_input(reason, e.to_string());
            }
            Event::Frame(Err(ReadError::Io(error))) => {
                debug!(message = "Connection lost.", connection_id = self.id, %error);
                self.close_now("connection lost");
            }
            Event::Push(push) => {
                self.on_push(push);
                // Take the pushes already queued: one write for all of them.
                while self.phase == Phase::Open && self.wire.writer.pending() < HIGH_WATER {
                    match self.session.as_mut().map(|s| s.pushes.try_recv()) {
                        Some(Ok(p)) => self.on_push(p),
                        _ => break,
                    }
                }
            }
            Event::Timer => match self.phase {
                Phase::Open if Instant::now() < self.last_input + self.ctx.options.idle_timeout => {
                    // Input came since the timer was set: set it from the last input.
                    let at = self.last_input + self.ctx.options.idle_timeout;
                    self.timer.as_mut().reset(at);
                }
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

    pub(super) fn close_now(&mut self, why: &'static str) {
        self.end = why;
        self.phase = Phase::Closed;
    }

    pub(super) fn drain(&mut self) {
        let until = Instant::now() + self.ctx.options.shutdown_grace;
        self.phase = Phase::Draining(until);
        self.timer.as_mut().reset(until);
    }

    /// Nothing left that the client could still ack or be answered.
    fn drained(&self) -> bool {
        self.pending.is_empty() && self.session.as_ref().is_none_or(|s| s.unacked.is_empty())
    }

    pub(super) fn goodbye(&mut self, status: OpStatus, desc: String) {
        let header = Header::new(Command::ServerGoodbyeRequest, None).with_status(status, desc);
        self.wire.send(&Package::header_only(header));
    }

    /// Answers bad input with `SERVER_GOODBYE_REQUEST` (code 1, `desc`) and closes.
    pub(super) fn bad_input(&mut self, reason: &'static str, desc: String) {
        warn!(message = "Bad input from a client; saying goodbye.", connection_id = self.id, peer = %self.peer, reason, error = %desc);
        BadInput { reason }.emit();
        self.goodbye(OpStatus::Fail, desc);
        self.close_now("bad input");
    }

    pub(super) fn answer(&mut self, request: &Header, status: OpStatus, desc: impl Into<String>) {
        self.wire.send(&fail(request, status, desc));
    }

    pub(super) fn ok(&mut self, request: &Header) {
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
