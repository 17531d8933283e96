//! A throughput probe of the TCP server (ignored by default): one pipelining publisher and one
//! acking subscriber over raw sockets, 128-byte bodies, on the memory and the embedded store.
//!
//! ```sh
//! cargo test --release -p eventmesh-runtime --test tcp_throughput -- --ignored --nocapture
//! ```

mod tcp_common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use eventmesh_config::StorageKind;
use eventmesh_protocol::tcp::{
    Command, Dialect, FrameCodec, SubscriptionMode, SubscriptionType, encode,
};
use tcp_common::{Client, ack_of, message, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVENTS: usize = 50_000;
/// Publishes sent and not yet acknowledged, at most.
const IN_FLIGHT: usize = 512;

async fn probe(kind: StorageKind) {
    let (node, _dir) = start(|c| {
        c.storage.kind = kind;
        c.server.tcp.max_pending = IN_FLIGHT as u32;
    })
    .await;
    let addr = node.tcp_addr().expect("TCP on");
    let sub = Client::subscriber(
        addr,
        "g-probe",
        1,
        "T-probe",
        SubscriptionMode::Clustering,
        SubscriptionType::Async,
    )
    .await;
    let publisher = Client::publisher(addr, "g-pub").await;
    let (mut sub_stream, mut pub_stream) = (sub.into_stream(), publisher.into_stream());
    let body = "x".repeat(128);
    let begin = Instant::now();

    let consumer = tokio::spawn(async move {
        let mut codec = FrameCodec::new(Dialect::V19);
        let mut buf = BytesMut::with_capacity(1 << 16);
        let mut out = BytesMut::new();
        let mut got = 0;
        while got < EVENTS {
            while let Some(p) = codec.decode_buf(&mut buf).expect("a frame") {
                if p.header.command == Command::AsyncMessageToClient {
                    got += 1;
                    encode(&ack_of(&p), Dialect::V19, &mut out).expect("encode");
                }
            }
            if !out.is_empty() {
                sub_stream.write_all(&out).await.expect("write");
                out.clear();
            }
            if got < EVENTS && sub_stream.read_buf(&mut buf).await.expect("read") == 0 {
                panic!("subscriber connection closed");
            }
        }
        Instant::now()
    });

    let mut codec = FrameCodec::new(Dialect::V19);
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut out = BytesMut::new();
    let (mut sent, mut acked) = (0, 0);
    while acked < EVENTS {
        while sent < EVENTS && sent - acked < IN_FLIGHT {
            let m = message(Command::AsyncMessageToServer, "T-probe", &body, &[]);
            encode(&m, Dialect::V19, &mut out).expect("encode");
            sent += 1;
        }
        if !out.is_empty() {
            pub_stream.write_all(&out).await.expect("write");
            out.clear();
        }
        if pub_stream.read_buf(&mut buf).await.expect("read") == 0 {
            panic!("publisher connection closed");
        }
        while let Some(p) = codec.decode_buf(&mut buf).expect("a frame") {
            assert_eq!(p.header.code, 0, "{:?}", p.header);
            acked += 1;
        }
    }
    let published = begin.elapsed();
    let delivered = tokio::time::timeout(Duration::from_secs(120), consumer)
        .await
        .expect("delivered in time")
        .expect("consumer task")
        .duration_since(begin);
    println!(
        "{:?} store: {EVENTS} publishes of 128 B acked in {published:?} ({:.0}/s); all delivered and acked in {delivered:?} ({:.0}/s)",
        kind,
        EVENTS as f64 / published.as_secs_f64(),
        EVENTS as f64 / delivered.as_secs_f64(),
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput probe; run with --release --ignored --nocapture"]
async fn probe_tcp_throughput_memory() {
    probe(StorageKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput probe; run with --release --ignored --nocapture"]
async fn probe_tcp_throughput_embedded() {
    probe(StorageKind::Embedded).await;
}
