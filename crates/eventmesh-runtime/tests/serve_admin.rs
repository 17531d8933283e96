//! The runtime in-process on port 0: `/health`, `/metrics`, readiness, shutdown, and the
//! data-directory rules.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_config::{Config, StorageKind};
use eventmesh_core::{EventRecord, Topic};
use eventmesh_runtime::{Runtime, ServerError};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use eventmesh_storage_memory::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(data_dir: &Path, store: StorageKind) -> Config {
    let mut c = Config::default();
    c.node.data_dir = data_dir.to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = store;
    c.shutdown.timeout = Duration::from_secs(10);
    c
}

struct HttpResponse {
    status: u16,
    head: String,
    body: String,
}

/// One `GET` over a fresh connection (`Connection: close`), read to the end.
async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read the response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn should_answer_health_and_metrics_then_shut_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let handle = Runtime::start(config(dir.path(), StorageKind::Embedded))
        .await
        .unwrap();
    assert!(handle.wait_ready().await);
    let addr = handle.admin_addr();
    assert_ne!(addr.port(), 0, "the bound port is exposed");

    let health = get(addr, "/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(
        health
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        health.head
    );
    let body = json(&health.body);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node_id"], handle.node_id());
    assert_eq!(body["store"], "embedded");
    assert!(
        dir.path().join("events").is_dir(),
        "the embedded store lives in <data_dir>/events"
    );

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.head.contains("text/plain"), "{}", metrics.head);
    for name in [
        "eventmesh_build_info",
        "eventmesh_ready",
        "eventmesh_uptime_seconds",
        "eventmesh_storage_healthy",
    ] {
        assert!(
            metrics.body.contains(name),
            "{name} missing from:\n{}",
            metrics.body
        );
    }
    assert!(
        metrics
            .body
            .contains(&format!("node_id=\"{}\"", handle.node_id())),
        "{}",
        metrics.body
    );

    let missing = get(addr, "/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(json(&missing.body)["error"], "not found");

    let store = handle.store().clone();
    let report = handle.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the admin listener is closed after shutdown"
    );
    assert!(
        matches!(store.health().await, Err(StorageError::Closed)),
        "the store is closed after shutdown"
    );
}

/// A memory store whose health check fails while `healthy` is false.
struct FlakyStore {
    inner: MemoryStore,
    healthy: Arc<AtomicBool>,
}

#[async_trait]
impl EventStore for FlakyStore {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        self.inner.create_topic(topic).await
    }
    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        self.inner.delete_topic(topic).await
    }
    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        self.inner.list_topics().await
    }
    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        self.inner.publish(topic, records).await
    }
    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        self.inner.subscribe(consumer, start).await
    }
    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        self.inner.unsubscribe(consumer).await
    }
    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        self.inner.fetch(consumer, max, lease, wait).await
    }
    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        self.inner.ack(consumer, tokens).await
    }
    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        self.inner.nack(consumer, token, delay).await
    }
    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        self.inner.extend_lease(consumer, tokens, lease).await
    }
    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        self.inner.seek(consumer, target).await
    }
    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        self.inner.cursor_info(consumer).await
    }
    async fn health(&self) -> StorageResult<()> {
        if self.healthy.load(Ordering::SeqCst) {
            self.inner.health().await
        } else {
            Err(StorageError::Unavailable("disk on fire (test)".to_owned()))
        }
    }
    async fn close(&self) -> StorageResult<()> {
        self.inner.close().await
    }
}

#[tokio::test]
async fn should_answer_503_with_the_reason_while_the_store_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let store = FlakyStore {
        inner: MemoryStore::new(),
        healthy: healthy.clone(),
    };
    let handle = Runtime::builder(config(dir.path(), StorageKind::Memory))
        .store(Arc::new(store))
        .start()
        .await
        .unwrap();
    assert!(handle.wait_ready().await);
    let addr = handle.admin_addr();

    assert_eq!(get(addr, "/health").await.status, 200);

    healthy.store(false, Ordering::SeqCst);
    let down = get(addr, "/health").await;
    assert_eq!(down.status, 503, "{}", down.body);
    let body = json(&down.body);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"], "flaky");
    assert_eq!(body["node_id"], handle.node_id());
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("event store unhealthy") && reason.contains("disk on fire"),
        "{reason}"
    );
    let metrics = get(addr, "/metrics").await.body;
    assert!(
        metrics.contains("eventmesh_storage_health_checks_total{store=\"flaky\",result=\"error\"}"),
        "{metrics}"
    );

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/health").await.status, 200);
    assert!(handle.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_keep_the_generated_node_id_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .unwrap();
    let id = first.node_id().to_owned();
    assert!(first.shutdown().await.is_clean());
    let persisted = std::fs::read_to_string(dir.path().join("node_id")).unwrap();
    assert_eq!(persisted.trim(), id);

    let second = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .unwrap();
    assert_eq!(second.node_id(), id);
    assert_eq!(
        second.node().advertise,
        second.tcp_addr().expect("TCP is on").to_string(),
        "advertise defaults to the bound TCP address"
    );
    assert!(second.shutdown().await.is_clean());

    let mut c = config(dir.path(), StorageKind::Memory);
    c.node.id = "configured-1".into();
    c.node.advertise = "mesh.example:10000".into();
    let third = Runtime::start(c).await.unwrap();
    assert_eq!(third.node_id(), "configured-1");
    assert_eq!(third.node().advertise, "mesh.example:10000");
    assert!(third.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_refuse_a_data_dir_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .unwrap();
    let err = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .err()
        .expect("a second runtime is refused");
    assert!(matches!(err, ServerError::DataDirInUse { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    assert!(first.shutdown().await.is_clean());
    // Released on shutdown.
    let again = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .unwrap();
    assert!(again.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_refuse_an_admin_address_in_use_and_release_everything() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Runtime::start(config(dir_a.path(), StorageKind::Memory))
        .await
        .unwrap();
    let mut c = config(dir_b.path(), StorageKind::Memory);
    c.admin.listen = a.admin_addr();
    let err = Runtime::start(c)
        .await
        .err()
        .expect("the admin port is taken");
    assert!(
        matches!(
            err,
            ServerError::Bind {
                listener: "admin",
                ..
            }
        ),
        "{err}"
    );
    // The failed start released its data directory.
    let b = Runtime::start(config(dir_b.path(), StorageKind::Memory))
        .await
        .unwrap();
    assert!(b.shutdown().await.is_clean());
    assert!(a.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_refuse_an_invalid_config_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), StorageKind::Memory);
    c.delivery.window = 0;
    c.limits.max_event_bytes = 0;
    let err = Runtime::start(c).await.err().expect("invalid");
    let ServerError::Config(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.problems().len(), 2, "{e}");
}

#[tokio::test]
async fn should_refuse_a_data_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Runtime::start(config(&file, StorageKind::Memory))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ServerError::DataDir { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn should_stop_waiting_when_shutdown_is_requested() {
    let dir = tempfile::tempdir().unwrap();
    let handle = Runtime::start(config(dir.path(), StorageKind::Memory))
        .await
        .unwrap();
    let signal = handle.shutdown_signal();
    signal.trigger(eventmesh_runtime::lifecycle::ShutdownReason::Requested(
        "test".into(),
    ));
    let reason = tokio::time::timeout(Duration::from_secs(5), handle.wait())
        .await
        .unwrap();
    assert!(!reason.is_failure());
    let report = handle.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        report.reason,
        Some(eventmesh_runtime::lifecycle::ShutdownReason::Requested(
            "test".into()
        ))
    );
}
