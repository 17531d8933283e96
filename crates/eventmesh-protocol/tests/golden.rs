//! Golden-byte fixtures from the protocol reference (section 2): exact frames as the Java SDK and
//! runtime write them, in each dialect. Every fixture is checked both ways: our encoder produces
//! the bytes, and our decoders (fixed and detecting) read them back.
//!
//! The int fields are written out as literals (computed once from the JSON lengths), so these
//! fixtures do not share arithmetic with the encoder.

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use eventmesh_protocol::convert::{self, KeyPolicy};
use eventmesh_protocol::tcp::{
    Body, Command, Dialect, FrameCodec, Header, OpStatus, Package, ProtocolType, RedirectInfo,
    Subscription, SubscriptionItem, SubscriptionMode, SubscriptionType, UserAgent, decode, encode,
};

const MAGIC: &[u8] = b"EventMesh";
const WEMQ: &[u8] = b"WEMQ";

/// `magic | "0000" | length | headerLength | header | body` with literal int fields.
fn frame(magic: &[u8], length: u32, header_len: u32, header: &str, body: &str) -> Vec<u8> {
    assert_eq!(header.len(), header_len as usize, "fixture header length");
    let mut out = Vec::new();
    out.extend_from_slice(magic);
    out.extend_from_slice(b"0000");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// Encodes `pkg` in `dialect` and compares with `golden`; decodes `golden` with a fixed and a
/// detecting codec and compares with `pkg`.
fn check(pkg: &Package, dialect: Dialect, golden: &[u8]) {
    let mut out = BytesMut::new();
    encode(pkg, dialect, &mut out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(golden),
        "encoding in {dialect:?}"
    );
    assert_eq!(&out[..], golden, "encoding in {dialect:?}");
    check_decode(pkg, dialect, golden);
}

fn check_decode(pkg: &Package, dialect: Dialect, golden: &[u8]) {
    let (decoded, used) = decode(dialect, golden).unwrap().expect("a whole frame");
    assert_eq!(used, golden.len());
    assert_eq!(&decoded, pkg);

    let mut detecting = FrameCodec::detecting();
    let (decoded, used) = detecting.decode(golden).unwrap().expect("a whole frame");
    assert_eq!(used, golden.len());
    assert_eq!(&decoded, pkg);
    assert_eq!(detecting.dialect(), Some(dialect));
}

fn reference_user_agent() -> UserAgent {
    UserAgent {
        env: Some("P".into()),
        subsystem: Some("5023".into()),
        path: Some("/data/app/x".into()),
        pid: 32893,
        host: Some("127.0.0.1".into()),
        port: 8362,
        version: Some("2.0.11".into()),
        username: Some("u".into()),
        password: Some("p".into()),
        idc: Some("FT".into()),
        group: Some("EventmeshTest-consumerGroup".into()),
        purpose: Some("sub".into()),
        ..UserAgent::default()
    }
}

const HEARTBEAT_HEADER: &str = r#"{"cmd":"HEARTBEAT_REQUEST","code":0,"seq":"1234567890","properties":{},"command":"HEARTBEAT_REQUEST"}"#;

fn heartbeat() -> Package {
    Package::header_only(Header::new(
        Command::HeartbeatRequest,
        Some("1234567890".into()),
    ))
}

#[test]
fn reference_worked_heartbeat_v19() {
    let golden = frame(MAGIC, 0x72, 101, HEARTBEAT_HEADER, "");
    // The reference's first 21 bytes, verbatim.
    assert_eq!(
        &golden[..21],
        &[
            0x45, 0x76, 0x65, 0x6e, 0x74, 0x4d, 0x65, 0x73, 0x68, 0x30, 0x30, 0x30, 0x30, 0x00,
            0x00, 0x00, 0x72, 0x00, 0x00, 0x00, 0x65
        ]
    );
    check(&heartbeat(), Dialect::V19, &golden);
}

#[test]
fn reference_worked_heartbeat_pre_v19_reads_109() {
    let golden = frame(MAGIC, 0x6d, 101, HEARTBEAT_HEADER, "");
    assert_eq!(&golden[13..17], &[0x00, 0x00, 0x00, 0x6d]);
    check(&heartbeat(), Dialect::V12, &golden);
}

#[test]
fn java_pre_v19_null_body_is_empty() {
    // v1.3–v1.8 Java encoders wrote the JSON of a null body: the four bytes `null`.
    let golden = frame(MAGIC, 0x6d + 4, 101, HEARTBEAT_HEADER, "null");
    check_decode(&heartbeat(), Dialect::V12, &golden);
}

const HELLO_HEADER: &str = r#"{"cmd":"HELLO_REQUEST","code":0,"seq":"2345678012","properties":{},"command":"HELLO_REQUEST"}"#;
const HELLO_BODY: &str = r#"{"env":"P","subsystem":"5023","path":"/data/app/x","pid":32893,"host":"127.0.0.1","port":8362,"version":"2.0.11","username":"u","password":"p","idc":"FT","group":"EventmeshTest-consumerGroup","purpose":"sub","unack":0}"#;

fn hello() -> Package {
    Package::new(
        Header::new(Command::HelloRequest, Some("2345678012".into())),
        Body::UserAgent(Box::new(reference_user_agent())),
    )
}

#[test]
fn hello_request_in_each_eventmesh_dialect() {
    check(
        &hello(),
        Dialect::V19,
        &frame(MAGIC, 0x144, 93, HELLO_HEADER, HELLO_BODY),
    );
    // The Go SDK and v1.2–v1.8 Java: five less in `length`, same bytes otherwise.
    check(
        &hello(),
        Dialect::V12,
        &frame(MAGIC, 0x13f, 93, HELLO_HEADER, HELLO_BODY),
    );
}

#[test]
fn hello_response() {
    let header = r#"{"cmd":"HELLO_RESPONSE","code":0,"desc":"success","seq":"2345678012","properties":{},"command":"HELLO_RESPONSE"}"#;
    let reply = hello()
        .header
        .reply(OpStatus::Success, Some("success".into()));
    check(
        &Package::header_only(reply.clone()),
        Dialect::V19,
        &frame(MAGIC, 0x7d, 112, header, ""),
    );
    check(
        &Package::header_only(reply),
        Dialect::V12,
        &frame(MAGIC, 0x78, 112, header, ""),
    );
}

#[test]
fn subscribe_request() {
    let header = r#"{"cmd":"SUBSCRIBE_REQUEST","code":0,"seq":"3456780123","properties":{},"command":"SUBSCRIBE_REQUEST"}"#;
    let body =
        r#"{"topicList":[{"topic":"TEST-TOPIC-TCP-ASYNC","mode":"CLUSTERING","type":"ASYNC"}]}"#;
    let pkg = Package::new(
        Header::new(Command::SubscribeRequest, Some("3456780123".into())),
        Body::Subscription(Subscription {
            topic_list: vec![SubscriptionItem::new(
                "TEST-TOPIC-TCP-ASYNC",
                SubscriptionMode::Clustering,
                SubscriptionType::Async,
            )],
        }),
    );
    check(&pkg, Dialect::V19, &frame(MAGIC, 0xc5, 101, header, body));
    check(&pkg, Dialect::V12, &frame(MAGIC, 0xc0, 101, header, body));
}

const PUBLISH_HEADER: &str = r#"{"cmd":"ASYNC_MESSAGE_TO_SERVER","code":0,"seq":"4567801234","properties":{"protocoldesc":"tcp","protocoltype":"eventmeshmessage","protocolversion":"1.0"},"command":"ASYNC_MESSAGE_TO_SERVER"}"#;
const PUBLISH_BODY: &str = r#"{"topic":"TEST-TOPIC-TCP-ASYNC","properties":{"keys":"k1","ttl":"30000"},"headers":{"datacontenttype":"text/plain"},"body":"testAsyncMessage"}"#;

fn publish() -> Package {
    Package::new(
        Header::new(Command::AsyncMessageToServer, Some("4567801234".into()))
            .with_protocol(ProtocolType::EventMeshMessage, "1.0"),
        Body::Raw(Bytes::from_static(PUBLISH_BODY.as_bytes())),
    )
}

#[test]
fn async_message_to_server_eventmeshmessage() {
    check(
        &publish(),
        Dialect::V19,
        &frame(MAGIC, 0x15a, 191, PUBLISH_HEADER, PUBLISH_BODY),
    );
    check(
        &publish(),
        Dialect::V12,
        &frame(MAGIC, 0x155, 191, PUBLISH_HEADER, PUBLISH_BODY),
    );

    let event = convert::event_from_package(&publish(), KeyPolicy::Reject).unwrap();
    assert_eq!(event.id, "4567801234");
    assert_eq!(event.subject.as_deref(), Some("TEST-TOPIC-TCP-ASYNC"));
    assert_eq!(event.data.as_deref(), Some(&b"testAsyncMessage"[..]));
    assert_eq!(event.extension_str("ttl"), Some("30000"));
}

#[test]
fn async_message_to_server_ack() {
    let header = r#"{"cmd":"ASYNC_MESSAGE_TO_SERVER_ACK","code":0,"desc":"success","seq":"4567801234","properties":{},"command":"ASYNC_MESSAGE_TO_SERVER_ACK"}"#;
    let ack = publish()
        .header
        .reply(OpStatus::Success, Some("success".into()));
    assert_eq!(ack.command, Command::AsyncMessageToServerAck);
    check(
        &Package::header_only(ack),
        Dialect::V19,
        &frame(MAGIC, 0x97, 138, header, ""),
    );
}

#[test]
fn push_and_client_ack_echo() {
    // The server pushes with its own seq; the client acks with the same seq, echoing the body.
    let header = |cmd: &str| {
        format!(
            r#"{{"cmd":"{cmd}","code":0,"seq":"7","properties":{{"protocoldesc":"tcp","protocoltype":"eventmeshmessage","protocolversion":"1.0"}},"command":"{cmd}"}}"#
        )
    };
    for (cmd, command) in [
        ("ASYNC_MESSAGE_TO_CLIENT", Command::AsyncMessageToClient),
        (
            "ASYNC_MESSAGE_TO_CLIENT_ACK",
            Command::AsyncMessageToClientAck,
        ),
        (
            "BROADCAST_MESSAGE_TO_CLIENT",
            Command::BroadcastMessageToClient,
        ),
        (
            "BROADCAST_MESSAGE_TO_CLIENT_ACK",
            Command::BroadcastMessageToClientAck,
        ),
        ("REQUEST_TO_CLIENT", Command::RequestToClient),
        ("REQUEST_TO_CLIENT_ACK", Command::RequestToClientAck),
        ("RESPONSE_TO_CLIENT", Command::ResponseToClient),
        ("RESPONSE_TO_CLIENT_ACK", Command::ResponseToClientAck),
    ] {
        let h = header(cmd);
        let h_len = u32::try_from(h.len()).unwrap();
        let b_len = u32::try_from(PUBLISH_BODY.len()).unwrap();
        let pkg = Package::new(
            Header::new(command, Some("7".into()))
                .with_protocol(ProtocolType::EventMeshMessage, "1.0"),
            Body::Raw(Bytes::from_static(PUBLISH_BODY.as_bytes())),
        );
        check(
            &pkg,
            Dialect::V19,
            &frame(MAGIC, 13 + h_len + b_len, h_len, &h, PUBLISH_BODY),
        );
    }
}

#[test]
fn cloudevents_publish() {
    let header = r#"{"cmd":"ASYNC_MESSAGE_TO_SERVER","code":0,"seq":"5678012345","properties":{"protocoldesc":"tcp","protocoltype":"cloudevents","protocolversion":"1.0"},"command":"ASYNC_MESSAGE_TO_SERVER"}"#;
    let body = r#"{"specversion":"1.0","id":"e-1","source":"/demo","type":"cloudevents","datacontenttype":"application/cloudevents+json","subject":"TEST-TOPIC-TCP-ASYNC","data":{"content":"hello"}}"#;
    let golden = frame(MAGIC, 13 + 186 + 179, 186, header, body);
    let pkg = Package::new(
        Header::new(Command::AsyncMessageToServer, Some("5678012345".into()))
            .with_protocol(ProtocolType::CloudEvents, "1.0"),
        Body::Raw(Bytes::from_static(body.as_bytes())),
    );
    check(&pkg, Dialect::V19, &golden);
    let event = convert::event_from_package(&pkg, KeyPolicy::Reject).unwrap();
    assert_eq!(event.id, "e-1");
    assert_eq!(event.data.as_deref(), Some(&br#"{"content":"hello"}"#[..]));
    assert_eq!(event.extension_str("protocoltype"), Some("cloudevents"));
    // Our own encoding of that event gives the same body bytes.
    let mut again = event.clone();
    again.extensions.clear();
    assert_eq!(
        eventmesh_protocol::cloudevents::encode_event(&again).unwrap(),
        body.as_bytes()
    );
}

#[test]
fn redirect_and_goodbye_have_no_seq() {
    let header =
        r#"{"cmd":"REDIRECT_TO_CLIENT","code":0,"properties":{},"command":"REDIRECT_TO_CLIENT"}"#;
    let pkg = Package::new(
        Header::new(Command::RedirectToClient, None),
        Body::Redirect(RedirectInfo::new("10.0.0.2", 10000)),
    );
    check(
        &pkg,
        Dialect::V19,
        &frame(MAGIC, 0x7f, 84, header, r#"{"ip":"10.0.0.2","port":10000}"#),
    );

    let header = r#"{"cmd":"SERVER_GOODBYE_REQUEST","code":1,"desc":"Unknown Command type","properties":{},"command":"SERVER_GOODBYE_REQUEST"}"#;
    let pkg = Package::header_only(
        Header::new(Command::ServerGoodbyeRequest, None)
            .with_status(OpStatus::Fail, "Unknown Command type"),
    );
    check(&pkg, Dialect::V19, &frame(MAGIC, 0x87, 122, header, ""));
    check(&pkg, Dialect::V12, &frame(MAGIC, 0x82, 122, header, ""));
}

#[test]
fn v10_wemq_dialect() {
    let header = r#"{"command":"HELLO_REQUEST","code":0,"seq":"1333580036"}"#;
    let body = r#"{"env":"P","subsystem":"5023","path":"/data/app/x","pid":32893,"host":"127.0.0.1","port":8362,"version":"2.0.11","username":"u","password":"p","idc":"FT","purpose":"sub","unack":0,"dcn":"AC0"}"#;
    let golden = frame(WEMQ, 8 + 55 + 192, 55, header, body);
    assert_eq!(golden.len(), 16 + 55 + 192);
    let ua = UserAgent {
        group: None,
        dcn: Some("AC0".into()),
        ..reference_user_agent()
    };
    assert_eq!(ua.effective_group().as_deref(), Some("5023-AC0"));
    let pkg = Package::new(
        Header::new(Command::HelloRequest, Some("1333580036".into())),
        Body::UserAgent(Box::new(ua)),
    );
    check(&pkg, Dialect::V10, &golden);

    let header = r#"{"command":"SERVER_GOODBYE_REQUEST","code":1,"msg":"bad"}"#;
    let pkg = Package::header_only(
        Header::new(Command::ServerGoodbyeRequest, None).with_status(OpStatus::Fail, "bad"),
    );
    check(&pkg, Dialect::V10, &frame(WEMQ, 0x41, 57, header, ""));
}

#[test]
fn c_sdk_subscribe_with_topic_strings() {
    // The C SDK's own header (keys in its order) and a v1.0 topic list of strings.
    let header = r#"{"code":0,"seq":"1333580037","command":"SUBSCRIBE_REQUEST"}"#;
    let body = r#"{"topicList":["PRX-e-10030002-05-3"]}"#;
    let golden = frame(WEMQ, 8 + 59 + 37, 59, header, body);
    let expected = Package::new(
        Header::new(Command::SubscribeRequest, Some("1333580037".into())),
        Body::Subscription(Subscription {
            topic_list: vec![SubscriptionItem::new(
                "PRX-e-10030002-05-3",
                SubscriptionMode::Broadcasting,
                SubscriptionType::Async,
            )],
        }),
    );
    check_decode(&expected, Dialect::V10, &golden);
}

#[test]
fn go_sdk_style_header() {
    // The Go SDK writes every key, `desc` as "" and maybe `properties: null`, keys sorted.
    let header = r#"{"cmd":"HEARTBEAT_REQUEST","code":0,"command":"HEARTBEAT_REQUEST","desc":"","properties":null,"seq":"1234567890"}"#;
    let h_len = u32::try_from(header.len()).unwrap();
    let golden = frame(MAGIC, 8 + h_len, h_len, header, "");
    let mut expected = heartbeat();
    expected.header.desc = Some(String::new());
    check_decode(&expected, Dialect::V12, &golden);
}

#[test]
fn integer_cmd_is_accepted() {
    let header = r#"{"cmd":0,"code":0,"seq":"1234567890","properties":{}}"#;
    let h_len = u32::try_from(header.len()).unwrap();
    check_decode(
        &heartbeat(),
        Dialect::V19,
        &frame(MAGIC, 13 + h_len, h_len, header, ""),
    );
}

#[test]
fn every_command_header_only() {
    for command in Command::ALL {
        let name = command.name();
        let header = format!(
            r#"{{"cmd":"{name}","code":0,"seq":"0000000001","properties":{{}},"command":"{name}"}}"#
        );
        let h_len = u32::try_from(header.len()).unwrap();
        let pkg = Package::header_only(Header::new(command, Some("0000000001".into())));
        check(
            &pkg,
            Dialect::V19,
            &frame(MAGIC, 13 + h_len, h_len, &header, ""),
        );
        check(
            &pkg,
            Dialect::V12,
            &frame(MAGIC, 8 + h_len, h_len, &header, ""),
        );
        let v10 = format!(r#"{{"command":"{name}","code":0,"seq":"0000000001"}}"#);
        let v10_len = u32::try_from(v10.len()).unwrap();
        check(
            &pkg,
            Dialect::V10,
            &frame(WEMQ, 8 + v10_len, v10_len, &v10, ""),
        );
        // And by integer code.
        let by_code = format!(
            r#"{{"cmd":{},"code":0,"seq":"0000000001"}}"#,
            command.code()
        );
        let c_len = u32::try_from(by_code.len()).unwrap();
        check_decode(
            &pkg,
            Dialect::V19,
            &frame(MAGIC, 13 + c_len, c_len, &by_code, ""),
        );
    }
}

#[test]
fn replies_use_the_detected_dialect() {
    let golden = frame(MAGIC, 0x13f, 93, HELLO_HEADER, HELLO_BODY);
    let mut codec = FrameCodec::detecting();
    let (req, _) = codec.decode(&golden).unwrap().unwrap();
    assert_eq!(codec.dialect(), Some(Dialect::V12));
    let mut out = BytesMut::new();
    let reply = Package::header_only(req.header.reply(OpStatus::Success, Some("success".into())));
    codec.encode(&reply, &mut out).unwrap();
    let header = r#"{"cmd":"HELLO_RESPONSE","code":0,"desc":"success","seq":"2345678012","properties":{},"command":"HELLO_RESPONSE"}"#;
    assert_eq!(&out[..], &frame(MAGIC, 0x78, 112, header, "")[..]);
}
