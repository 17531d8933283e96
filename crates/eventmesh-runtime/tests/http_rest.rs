//! The REST paths (section 3.3), auth, HTTPS, and HTTP ↔ TCP across protocols.

mod http_common;
mod tcp_common;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use eventmesh_config::server::http::HttpAuthMode;
use eventmesh_protocol::tcp::{Command, ProtocolType, SubscriptionMode, SubscriptionType};
use http_body_util::{BodyExt, Full};
use http_common::*;
use serde_json::json;
use tokio_rustls::rustls;

fn tls_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/http_tls")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test]
async fn should_serve_every_rest_path() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    // Topics.
    let r = http
        .post(
            &format!("{base}/eventmesh/topic/create"),
            &[("content-type", "application/json")],
            json!({"topic": "rest-t"}).to_string(),
        )
        .await;
    assert_eq!(
        (r.status, r.ret_code(), r.json()["created"].as_bool()),
        (200, 0, Some(true)),
        "{}",
        r.body
    );
    let r = http
        .post(
            &format!("{base}/eventmesh/topic/create"),
            &[],
            json!({"Topic": "rest-t"}).to_string(),
        )
        .await;
    assert_eq!(r.json()["created"], false, "{}", r.body);
    let topics = h.store().list_topics().await.unwrap();
    assert!(
        topics.iter().any(|t| t.topic.name() == "rest-t"),
        "{topics:?}"
    );
    let r = http
        .post(
            &format!("{base}/eventmesh/topic/delete"),
            &[],
            json!({"topic": "rest-t"}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    assert!(
        !h.store()
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.topic.name() == "rest-t")
    );

    // Subscribe, query under both spellings, unsubscribe.
    let rx = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &rx.url(),
        "rest-g",
        "rest-sub",
        "BROADCASTING",
        &[("format", json!("binary")), ("maxInFlight", json!(7))],
    )
    .await;
    for path in ["subscrition", "subscription"] {
        let q = http
            .send("GET", &format!("{base}/eventmesh/{path}/query"), &[], "")
            .await;
        assert_eq!(q.status, 200, "{}", q.body);
        assert_eq!(
            q.headers.get("uri").unwrap(),
            &format!("/eventmesh/{path}/query")
        );
        let subs = q.json()["subscriptions"].clone();
        assert_eq!(
            subs,
            json!([{"url": rx.url(), "consumerGroup": "rest-g", "topic": "rest-sub", "mode": "BROADCASTING", "type": "ASYNC", "format": "binary", "maxInFlight": 7}]),
        );
    }
    let body = json!({"url": rx.url(), "consumerGroup": "rest-g", "topic": ["rest-sub"]});
    let r = http
        .post(
            &format!("{base}/eventmesh/unsubscribe/local"),
            &[],
            body.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let q = http
        .send(
            "POST",
            &format!("{base}/eventmesh/subscription/query"),
            &[],
            "",
        )
        .await;
    assert_eq!(q.json()["subscriptions"], json!([]));

    // A filter belongs to the (group, topic): it is listed, and another one is a conflict.
    subscribe(
        &http,
        &base,
        &rx.url(),
        "rest-f",
        "rest-ft",
        "CLUSTERING",
        &[("filter", json!("type = 'a'"))],
    )
    .await;
    let q = http
        .send(
            "GET",
            &format!("{base}/eventmesh/subscription/query"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        q.json()["subscriptions"][0]["filter"],
        "type = 'a'",
        "{}",
        q.body
    );
    let body = json!({"url": rx.url(), "consumerGroup": "rest-f", "topic": [{"topic": "rest-ft", "filter": "type = 'b'"}]});
    let r = http
        .post(
            &format!("{base}/eventmesh/subscribe/local"),
            &[],
            body.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (409, 19), "{}", r.body);

    // Unknown, malformed (the bridging paths: tests/http_bridge.rs).
    let r = http
        .post(&format!("{base}/eventmesh/nothing/here"), &[], "{}")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    for bad in [
        "not json",
        "[1,2]",
        r#"{"url": 5}"#,
        r#"{"url":"http://127.0.0.1:9/","consumerGroup":"g","topic":"oops"}"#,
    ] {
        let r = http
            .post(&format!("{base}/eventmesh/subscribe/local"), &[], bad)
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.ret_code(), 7, "{}", r.body);
    }
    let r = http
        .post(&format!("{base}/eventmesh/topic/create"), &[], "{}")
        .await;
    assert!(r.body.contains("`topic`"), "{}", r.body);
    let r = http
        .post(
            &format!("{base}/eventmesh/unsubscribe/local"),
            &[],
            json!({"url": rx.url(), "consumerGroup": "rest-g", "topic": ["never"]}).to_string(),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // The HTTP metrics are on the admin listener.
    let metrics = http
        .send(
            "GET",
            &format!("http://{}/metrics", h.admin_addr()),
            &[],
            "",
        )
        .await;
    for needle in [
        "eventmesh_http_requests_total{route=\"subscribe_local\",status=\"200\"}",
        "eventmesh_http_requests_total{route=\"unknown\",status=\"404\"}",
        "eventmesh_http_connections_total{outcome=\"accepted\"}",
    ] {
        assert!(
            metrics.body.contains(needle),
            "{needle} missing from:\n{}",
            metrics.body
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn should_check_basic_and_bearer_auth() {
    let (h, _dir) = start(|c| {
        c.server.http.auth.mode = HttpAuthMode::Basic;
        c.server.http.auth.username = "alice".into();
        c.server.http.auth.password = "s3cret".into();
    })
    .await;
    let http = Http::default();
    let base = base(&h);
    let r = http
        .code(&base, "104", &[], &[("topic", "a-t"), ("content", "x")])
        .await;
    assert_eq!((r.status, r.ret_code()), (401, 22), "{}", r.body);
    assert!(
        r.headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );
    let r = http
        .code(
            &base,
            "104",
            &[("authorization", &good)],
            &[("topic", "a-t"), ("content", "x")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:nope")
    );
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/a-t"),
            &[("authorization", &bad)],
            "x",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    h.shutdown().await;

    let (h, _dir) = start(|c| {
        c.server.http.auth.mode = HttpAuthMode::Bearer;
        c.server.http.auth.token = "tok-1".into();
    })
    .await;
    let base = http_common::base(&h);
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/a-t"),
            &[("authorization", "Bearer tok-1")],
            "x",
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/a-t"),
            &[("authorization", "Bearer tok-2")],
            "x",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    h.shutdown().await;
}

/// One request over TLS (HTTP/1.1 or h2 by ALPN) to `addr`, trusting the test certificate.
async fn https_post(addr: std::net::SocketAddr, h2: bool, path: &str, body: &str) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(tls_file("cert.pem")).expect("an HTTPS step");
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).expect("an HTTPS step");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("an HTTPS step")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("an HTTPS step");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("an HTTPS step");
    let tls = connector.connect(name, tcp).await.expect("an HTTPS step");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(if h2 { &b"h2"[..] } else { &b"http/1.1"[..] })
    );
    let io = hyper_util::rt::TokioIo::new(tls);
    let req = axum::http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "text/plain")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .expect("an HTTPS step");
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("an HTTPS step");
        tokio::spawn(conn);
        send.send_request(req).await.expect("an HTTPS step")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("an HTTPS step");
        tokio::spawn(conn);
        send.send_request(req).await.expect("an HTTPS step")
    };
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("an HTTPS step")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("an HTTPS step")
}

#[tokio::test]
async fn should_serve_https_on_the_listener_or_its_own() {
    // TLS on server.http.listen itself.
    let (h, _dir) = start(|c| {
        c.server.http.tls.enabled = true;
        c.server.http.tls.cert_file = tls_file("cert.pem");
        c.server.http.tls.key_file = tls_file("key.pem");
    })
    .await;
    let addr = h.http_addr().unwrap();
    for h2 in [false, true] {
        let (status, body) = https_post(addr, h2, "/eventmesh/publish/tls-t", "secure").await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(h.https_addr().is_none());
    h.shutdown().await;

    // A separate HTTPS listener; the main one stays plain.
    let (h, _dir) = start(|c| {
        c.server.http.tls.enabled = true;
        c.server.http.tls.listen = "127.0.0.1:0".into();
        c.server.http.tls.cert_file = tls_file("cert.pem");
        c.server.http.tls.key_file = tls_file("key.pem");
    })
    .await;
    let (status, body) = https_post(
        h.https_addr().unwrap(),
        false,
        "/eventmesh/publish/tls-t",
        "secure",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = Http::default()
        .post(
            &format!("{}/eventmesh/publish/tls-t", base(&h)),
            &[],
            "plain",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    h.shutdown().await;

    // A missing key file stops the start with the file named.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), eventmesh_config::StorageKind::Memory);
    c.server.http.tls.enabled = true;
    c.server.http.tls.cert_file = tls_file("cert.pem");
    c.server.http.tls.key_file = "/nonexistent/key.pem".into();
    let err = eventmesh_runtime::Runtime::start(c)
        .await
        .err()
        .expect("refused");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(chain.contains("/nonexistent/key.pem"), "{chain}");
}

#[tokio::test]
async fn should_carry_events_between_http_and_tcp() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let tcp = h.tcp_addr().expect("the TCP server runs");
    // HTTP publish → TCP subscriber.
    // The TCP subscriber asks for eventmeshmessage bodies (else it would get the publisher's
    // protocol: CloudEvents JSON for the CloudEvents binding).
    let mut sub = tcp_common::Client::connect(tcp).await;
    assert_eq!(
        sub.hello(tcp_common::user_agent("x-tcp-g", "sub", 91))
            .await
            .header
            .code,
        0
    );
    let r = sub
        .subscribe(
            "x-h2t",
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
            Some(ProtocolType::EventMeshMessage),
        )
        .await;
    assert_eq!(r.header.code, 0);
    assert_eq!(sub.listen().await.header.code, 0);
    let r = http
        .code(
            &base,
            "104",
            &sdk_headers(),
            &[
                ("topic", "x-h2t"),
                ("content", "from http"),
                ("bizseqno", "42"),
            ],
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let push = sub.expect(Command::AsyncMessageToClient).await;
    assert_eq!(
        tcp_common::message_of(&push).body.as_deref(),
        Some("from http")
    );
    sub.send(&tcp_common::ack_of(&push)).await;
    publish_ce(&http, &base, "x-h2t", "ce-x", "cloudevent from http").await;
    let push = sub.expect(Command::AsyncMessageToClient).await;
    assert_eq!(
        tcp_common::message_of(&push).body.as_deref(),
        Some("cloudevent from http")
    );
    sub.send(&tcp_common::ack_of(&push)).await;

    // TCP publish → HTTP webhook.
    let mut rx = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &rx.url(),
        "x-http-g",
        "x-t2h",
        "CLUSTERING",
        &[],
    )
    .await;
    let mut publisher = tcp_common::Client::publisher(tcp, "x-pub").await;
    assert_eq!(publisher.publish("x-t2h", "from tcp").await.header.code, 0);
    let p = rx.next().await;
    assert_eq!(p.content(), "from tcp");
    assert_eq!(p.form()["topic"], "x-t2h");
    h.shutdown().await;
}
