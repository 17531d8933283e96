//! Helpers of the gRPC server tests: the runtime in-process on port 0, SDK settings for it, and
//! raw v1 / legacy messages for the cases the SDK never sends.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use eventmesh_config::{Config, StorageKind};
use eventmesh_protocol_grpc::convert::{self, string_value};
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::cloud_event::Data;
use eventmesh_runtime::{Runtime, RuntimeHandle};
use eventmesh_sdk::grpc::GrpcConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

mod sdk;
// Not every test binary that includes these helpers uses the SDK ones.
#[allow(unused_imports)]
pub use sdk::*;

/// How long a test waits for something it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// The config of a node on a memory store, every listener on port 0.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.node.data_dir = dir.to_path_buf();
    let any = "127.0.0.1:0".parse().expect("an address");
    c.admin.listen = any;
    c.server.tcp.listen = any;
    c.server.http.listen = any;
    c.server.grpc.listen = any;
    c.storage.kind = StorageKind::Memory;
    c.shutdown.timeout = Duration::from_secs(10);
    c
}

/// A node on a memory store, every listener on port 0; `tweak` adjusts the config first.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> (RuntimeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = config(dir.path());
    tweak(&mut c);
    let handle = Runtime::start(c).await.expect("the runtime starts");
    assert!(handle.wait_ready().await, "the node becomes ready");
    (handle, dir)
}

/// `http://ADDR` of the node's gRPC listener.
pub fn endpoint(h: &RuntimeHandle) -> String {
    format!("http://{}", h.grpc_addr().expect("gRPC is enabled"))
}

/// SDK settings for the node, in `group`, with a short heartbeat.
pub fn sdk(h: &RuntimeHandle, group: &str) -> GrpcConfig {
    let mut c = GrpcConfig::new(endpoint(h), group);
    c.heartbeat_interval = Duration::from_millis(300);
    c.timeout = WAIT;
    c
}

/// A channel to the node.
pub async fn channel(h: &RuntimeHandle) -> Channel {
    Channel::from_shared(endpoint(h))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connects")
}

/// A raw subscriber stream (messages of any size accepted): sends `first`, returns the request
/// sender and the response stream.
pub async fn open_stream(
    h: &RuntimeHandle,
    first: v1::CloudEvent,
) -> (mpsc::Sender<v1::CloudEvent>, Streaming<v1::CloudEvent>) {
    let mut consumer = v1::consumer_service_client::ConsumerServiceClient::new(channel(h).await)
        .max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.expect("queued");
    let inbound = consumer
        .subscribe_stream(ReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    (tx, inbound)
}

/// The next message of a raw stream, which must come within [`WAIT`].
pub async fn next_message(inbound: &mut Streaming<v1::CloudEvent>) -> v1::CloudEvent {
    tokio::time::timeout(WAIT, inbound.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream goes on")
}

/// The identity attributes the Apache EventMesh SDKs send.
pub fn identity(pid: u32) -> BTreeMap<String, v1::CloudEventAttributeValue> {
    [
        ("env", "test".to_owned()),
        ("idc", "FT".to_owned()),
        ("ip", "127.0.0.1".to_owned()),
        ("pid", pid.to_string()),
        ("sys", "5023".to_owned()),
        ("username", "u".to_owned()),
        ("passwd", "p".to_owned()),
        ("language", "JAVA".to_owned()),
        ("protocoltype", "cloudevents".to_owned()),
        ("protocolversion", "1.0".to_owned()),
        ("protocoldesc", "grpc-cloud-event".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), string_value(v)))
    .collect()
}

/// A publish as the Java SDK builds it: identity, `producergroup`, `subject`, `uniqueid`,
/// `seqnum`, `ttl`, text data.
pub fn publish_msg(topic: &str, text: &str) -> v1::CloudEvent {
    let mut attributes = identity(4242);
    for (k, v) in [
        (keys::PRODUCER_GROUP, "raw-pub"),
        (keys::SUBJECT, topic),
        (keys::UNIQUE_ID, "u-1"),
        (keys::SEQ_NUM, "1"),
        (keys::TTL, "4000"),
        (keys::DATA_CONTENT_TYPE, "text/plain"),
    ] {
        attributes.insert(k.to_owned(), string_value(v));
    }
    v1::CloudEvent {
        id: format!("{:032x}", rand::random::<u128>()),
        source: "/raw".to_owned(),
        spec_version: "1.0".to_owned(),
        r#type: "raw".to_owned(),
        attributes,
        data: Some(Data::TextData(text.to_owned())),
    }
}

/// A stream subscription as the Java SDK builds it (no explicit acks).
pub fn subscription_msg(group: &str, items: &str, pid: u32) -> v1::CloudEvent {
    let mut attributes = identity(pid);
    attributes.insert(keys::CONSUMER_GROUP.to_owned(), string_value(group));
    v1::CloudEvent {
        id: "sub".to_owned(),
        source: "/raw".to_owned(),
        spec_version: "1.0".to_owned(),
        r#type: "raw".to_owned(),
        attributes,
        data: Some(Data::TextData(items.to_owned())),
    }
}

/// `(statuscode, responsemessage)` of an answer.
pub fn status(answer: &v1::CloudEvent) -> (String, String) {
    convert::response_status(answer).expect("an answer with a statuscode")
}

/// A legacy request header.
pub fn legacy_header(pid: u32) -> legacy::RequestHeader {
    legacy::RequestHeader {
        env: "test".into(),
        region: "r".into(),
        idc: "FT".into(),
        ip: "127.0.0.1".into(),
        pid: pid.to_string(),
        sys: "5023".into(),
        username: "u".into(),
        password: "p".into(),
        language: "GO".into(),
        protocol_type: "eventmeshmessage".into(),
        protocol_version: "1.0".into(),
        protocol_desc: "grpc".into(),
    }
}

/// A legacy message as the Go SDK sends it.
pub fn simple(topic: &str, content: &str) -> legacy::SimpleMessage {
    legacy::SimpleMessage {
        header: Some(legacy_header(777)),
        producer_group: "go-pub".into(),
        topic: topic.into(),
        content: content.into(),
        ttl: "4000".into(),
        unique_id: format!("{:016x}", rand::random::<u64>()),
        seq_num: "1".into(),
        tag: String::new(),
        properties: HashMap::new(),
    }
}
