//! Helpers of the HTTP server tests: the runtime in-process on port 0, a small HTTP client, and
//! a scripted webhook receiver (an axum server on port 0) that records what it was pushed.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something it expects.
pub const WAIT: Duration = Duration::from_secs(15);

/// The test config: every listener on port 0, the memory store, fast retries.
pub fn config(dir: &Path, store: StorageKind) -> Config {
    let mut c = Config::default();
    c.node.data_dir = dir.to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = store;
    c.shutdown.timeout = Duration::from_secs(10);
    c.delivery.backoff_initial = Duration::from_millis(50);
    c.delivery.backoff_max = Duration::from_millis(400);
    c.server.http.webhook.push_timeout = Duration::from_secs(5);
    c
}

/// A node on a memory store; `tweak` adjusts the config first.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> (RuntimeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = config(dir.path(), StorageKind::Memory);
    tweak(&mut c);
    let handle = start_with(c).await;
    (handle, dir)
}

/// A node with `config`, ready.
pub async fn start_with(config: Config) -> RuntimeHandle {
    let handle = Runtime::start(config).await.expect("the runtime starts");
    assert!(handle.wait_ready().await, "the node becomes ready");
    handle
}

/// The base URL of the node's HTTP server.
pub fn base(h: &RuntimeHandle) -> String {
    format!("http://{}", h.http_addr().expect("HTTP is enabled"))
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn ret_code(&self) -> i64 {
        self.json()["retCode"].as_i64().expect("a retCode")
    }
}

/// A keep-alive HTTP/1.1 client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

impl Http {
    /// An HTTP/2-only client (prior knowledge, h2c).
    pub fn h2() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).expect("a request");
        let resp = tokio::time::timeout(WAIT, self.client.request(req))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn post(&self, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        self.send("POST", url, headers, body).await
    }

    /// A request-code call: `POST /` with `code` and a form of `fields`.
    pub async fn code(
        &self,
        base: &str,
        code: &str,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> Resp {
        let form = form(fields);
        let mut h: Vec<(&str, &str)> = vec![
            ("code", code),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        h.extend_from_slice(headers);
        self.post(&format!("{base}/"), &h, form).await
    }
}

/// A urlencoded form.
pub fn form(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Headers the Java SDK sends on request-code calls.
pub fn sdk_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("env", "test"),
        ("idc", "FT"),
        ("sys", "1234"),
        ("pid", "4242"),
        ("ip", "10.0.0.1"),
        ("username", "eventmesh"),
        ("passwd", "pass"),
        ("language", "JAVA"),
        ("version", "1.0"),
        ("protocoltype", "eventmeshmessage"),
        ("protocolversion", "1.0"),
        ("protocoldesc", "http"),
    ]
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// 1 for the first request.
    pub n: usize,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The form fields (lower-case keys).
    pub fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect()
    }

    /// The `extFields` of a form push.
    pub fn ext(&self) -> Value {
        serde_json::from_str(self.form().get("extfields").expect("extFields")).expect("JSON")
    }

    /// The `content` of a form push.
    pub fn content(&self) -> String {
        self.form().get("content").cloned().unwrap_or_default()
    }
}

/// What a receiver answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Self {
        Reply::status(200).body(r#"{"retCode":0}"#)
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, b: &str) -> Self {
        self.body = b.to_owned();
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Answers after `d` (a slow subscriber).
    pub fn after(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Behaviour = dyn Fn(&Received) -> Reply + Send + Sync;

struct RecvState {
    behaviour: Box<Behaviour>,
    count: AtomicUsize,
    current: AtomicUsize,
    max_concurrent: AtomicUsize,
    tx: mpsc::Sender<Received>,
}

/// A webhook receiver on port 0.
pub struct Receiver {
    pub addr: SocketAddr,
    rx: mpsc::Receiver<Received>,
    state: Arc<RecvState>,
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Receiver {
    /// A receiver answering with `behaviour`.
    pub async fn start(behaviour: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        Self::on(listener, behaviour).await
    }

    /// A receiver on `listener`.
    pub async fn on(
        listener: tokio::net::TcpListener,
        behaviour: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().expect("an address");
        let (tx, rx) = mpsc::channel(100_000);
        let state = Arc::new(RecvState {
            behaviour: Box::new(behaviour),
            count: AtomicUsize::new(0),
            current: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            tx,
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Receiver {
            addr,
            rx,
            state,
            stop,
        }
    }

    /// Always answers `{"retCode":0}`.
    pub async fn ok() -> Self {
        Self::start(|_| Reply::ok()).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next request, within [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a push in time")
            .expect("the receiver runs")
    }

    /// A request if one is already there.
    pub fn try_next(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }

    /// Requests answered so far.
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// The most requests it handled at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_concurrent.load(Ordering::SeqCst)
    }
}

async fn handle(State(s): State<Arc<RecvState>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    let cur = s.current.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_concurrent.fetch_max(cur, Ordering::SeqCst);
    let received = Received {
        n,
        headers,
        body,
        at: tokio::time::Instant::now(),
    };
    let reply = (s.behaviour)(&received);
    let _ = s.tx.try_send(received);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    s.current.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (
        StatusCode::from_u16(reply.status).expect("a status"),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
            v.parse().expect("a header value"),
        );
    }
    resp
}

/// Subscribes `url` as `group` to `topic` over REST; panics unless it worked.
pub async fn subscribe(
    http: &Http,
    base: &str,
    url: &str,
    group: &str,
    topic: &str,
    mode: &str,
    extra: &[(&str, Value)],
) {
    let mut body = serde_json::json!({
        "url": url,
        "consumerGroup": group,
        "topic": [{"topic": topic, "mode": mode, "type": "ASYNC"}],
    });
    for (k, v) in extra {
        body[*k] = v.clone();
    }
    let r = http
        .post(
            &format!("{base}/eventmesh/subscribe/local"),
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.ret_code(), 0, "{}", r.body);
}

/// Publishes a structured CloudEvent with `id` and text `data` to `topic`.
pub async fn publish_ce(http: &Http, base: &str, topic: &str, id: &str, data: &str) {
    let ev = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/test", "type": "test.event",
        "datacontenttype": "text/plain", "data": data,
    });
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/{topic}"),
            &[("content-type", "application/cloudevents+json")],
            ev.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
