//! Probes of the HTTP server (ignored by default):
//! * publish throughput: 8 keep-alive HTTP/1.1 connections, each publishing 128-byte
//!   eventmeshmessage events with code 104 one request at a time, on the memory and the
//!   embedded store;
//! * publish-to-webhook latency: structured CloudEvents published at 1,000 events/s to a topic
//!   with one webhook subscriber on the same machine; latency = from the publish request being
//!   sent to the push arriving at the receiver (p50 / p99 / max).
//!
//! ```sh
//! cargo test --release -p eventmesh-runtime --test http_throughput -- --ignored --nocapture --test-threads 1
//! ```

mod http_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventmesh_config::StorageKind;
use http_body_util::{BodyExt, Full};
use http_common::*;
use parking_lot::Mutex;
use serde_json::json;

const CONNECTIONS: usize = 8;
const PER_CONNECTION: usize = 5_000;

async fn publish_probe(kind: StorageKind) {
    let (node, _dir) = start(|c| c.storage.kind = kind).await;
    let addr = node.http_addr().expect("HTTP on");
    let body = form(&[("topic", "T-probe"), ("content", &"x".repeat(128))]);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            for _ in 0..PER_CONNECTION {
                let req = axum::http::Request::post(format!("http://{addr}/"))
                    .header("code", "104")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from(body.clone())))
                    .expect("a request");
                let resp = send.send_request(req).await.expect("an answer");
                assert_eq!(resp.status(), 200);
                let b = resp.into_body().collect().await.expect("a body").to_bytes();
                assert!(b.windows(11).any(|w| w == b"\"retCode\":0"), "{b:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a publisher");
    }
    let elapsed = begin.elapsed();
    let n = CONNECTIONS * PER_CONNECTION;
    println!(
        "HTTP publish ({}): {n} events over {CONNECTIONS} keep-alive connections in {:.2} s = {:.0} events/s",
        kind.as_str(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe: run with --release --ignored --nocapture"]
async fn http_publish_throughput() {
    publish_probe(StorageKind::Memory).await;
    publish_probe(StorageKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe: run with --release --ignored --nocapture"]
async fn http_publish_to_webhook_latency() {
    const EVENTS: usize = 5_000;
    const RATE: u64 = 1_000;
    let (node, _dir) = start(|c| c.storage.kind = StorageKind::Embedded).await;
    let base = base(&node);
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; EVENTS]));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(EVENTS)));
    let (s2, l2) = (sent.clone(), latencies.clone());
    let mut rx = Receiver::start(move |r| {
        let now = Instant::now();
        if let Some(i) = r
            .header("ce-id")
            .and_then(|id| id.strip_prefix("lat-"))
            .and_then(|i| i.parse::<usize>().ok())
            && let Some(Some(at)) = s2.lock().get(i).copied()
        {
            l2.lock().push(now - at);
        }
        Reply::status(204)
    })
    .await;
    let http = Http::default();
    subscribe(
        &http,
        &base,
        &rx.url(),
        "lat-g",
        "lat-t",
        "CLUSTERING",
        &[("format", json!("binary"))],
    )
    .await;
    let url = format!("{base}/eventmesh/publish/lat-t");
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..EVENTS {
        // Paced at RATE per second from the start (not sleeping between sends, which drifts).
        let at = begin + Duration::from_micros(i as u64 * 1_000_000 / RATE);
        tokio::time::sleep_until(at.into()).await;
        let (http, url, sent) = (http.clone(), url.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            sent.lock()[i] = Some(Instant::now());
            let r = http
                .post(
                    &url,
                    &[
                        ("ce-specversion", "1.0"),
                        ("ce-id", &format!("lat-{i}")),
                        ("ce-source", "/probe"),
                        ("ce-type", "probe"),
                        ("content-type", "text/plain"),
                    ],
                    "x".repeat(128),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }));
    }
    for t in tasks {
        t.await.expect("a publish");
    }
    for _ in 0..EVENTS {
        rx.next().await;
    }
    let mut l = latencies.lock().clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "HTTP publish-to-webhook (embedded store, {RATE} events/s, {} events): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        l.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    node.shutdown().await;
}
