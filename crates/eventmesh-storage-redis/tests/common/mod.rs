//! A private `redis-server` per test: a free port on 127.0.0.1, its own temporary directory,
//! AOF on with an fsync per write (so a restart keeps every acknowledged write), killed on drop.
//! Never the shared Redis on 6379. A missing `redis-server` fails the test with a clear message.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a start (including AOF loading after a restart) may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
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
        let mut last_error = String::new();
        // A port freed by the probe can be taken by another test before redis-server binds it:
        // then try another one.
        for _ in 0..5 {
            let port = free_port();
            match spawn_ready(port, dir.path()).await {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        child: Some(child),
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (killing it first if it runs).
    pub async fn restart(&mut self) {
        self.kill();
        let mut last_error = String::new();
        for _ in 0..20 {
            match spawn_ready(self.port, self.dir.path()).await {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) => {
                    last_error = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!(
            "redis-server did not restart on port {}: {last_error}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("cannot read the probe's address: {e}"))
        .port()
}

async fn spawn_ready(port: u16, dir: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("redis-server.log"))
        .map_err(|e| format!("cannot open the log file in {}: {e}", dir.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cannot clone the log file handle: {e}"))?;
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server was not found on PATH. The redis store's tests run their own \
             redis-server; install it with scripts/install-deps (apt-get install redis-server)."
        ),
        Err(e) => panic!("cannot run redis-server: {e}"),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("redis-server.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(format!(
                "redis-server on port {port} exited with {status}: {tail}"
            ));
        }
        if ping(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server on port {port} did not answer PING within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the server answers `+PONG` (not `-LOADING` while it replays its AOF).
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}
