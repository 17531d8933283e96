//! Bad input over TCP: every kind is answered with `SERVER_GOODBYE_REQUEST`, code 1 and a `desc`
//! naming the problem, then the connection closes, while other sessions carry on. Also the
//! reference's worked heartbeat, byte for byte, through the server.

mod tcp_common;

use std::net::SocketAddr;

use eventmesh_protocol::tcp::{
    Body, Command, Dialect, Header, Package, SubscriptionMode, SubscriptionType,
};
use tcp_common::{Client, ack_of, message, seq, start, user_agent};

/// A frame with the given fields, lengths as given (no checks).
fn raw_frame(magic: &[u8], version: &[u8], length: i32, header_len: i32, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(magic);
    v.extend_from_slice(version);
    v.extend_from_slice(&length.to_be_bytes());
    v.extend_from_slice(&header_len.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

/// A v1.9 frame of `header` and `body` bytes, lengths right.
fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let h = i32::try_from(header.len()).expect("a small header");
    let b = i32::try_from(body.len()).expect("a small body");
    let mut rest = header.to_vec();
    rest.extend_from_slice(body);
    raw_frame(b"EventMesh", b"0000", 13 + h + b, h, &rest)
}

/// Sends `bytes` on a fresh connection (after `prelude` packages) and expects a goodbye with
/// code 1 whose desc contains `needle`, then the close.
async fn expect_goodbye(addr: SocketAddr, prelude: &[Package], bytes: &[u8], needle: &str) {
    expect_goodbye_in(addr, Dialect::V19, prelude, bytes, needle).await;
}

async fn expect_goodbye_in(
    addr: SocketAddr,
    dialect: Dialect,
    prelude: &[Package],
    bytes: &[u8],
    needle: &str,
) {
    let mut c = Client::connect_with(addr, dialect).await;
    for p in prelude {
        let r = c.call(p).await;
        assert_eq!(r.header.code, 0, "{:?}", r.header);
    }
    c.send_raw(bytes).await;
    let bye = c.expect(Command::ServerGoodbyeRequest).await;
    assert_eq!(bye.header.code, 1, "{:?}", bye.header);
    let desc = bye.header.desc.unwrap_or_default();
    assert!(
        desc.contains(needle),
        "desc {desc:?} should mention {needle:?}"
    );
    assert!(c.closed().await, "the connection closes after the goodbye");
}

fn hello_package(group: &str) -> Package {
    Package::new(
        Header::new(Command::HelloRequest, Some(seq())),
        Body::UserAgent(Box::new(user_agent(group, "sub", 7))),
    )
}

#[tokio::test]
async fn should_say_goodbye_to_every_kind_of_bad_input_and_carry_on() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    // A healthy pair that must not notice anything.
    let mut sub = Client::subscriber(
        addr,
        "g-ok",
        1,
        "T-ok",
        SubscriptionMode::Clustering,
        SubscriptionType::Async,
    )
    .await;
    let mut publisher = Client::publisher(addr, "g-pub").await;
    let mut round = 0;
    let mut healthy = async |sub: &mut Client, publisher: &mut Client| {
        round += 1;
        let body = format!("still here {round}");
        assert_eq!(publisher.publish("T-ok", &body).await.header.code, 0);
        let push = sub.expect(Command::AsyncMessageToClient).await;
        assert_eq!(
            tcp_common::message_of(&push).body.as_deref(),
            Some(body.as_str())
        );
        sub.send(&ack_of(&push)).await;
    };
    healthy(&mut sub, &mut publisher).await;

    let heartbeat = br#"{"cmd":"HEARTBEAT_REQUEST","code":0,"seq":"1234567890","properties":{},"command":"HEARTBEAT_REQUEST"}"#;

    // Bad magic.
    expect_goodbye(
        addr,
        &[],
        &frame(heartbeat, b"")
            .iter()
            .map(|b| if *b == b'E' { b'X' } else { *b })
            .collect::<Vec<_>>(),
        "magic",
    )
    .await;
    expect_goodbye(addr, &[], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "magic").await;
    // Bad version.
    expect_goodbye(
        addr,
        &[],
        &raw_frame(b"EventMesh", b"0001", 114, 101, heartbeat),
        "version",
    )
    .await;
    // A length over the limit (4 MiB).
    expect_goodbye(
        addr,
        &[],
        &raw_frame(b"EventMesh", b"0000", i32::MAX, 101, heartbeat),
        "exceeds the limit",
    )
    .await;
    // A negative header length.
    expect_goodbye(
        addr,
        &[],
        &raw_frame(b"EventMesh", b"0000", 114, -1, heartbeat),
        "header length",
    )
    .await;
    // Broken header JSON.
    expect_goodbye(
        addr,
        &[],
        &frame(br#"{"cmd":"HELLO_REQUEST","#, b""),
        "header JSON",
    )
    .await;
    // Broken HELLO body JSON.
    expect_goodbye(
        addr,
        &[],
        &frame(
            br#"{"cmd":"HELLO_REQUEST","code":0,"seq":"1"}"#,
            br#"{"group":"#,
        ),
        "HELLO_REQUEST body",
    )
    .await;
    // An unknown command, by name and by number.
    expect_goodbye(
        addr,
        &[],
        &frame(br#"{"cmd":"NOPE_REQUEST","code":0,"seq":"1"}"#, b""),
        "unknown command",
    )
    .await;
    expect_goodbye(
        addr,
        &[],
        &frame(br#"{"cmd":99,"code":0,"seq":"1"}"#, b""),
        "unknown command",
    )
    .await;
    // A command before hello.
    expect_goodbye(
        addr,
        &[],
        &frame(br#"{"cmd":"LISTEN_REQUEST","code":0,"seq":"1"}"#, b""),
        "before HELLO_REQUEST",
    )
    .await;
    expect_goodbye(addr, &[], &frame(heartbeat, b""), "before HELLO_REQUEST").await;
    // A server-to-client command, before and after hello.
    let push = frame(
        br#"{"cmd":"ASYNC_MESSAGE_TO_CLIENT","code":0,"seq":"1"}"#,
        b"{}",
    );
    expect_goodbye(addr, &[], &push, "server-to-client").await;
    expect_goodbye(addr, &[hello_package("g-bad")], &push, "server-to-client").await;
    // The same for a pre-1.9 (Go SDK) client: the goodbye comes in its own framing.
    let mut go_push = bytes::BytesMut::new();
    eventmesh_protocol::tcp::encode(
        &Package::header_only(Header::new(Command::HelloResponse, Some("1".into()))),
        Dialect::V12,
        &mut go_push,
    )
    .unwrap();
    expect_goodbye_in(
        addr,
        Dialect::V12,
        &[hello_package("g-go")],
        &go_push,
        "server-to-client",
    )
    .await;

    healthy(&mut sub, &mut publisher).await;

    let metrics = eventmesh_runtime::telemetry::recorder::render(
        &eventmesh_runtime::telemetry::install_recorder().unwrap(),
    );
    assert!(
        metrics.contains("eventmesh_tcp_bad_input_total"),
        "{metrics}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn should_refuse_a_bad_hello_and_unsupported_commands() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();

    // A hello without a group is answered code 1, then closed.
    let mut c = Client::connect(addr).await;
    let mut ua = user_agent("", "sub", 1);
    ua.group = None;
    let r = c
        .call(&Package::new(
            Header::new(Command::HelloRequest, Some(seq())),
            Body::UserAgent(Box::new(ua)),
        ))
        .await;
    assert_eq!(r.header.command, Command::HelloResponse);
    assert_eq!(r.header.code, 1);
    assert!(r.header.desc.unwrap().contains("group"));
    assert!(c.closed().await);

    // A defined command with no processor (REGISTER_REQUEST) gets a failure; the session goes on.
    let mut c = Client::publisher(addr, "g-reg").await;
    let r = c
        .call(&Package::header_only(Header::new(
            Command::RegisterRequest,
            Some(seq()),
        )))
        .await;
    assert_eq!(r.header.command, Command::RegisterResponse);
    assert_eq!(r.header.code, 1);
    // A publish whose body is not an EventMeshMessage is answered code 1, not dropped.
    let mut bad = message(Command::AsyncMessageToServer, "T", "x", &[]);
    bad.body = Body::Raw(bytes::Bytes::from_static(b"{not json"));
    let r = c.call(&bad).await;
    assert_eq!(r.header.command, Command::AsyncMessageToServerAck);
    assert_eq!(r.header.code, 1);
    assert!(!r.header.desc.unwrap_or_default().is_empty());
    // A publish without protocol properties too.
    let mut bare = message(Command::AsyncMessageToServer, "T", "x", &[]);
    bare.header.properties.clear();
    let r = c.call(&bare).await;
    assert_eq!(r.header.code, 1);
    assert!(r.header.desc.unwrap().contains("protocoltype"));
    assert_eq!(c.publish("T", "fine").await.header.code, 0);
    node.shutdown().await;
}

/// The reference's worked example (protocol section 2.1): a heartbeat with a 101-byte header,
/// `length` 0x72; the server's answer is checked byte for byte too.
#[tokio::test]
async fn should_answer_the_reference_heartbeat_byte_for_byte() {
    let (node, _dir) = start(|_| {}).await;
    let addr = node.tcp_addr().unwrap();
    let mut c = Client::connect(addr).await;
    c.hello(user_agent("g-golden", "pub", 1)).await;

    let header = br#"{"cmd":"HEARTBEAT_REQUEST","code":0,"seq":"1234567890","properties":{},"command":"HEARTBEAT_REQUEST"}"#;
    assert_eq!(header.len(), 101);
    let request = frame(header, b"");
    assert_eq!(
        &request[..21],
        &[
            0x45, 0x76, 0x65, 0x6e, 0x74, 0x4d, 0x65, 0x73, 0x68, 0x30, 0x30, 0x30, 0x30, 0x00,
            0x00, 0x00, 0x72, 0x00, 0x00, 0x00, 0x65
        ]
    );
    c.send_raw(&request).await;

    let answer = br#"{"cmd":"HEARTBEAT_RESPONSE","code":0,"desc":"success","seq":"1234567890","properties":{},"command":"HEARTBEAT_RESPONSE"}"#;
    let expected = frame(answer, b"");
    let mut got = vec![0u8; expected.len()];
    use tokio::io::AsyncReadExt;
    let stream = c.stream_mut();
    tokio::time::timeout(tcp_common::WAIT, stream.read_exact(&mut got))
        .await
        .expect("an answer in time")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got[21..]),
        String::from_utf8_lossy(&expected[21..])
    );
    assert_eq!(got, expected);
    node.shutdown().await;
}
