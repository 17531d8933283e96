//! Webhook pushes through the delivery core: retries with backoff, dead-lettering, Retry-After,
//! limits, CLUSTERING and BROADCASTING over several URLs, the deny list, and a restart.

mod http_common;

use std::time::Duration;

use eventmesh_config::StorageKind;
use http_common::*;
use serde_json::{Value, json};

/// The CloudEvent JSON of a `form-cloudevents` push.
fn ce(p: &Received) -> Value {
    serde_json::from_str(&p.content()).expect("CloudEvent JSON content")
}

#[tokio::test]
async fn should_retry_a_failing_receiver_with_backoff_then_commit_once() {
    let (h, _dir) = start(|c| c.delivery.max_attempts = 10).await;
    let http = Http::default();
    let base = base(&h);
    // Fails three times (5xx, retCode 2, connection-level 503), then takes everything.
    let mut rx = Receiver::start(|r| match r.n {
        1 => Reply::status(500),
        2 => Reply::ok().body(r#"{"retCode":2,"retMsg":"later"}"#),
        3 => Reply::status(503),
        _ => Reply::ok(),
    })
    .await;
    subscribe(
        &http,
        &base,
        &rx.url(),
        "retry-g",
        "retry-t",
        "CLUSTERING",
        &[("format", json!("form-cloudevents"))],
    )
    .await;
    publish_ce(&http, &base, "retry-t", "e-1", "first").await;
    let tries: Vec<Received> = vec![
        rx.next().await,
        rx.next().await,
        rx.next().await,
        rx.next().await,
    ];
    for (i, t) in tries.iter().enumerate() {
        assert_eq!(ce(t)["id"], "e-1", "try {i} is the same event");
    }
    // Backoff: 50 ms, 100 ms, 200 ms with equal jitter (at least half of each).
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(25), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(50), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(100), "{gaps:?}");
    // Committed once: the next push is the next event, and nothing of e-1 follows.
    publish_ce(&http, &base, "retry-t", "e-2", "second").await;
    let next = rx.next().await;
    assert_eq!(ce(&next)["id"], "e-2");
    publish_ce(&http, &base, "retry-t", "e-3", "third").await;
    assert_eq!(ce(&rx.next().await)["id"], "e-3");
    assert_eq!(rx.count(), 6);
    // The last ack lands right after the receiver answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.core().in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a push stayed in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn should_dead_letter_after_the_attempts_and_at_once_on_410() {
    let (h, _dir) = start(|c| c.delivery.max_attempts = 3).await;
    let http = Http::default();
    let base = base(&h);
    // A watcher of the dead-letter topic, subscribed first.
    let mut dlq = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &dlq.url(),
        "dlq-watch",
        "dead-g.DLQ",
        "CLUSTERING",
        &[("format", json!("form-cloudevents"))],
    )
    .await;
    let mut failing = Receiver::start(|_| Reply::status(502)).await;
    subscribe(
        &http,
        &base,
        &failing.url(),
        "dead-g",
        "dead-t",
        "CLUSTERING",
        &[],
    )
    .await;
    publish_ce(&http, &base, "dead-t", "doomed", "x").await;
    let dead = dlq.next().await;
    let e = ce(&dead);
    assert_eq!(e["id"], "doomed");
    assert_eq!(e["eventmeshdlqgroup"], "dead-g");
    assert_eq!(e["eventmeshdlqtopic"], "dead-t");
    assert_eq!(e["eventmeshdlqattempts"], 3);
    for _ in 0..3 {
        assert_eq!(failing.next().await.content(), "x");
    }
    assert_eq!(failing.count(), 3, "exactly max_attempts pushes");

    // 410 Gone, 415 and retCode 3 are final: one push each, then the dead-letter topic.
    let mut gone = Receiver::start(|r| match r.n {
        1 => Reply::status(410),
        2 => Reply::status(415),
        _ => Reply::ok().body(r#"{"retCode":3}"#),
    })
    .await;
    subscribe(
        &http,
        &base,
        &gone.url(),
        "gone-g",
        "gone-t",
        "CLUSTERING",
        &[],
    )
    .await;
    let mut dlq2 = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &dlq2.url(),
        "dlq-watch2",
        "gone-g.DLQ",
        "CLUSTERING",
        &[("format", json!("form-cloudevents"))],
    )
    .await;
    for id in ["g-1", "g-2", "g-3"] {
        publish_ce(&http, &base, "gone-t", id, id).await;
        let d = ce(&dlq2.next().await);
        assert_eq!(d["id"], id);
        assert_eq!(d["eventmeshdlqattempts"], 1, "{d}");
        assert_eq!(gone.next().await.content(), id);
    }
    assert_eq!(gone.count(), 3);
    let metrics = http
        .send(
            "GET",
            &format!("http://{}/metrics", h.admin_addr()),
            &[],
            "",
        )
        .await;
    for outcome in ["done", "retry", "dead_letter"] {
        let needle = format!("eventmesh_webhook_pushes_total{{outcome=\"{outcome}\"}}");
        assert!(metrics.body.contains(&needle), "{needle} missing");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn should_wait_out_retry_after() {
    let (h, _dir) = start(|c| {
        c.delivery.backoff_max = Duration::from_secs(5);
    })
    .await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::start(|r| {
        if r.n == 1 {
            Reply::status(429).header("retry-after", "1")
        } else {
            Reply::ok()
        }
    })
    .await;
    subscribe(&http, &base, &rx.url(), "ra-g", "ra-t", "CLUSTERING", &[]).await;
    publish_ce(&http, &base, "ra-t", "r-1", "x").await;
    let first = rx.next().await;
    let second = rx.next().await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 respected, got {gap:?}"
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn should_respect_max_in_flight_and_push_rate_of_a_slow_subscriber() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let mut slow = Receiver::start(|_| Reply::ok().after(Duration::from_millis(150))).await;
    subscribe(
        &http,
        &base,
        &slow.url(),
        "slow-g",
        "slow-t",
        "CLUSTERING",
        &[("maxInFlight", json!(2))],
    )
    .await;
    for i in 0..10 {
        publish_ce(&http, &base, "slow-t", &format!("s-{i}"), "x").await;
    }
    for _ in 0..10 {
        slow.next().await;
        assert!(h.core().in_flight() <= 2, "the window bounds what is held");
    }
    assert_eq!(
        slow.max_concurrent(),
        2,
        "never more than maxInFlight at once"
    );

    let mut paced = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &paced.url(),
        "paced-g",
        "paced-t",
        "CLUSTERING",
        &[("pushRate", json!(20))],
    )
    .await;
    for i in 0..11 {
        publish_ce(&http, &base, "paced-t", &format!("p-{i}"), "x").await;
    }
    let first = paced.next().await.at;
    let mut last = first;
    for _ in 0..10 {
        last = paced.next().await.at;
    }
    // 20/s: ten intervals of 50 ms at least.
    assert!(
        last - first >= Duration::from_millis(480),
        "{:?}",
        last - first
    );
    h.shutdown().await;
}

#[tokio::test]
async fn should_round_robin_clustering_urls_and_fan_out_broadcasting() {
    let (h, _dir) = start(|c| c.server.http.webhook.unhealthy_after = 1).await;
    let http = Http::default();
    let base = base(&h);
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    for r in [&a, &b] {
        subscribe(
            &http,
            &base,
            &r.url(),
            "rr-g",
            "rr-topic",
            "CLUSTERING",
            &[],
        )
        .await;
    }
    for i in 0..6 {
        publish_ce(&http, &base, "rr-topic", &format!("c-{i}"), &i.to_string()).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.count() + b.count() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "pushes missing");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((a.count(), b.count()), (3, 3), "round-robin");

    // A URL that keeps failing is skipped; nothing is lost.
    let mut bad = Receiver::start(|_| Reply::status(500)).await;
    let mut good = Receiver::ok().await;
    subscribe(&http, &base, &bad.url(), "fo-g", "fo-t", "CLUSTERING", &[]).await;
    subscribe(&http, &base, &good.url(), "fo-g", "fo-t", "CLUSTERING", &[]).await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..5 {
        publish_ce(&http, &base, "fo-t", &format!("f-{i}"), &i.to_string()).await;
    }
    while seen.len() < 5 {
        seen.insert(good.next().await.content());
    }
    assert!(
        bad.count() <= 2,
        "the failing URL was skipped after failing: {}",
        bad.count()
    );
    let _ = bad.try_next();

    // BROADCASTING: every URL gets every event.
    let mut x = Receiver::ok().await;
    let mut y = Receiver::ok().await;
    for r in [&x, &y] {
        subscribe(&http, &base, &r.url(), "bc-g", "bc-t", "BROADCASTING", &[]).await;
    }
    for i in 0..3 {
        publish_ce(&http, &base, "bc-t", &format!("b-{i}"), &i.to_string()).await;
    }
    for r in [&mut x, &mut y] {
        let mut got: Vec<String> = Vec::new();
        for _ in 0..3 {
            got.push(r.next().await.content());
        }
        got.sort();
        assert_eq!(got, ["0", "1", "2"]);
    }
    // A broadcasting subscription of the same group and topic as CLUSTERING is a conflict.
    let body = json!({"url": a.url(), "consumerGroup": "bc-g", "topic": [{"topic": "bc-t", "mode": "CLUSTERING", "type": "ASYNC"}]});
    let r = http
        .post(
            &format!("{base}/eventmesh/subscribe/local"),
            &[],
            body.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (409, 19), "{}", r.body);
    h.shutdown().await;
}

#[tokio::test]
async fn should_refuse_urls_in_denied_networks() {
    let (h, _dir) = start(|c| {
        c.server
            .http
            .webhook
            .deny_networks
            .extend(["127.0.0.0/8".to_owned(), "::1/128".to_owned()]);
    })
    .await;
    let http = Http::default();
    let base = base(&h);
    let rx = Receiver::ok().await;
    for url in [
        rx.url(),
        format!("http://localhost:{}/hook", rx.addr.port()),
    ] {
        let body = json!({"url": url, "consumerGroup": "deny-g", "topic": [{"topic": "deny-t", "mode": "CLUSTERING", "type": "ASYNC"}]});
        let r = http
            .post(
                &format!("{base}/eventmesh/subscribe/local"),
                &[],
                body.to_string(),
            )
            .await;
        assert_eq!((r.status, r.ret_code()), (403, 22), "{}", r.body);
        assert!(r.body.contains("denied network"), "{}", r.body);
    }
    let metadata = json!({"url": "http://169.254.169.254/latest/meta-data", "consumerGroup": "deny-g", "topic": ["deny-t"]});
    let r = http
        .post(
            &format!("{base}/eventmesh/subscribe/local"),
            &[],
            metadata.to_string(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(rx.count(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn should_resume_a_live_subscription_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::default();
    let mut rx = Receiver::ok().await;
    let h = start_with(config(dir.path(), StorageKind::Embedded)).await;
    let base1 = base(&h);
    subscribe(&http, &base1, &rx.url(), "rs-g", "rs-t", "CLUSTERING", &[]).await;
    subscribe(
        &http,
        &base1,
        &rx.url(),
        "rs-b",
        "rs-t",
        "BROADCASTING",
        &[],
    )
    .await;
    publish_ce(&http, &base1, "rs-t", "before", "before").await;
    let mut got = vec![rx.next().await.content(), rx.next().await.content()];
    got.sort();
    assert_eq!(got, ["before", "before"]);
    let report = h.shutdown().await;
    assert!(report.is_clean(), "{report:?}");

    let h = start_with(config(dir.path(), StorageKind::Embedded)).await;
    let base2 = base(&h);
    // The subscriptions come back from the metadata store.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = http
            .send(
                "GET",
                &format!("{base2}/eventmesh/subscription/query"),
                &[],
                "",
            )
            .await;
        if q.json()["subscriptions"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", q.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish_ce(&http, &base2, "rs-t", "after", "after").await;
    let mut got = vec![rx.next().await.content(), rx.next().await.content()];
    got.sort();
    assert_eq!(got, ["after", "after"], "both groups resume");
    h.shutdown().await;
}

/// A TLS webhook receiver with the test certificate; every request goes to the channel.
async fn tls_receiver() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Received>) {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/http_tls");
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("a server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let tx = tx.clone();
            n += 1;
            let base = n * 1000;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: axum::http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .expect("a body")
                                .to_bytes();
                            let _ = tx
                                .send(Received {
                                    n: base,
                                    headers: parts.headers,
                                    body,
                                    at: tokio::time::Instant::now(),
                                })
                                .await;
                            Ok::<_, std::convert::Infallible>(axum::http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(
                                    br#"{"retCode":0}"#,
                                )),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn should_push_to_https_urls_trusting_the_configured_ca() {
    let ca =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/http_tls/cert.pem");
    let (h, _dir) = start(|c| c.server.http.webhook.ca_file = ca.display().to_string()).await;
    let http = Http::default();
    let base = base(&h);
    let (addr, mut rx) = tls_receiver().await;
    let url = format!("https://localhost:{}/hook", addr.port());
    subscribe(&http, &base, &url, "tls-g", "tls-t", "CLUSTERING", &[]).await;
    publish_ce(&http, &base, "tls-t", "t-1", "over tls").await;
    let p = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a push in time")
        .expect("open");
    assert_eq!(p.content(), "over tls");
    h.shutdown().await;
}
