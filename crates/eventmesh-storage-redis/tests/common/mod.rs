//! A private `redis-server` per test: a free port on 127.0.0.1, its own temporary directory,
//! AOF on with an fsync per write (so a restart keeps every acknowledged write), killed on drop.
//! Never the shared Redis on 6379. A missing `redis-server` fails the test with a clear message.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use eventmesh_storage::testkit::process::ChildProcess;
use eventmesh_storage::testkit::redis_server::{AppendFsync, redis_server, redis_server_binary};
use tempfile::TempDir;

pub struct RedisServer {
    port: u16,
    /// Declared before `dir`: killed before its directory is removed.
    process: ChildProcess,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port in a fresh directory and waits until it answers PING.
    pub async fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-redis-test-")
            .tempdir()
            .unwrap_or_else(|e| {
                panic!("cannot create a temporary directory for redis-server: {e}")
            });
        let root = dir.path().to_path_buf();
        // A port freed by the probe can be taken by another test before redis-server binds it:
        // then another one is tried.
        let (port, process) = blocking(move || {
            let bin = redis_server_binary();
            ChildProcess::spawn_on_free_port(5, |port| {
                redis_server(&bin, &root, port, AppendFsync::Always)
            })
        })
        .await
        .unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
        RedisServer { port, process, dir }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL: no shutdown, no final save; only what the AOF already holds survives.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and directory (killing it first if it runs).
    pub async fn restart(&mut self) {
        self.kill();
        let (port, root) = (self.port, self.dir.path().to_path_buf());
        self.process = blocking(move || {
            let bin = redis_server_binary();
            let mut last_error = String::new();
            // Another test's free-port probe may hold the port for a moment: try again shortly.
            for _ in 0..20 {
                let mut process = redis_server(&bin, &root, port, AppendFsync::Always);
                match process.spawn() {
                    Ok(()) => return process,
                    Err(e) => last_error = e,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("redis-server did not restart on port {port}: {last_error}");
        })
        .await;
    }
}

/// Runs blocking process control off the async runtime's workers, passing a panic on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
