//! Helpers of the TCP server tests: the runtime in-process on port 0, and a raw-socket client
//! that behaves as the Apache EventMesh Java SDK does (seq of ten digits 0-8, acks sent after
//! handling a push, echoing the pushed body).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use eventmesh_config::{Config, StorageKind};
use eventmesh_protocol::tcp::{
    Body, Command, Dialect, EventMeshMessage, FrameCodec, Header, Package, ProtocolType,
    Subscription, SubscriptionItem, SubscriptionMode, SubscriptionType, UserAgent, encode,
};
use eventmesh_runtime::{Runtime, RuntimeHandle};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A node on a memory store, TCP and admin on port 0; `tweak` adjusts the config first.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> (RuntimeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = Config::default();
    c.node.data_dir = dir.path().to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = StorageKind::Memory;
    c.shutdown.timeout = Duration::from_secs(10);
    tweak(&mut c);
    let handle = Runtime::start(c).await.expect("the runtime starts");
    assert!(handle.wait_ready().await, "the node becomes ready");
    (handle, dir)
}

/// A Java-SDK-style seq: ten characters '0'..='8'.
pub fn seq() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'0' + rng.random_range(0..9u8)))
        .collect()
}

/// A user agent as the Java SDK sends it.
pub fn user_agent(group: &str, purpose: &str, pid: i32) -> UserAgent {
    UserAgent {
        env: Some("test".into()),
        subsystem: Some("5023".into()),
        path: Some("/data/app/test".into()),
        pid,
        host: Some("127.0.0.1".into()),
        port: 8362,
        version: Some("2.0.11".into()),
        username: Some("u".into()),
        password: Some("p".into()),
        idc: Some("FT".into()),
        group: Some(group.into()),
        purpose: Some(purpose.into()),
        unack: 0,
        ..UserAgent::default()
    }
}

/// An `eventmeshmessage` command carrying `body` to `topic`, with extra message properties.
pub fn message(cmd: Command, topic: &str, body: &str, props: &[(&str, &str)]) -> Package {
    let msg = EventMeshMessage {
        topic: Some(topic.into()),
        properties: props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        headers: [("datacontenttype".to_owned(), "text/plain".to_owned())]
            .into_iter()
            .collect(),
        body: Some(body.into()),
    };
    Package::new(
        Header::new(cmd, Some(seq())).with_protocol(ProtocolType::EventMeshMessage, "1.0"),
        Body::Raw(msg.to_json().into()),
    )
}

/// The Java SDK's ack of a push: the ack command, the push's seq, the push's body echoed.
pub fn ack_of(push: &Package) -> Package {
    let cmd = push.header.command.ack().expect("a push command");
    Package::new(Header::new(cmd, push.header.seq.clone()), push.body.clone())
}

/// The `eventmeshmessage` body of a push.
pub fn message_of(push: &Package) -> EventMeshMessage {
    EventMeshMessage::from_json(push.raw_body().expect("a raw body")).expect("an EventMeshMessage")
}

/// A raw-socket client.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
    dialect: Dialect,
    /// Frames read while waiting for another command.
    stash: VecDeque<Package>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, Dialect::V19).await
    }

    pub async fn connect_with(addr: SocketAddr, dialect: Dialect) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::new(dialect),
            dialect,
            stash: VecDeque::new(),
        }
    }

    pub async fn send(&mut self, p: &Package) {
        let mut out = BytesMut::new();
        encode(p, self.dialect, &mut out).expect("encode");
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame from the socket (not the stash) within `wait`; `None` on timeout or EOF.
    async fn read(&mut self, wait: Duration) -> Option<Package> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = self.codec.decode_buf(&mut self.buf).expect("a valid frame") {
                return Some(p);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame (stashed first), failing the test after [`WAIT`].
    pub async fn recv(&mut self) -> Package {
        if let Some(p) = self.stash.pop_front() {
            return p;
        }
        self.read(WAIT).await.expect("a frame in time")
    }

    /// The next frame within `wait`, or `None`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Package> {
        if let Some(p) = self.stash.pop_front() {
            return Some(p);
        }
        self.read(wait).await
    }

    /// The next frame with `cmd`, stashing the others.
    pub async fn expect(&mut self, cmd: Command) -> Package {
        if let Some(i) = self.stash.iter().position(|p| p.header.command == cmd) {
            return self.stash.remove(i).expect("stashed");
        }
        loop {
            let p = self
                .read(WAIT)
                .await
                .unwrap_or_else(|| panic!("no {cmd} in time; stashed: {:?}", self.stash));
            if p.header.command == cmd {
                return p;
            }
            self.stash.push_back(p);
        }
    }

    /// Sends `p` and waits for the answer with the same seq.
    pub async fn call(&mut self, p: &Package) -> Package {
        self.send(p).await;
        let want = p.header.seq.clone();
        if let Some(i) = self.stash.iter().position(|x| x.header.seq == want) {
            return self.stash.remove(i).expect("stashed");
        }
        loop {
            let x = self.read(WAIT).await.expect("an answer in time");
            if x.header.seq == want {
                return x;
            }
            self.stash.push_back(x);
        }
    }

    pub async fn hello(&mut self, ua: UserAgent) -> Package {
        let p = Package::new(
            Header::new(Command::HelloRequest, Some(seq())),
            Body::UserAgent(Box::new(ua)),
        );
        let r = self.call(&p).await;
        assert_eq!(r.header.command, Command::HelloResponse);
        r
    }

    /// Hello, subscribe `topic` (mode, type), listen; asserts success.
    pub async fn subscriber(
        addr: SocketAddr,
        group: &str,
        pid: i32,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
    ) -> Client {
        let mut c = Client::connect(addr).await;
        let r = c.hello(user_agent(group, "sub", pid)).await;
        assert_eq!(r.header.code, 0, "{:?}", r.header);
        let r = c.subscribe(topic, mode, ty, None).await;
        assert_eq!(r.header.code, 0, "{:?}", r.header);
        let r = c.listen().await;
        assert_eq!(r.header.code, 0, "{:?}", r.header);
        c
    }

    /// A publisher that said hello.
    pub async fn publisher(addr: SocketAddr, group: &str) -> Client {
        let mut c = Client::connect(addr).await;
        let r = c.hello(user_agent(group, "pub", 1)).await;
        assert_eq!(r.header.code, 0, "{:?}", r.header);
        c
    }

    pub async fn subscribe(
        &mut self,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
        protocol: Option<ProtocolType>,
    ) -> Package {
        let mut header = Header::new(Command::SubscribeRequest, Some(seq()));
        if let Some(p) = protocol {
            header = header.with_property("protocoltype", p.as_str());
        }
        let p = Package::new(
            header,
            Body::Subscription(Subscription {
                topic_list: vec![SubscriptionItem::new(topic, mode, ty)],
            }),
        );
        let r = self.call(&p).await;
        assert_eq!(r.header.command, Command::SubscribeResponse);
        r
    }

    pub async fn listen(&mut self) -> Package {
        let r = self
            .call(&Package::header_only(Header::new(
                Command::ListenRequest,
                Some(seq()),
            )))
            .await;
        assert_eq!(r.header.command, Command::ListenResponse);
        r
    }

    /// Publishes `body` to `topic` (async) and returns the ack.
    pub async fn publish(&mut self, topic: &str, body: &str) -> Package {
        let r = self
            .call(&message(Command::AsyncMessageToServer, topic, body, &[]))
            .await;
        assert_eq!(r.header.command, Command::AsyncMessageToServerAck);
        r
    }

    /// The socket, once nothing is buffered (for probes that drive it themselves).
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.buf.is_empty() && self.stash.is_empty(),
            "frames are buffered"
        );
        self.stream
    }

    /// The socket, for byte-exact reads (nothing may be buffered).
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        assert!(
            self.buf.is_empty() && self.stash.is_empty(),
            "frames are buffered"
        );
        &mut self.stream
    }

    /// Whether the server closes the connection within [`WAIT`] (frames before EOF are stashed).
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(p)) = self.codec.decode_buf(&mut self.buf) {
                self.stash.push_back(p);
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}
