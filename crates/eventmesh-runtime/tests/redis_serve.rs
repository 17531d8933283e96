//! The runtime on the Redis store (`storage.type = "redis"`, feature `redis`): it opens the
//! store at `storage.url`, reports it healthy, and shuts down cleanly; an unreachable Redis stops
//! the start with the store named and the password masked. Each test runs its own
//! `redis-server` on a free port (never the shared one on 6379); a missing `redis-server` fails.

#![cfg(feature = "redis")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, ServerError};
use eventmesh_storage::StorageError;
use eventmesh_storage::testkit::process::{ChildProcess, free_port};
use eventmesh_storage::testkit::redis_server::{AppendFsync, start_redis_server};

/// A redis-server on a free port with its AOF (fsync per write) and its log in `dir`.
fn start_redis(dir: &Path) -> (u16, ChildProcess) {
    start_redis_server(dir, AppendFsync::Always)
}

fn config(data_dir: &Path, url: String) -> Config {
    let mut c = Config::default();
    c.node.data_dir = data_dir.to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = StorageKind::Redis;
    c.storage.url = url;
    c.storage.redis.request_timeout = Duration::from_secs(1);
    c.shutdown.timeout = Duration::from_secs(10);
    c
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the admin listener");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_on_the_redis_store_and_shut_down_cleanly() {
    let redis_dir = tempfile::tempdir().expect("dir");
    let root = redis_dir.path().to_path_buf();
    // Declared after `redis_dir`: killed before its directory is removed.
    let (port, _redis) = tokio::task::spawn_blocking(move || start_redis(&root))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let data = tempfile::tempdir().expect("dir");
    let handle = Runtime::start(config(data.path(), format!("redis://127.0.0.1:{port}")))
        .await
        .expect("the runtime starts on the redis store");
    assert!(handle.wait_ready().await);
    let addr = handle.admin_addr();
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/health"))
        .await
        .expect("health task");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["store"], "redis", "{body}");
    assert!(handle.shutdown().await.is_clean());
}

#[tokio::test]
async fn should_refuse_to_start_when_redis_is_unreachable_without_leaking_the_password() {
    let data = tempfile::tempdir().expect("dir");
    let url = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    match Runtime::start(config(data.path(), url)).await {
        Ok(_) => panic!("the runtime started without a Redis"),
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains("hunter2"), "password leaked: {text}");
            match e {
                ServerError::Storage {
                    store: "redis",
                    source: StorageError::Unavailable(_),
                } => {}
                other => panic!("expected a redis Unavailable storage error, got {other:?}"),
            }
        }
    }
}
