//! A small scripted EventMesh TCP server for SDK tests: a tokio listener on port 0 speaking the
//! protocol crate's codec. It answers the session commands (configurable), reports every frame
//! it receives to the test, and lets the test push frames or drop connections.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use eventmesh_core::CloudEvent;
use eventmesh_protocol::convert;
use eventmesh_protocol::tcp::{Command, FrameCodec, Header, Package, ProtocolType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// What the server saw.
#[derive(Debug)]
pub enum Seen {
    Connected(u64),
    Frame(u64, Package),
    Closed(u64),
}

enum Ctl {
    Send(Package),
    Close,
}

/// Knobs of the scripted answers.
pub struct Behaviour {
    /// Answer HELLO, SUBSCRIBE, LISTEN, UNSUBSCRIBE and CLIENT_GOODBYE with code 0.
    pub answer_session: AtomicBool,
    /// Answer heartbeats.
    pub answer_heartbeats: AtomicBool,
    /// The code publishes are answered with; -1 = no answer.
    pub publish_code: AtomicI32,
    /// The desc of non-zero publish answers.
    pub publish_desc: Mutex<String>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    seen: mpsc::Receiver<Seen>,
    conns: Arc<Mutex<HashMap<u64, mpsc::Sender<Ctl>>>>,
    cancel: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let behaviour = Arc::new(Behaviour {
            answer_session: AtomicBool::new(true),
            answer_heartbeats: AtomicBool::new(true),
            publish_code: AtomicI32::new(0),
            publish_desc: Mutex::new(String::new()),
        });
        let (seen_tx, seen) = mpsc::channel(4096);
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let cancel = CancellationToken::new();
        tokio::spawn(accept(
            listener,
            behaviour.clone(),
            seen_tx,
            conns.clone(),
            cancel.clone(),
        ));
        FakeServer {
            addr,
            behaviour,
            seen,
            conns,
            cancel,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The next thing seen, within [`WAIT`].
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("the fake server saw nothing in time")
            .expect("the fake server stopped")
    }

    /// The next frame with `command` (skipping everything else), within [`WAIT`].
    pub async fn frame(&mut self, command: Command) -> (u64, Package) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .unwrap_or_else(|_| panic!("no {command} in time"))
                .expect("the fake server stopped");
            if let Seen::Frame(conn, p) = seen
                && p.header.command == command
            {
                return (conn, p);
            }
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn frame_except_heartbeat(&mut self) -> (u64, Package) {
        loop {
            if let Seen::Frame(conn, p) = self.next().await
                && p.header.command != Command::HeartbeatRequest
            {
                return (conn, p);
            }
        }
    }

    /// Nothing but heartbeats for `quiet`: panics on any other frame.
    pub async fn expect_no_frame(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Err(_) => return,
                Ok(Some(Seen::Frame(_, p))) if p.header.command != Command::HeartbeatRequest => {
                    panic!("unexpected frame {:?}", p.header.command)
                }
                Ok(_) => {}
            }
        }
    }

    pub async fn send(&self, conn: u64, package: Package) {
        let tx = self.conns.lock().expect("lock").get(&conn).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(Ctl::Send(package)).await;
        }
    }

    pub async fn close(&self, conn: u64) {
        let tx = self.conns.lock().expect("lock").get(&conn).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(Ctl::Close).await;
        }
    }
}

/// A push of `event` on `topic` with the server seq `seq`.
pub fn push(command: Command, seq: &str, topic: &str, event: CloudEvent) -> Package {
    let mut event = event;
    event.subject = Some(topic.to_owned());
    convert::event_package(
        Header::new(command, Some(seq.to_owned())),
        &event,
        ProtocolType::EventMeshMessage,
    )
    .expect("a push package")
}

async fn accept(
    listener: TcpListener,
    behaviour: Arc<Behaviour>,
    seen: mpsc::Sender<Seen>,
    conns: Arc<Mutex<HashMap<u64, mpsc::Sender<Ctl>>>>,
    cancel: CancellationToken,
) {
    let next_id = AtomicU64::new(1);
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => return,
            },
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(64);
        conns.lock().expect("lock").insert(id, tx);
        let _ = seen.send(Seen::Connected(id)).await;
        tokio::spawn(connection(
            id,
            stream,
            behaviour.clone(),
            seen.clone(),
            rx,
            cancel.clone(),
        ));
    }
}

fn answer(request: &Package, code: i32, desc: Option<String>) -> Package {
    let mut header = request.header.reply(
        eventmesh_protocol::tcp::OpStatus::Success,
        desc.or_else(|| Some("success".into())),
    );
    header.code = code;
    Package::header_only(header)
}

async fn connection(
    id: u64,
    mut stream: TcpStream,
    behaviour: Arc<Behaviour>,
    seen: mpsc::Sender<Seen>,
    mut ctl: mpsc::Receiver<Ctl>,
    cancel: CancellationToken,
) {
    let mut codec = FrameCodec::detecting();
    let mut rbuf = BytesMut::with_capacity(8192);
    loop {
        // Answer every whole frame buffered.
        loop {
            let package = match codec.decode_buf(&mut rbuf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => panic!("the client sent a bad frame: {e}"),
            };
            let reply = match package.header.command {
                Command::HelloRequest
                | Command::SubscribeRequest
                | Command::ListenRequest
                | Command::UnsubscribeRequest
                | Command::ClientGoodbyeRequest
                    if behaviour.answer_session.load(Ordering::Relaxed) =>
                {
                    Some(answer(&package, 0, None))
                }
                Command::HeartbeatRequest
                    if behaviour.answer_heartbeats.load(Ordering::Relaxed) =>
                {
                    Some(answer(&package, 0, None))
                }
                Command::AsyncMessageToServer | Command::BroadcastMessageToServer => {
                    let code = behaviour.publish_code.load(Ordering::Relaxed);
                    let desc = behaviour.publish_desc.lock().expect("lock").clone();
                    (code >= 0).then(|| answer(&package, code, (code != 0).then_some(desc)))
                }
                _ => None,
            };
            if let Some(reply) = reply {
                let mut out = BytesMut::new();
                codec.encode(&reply, &mut out).expect("encode");
                if stream.write_all(&out).await.is_err() {
                    break;
                }
            }
            let _ = seen.send(Seen::Frame(id, package)).await;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            command = ctl.recv() => match command {
                Some(Ctl::Send(p)) => {
                    let mut out = BytesMut::new();
                    codec.encode(&p, &mut out).expect("encode");
                    if stream.write_all(&out).await.is_err() {
                        break;
                    }
                }
                Some(Ctl::Close) | None => break,
            },
        }
    }
    let _ = seen.send(Seen::Closed(id)).await;
}
