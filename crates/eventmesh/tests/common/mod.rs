//! What the binary's tests share: a runtime in-process on port 0 (on its own Tokio runtime, so
//! the tests can drive the binary with blocking child-process calls) and helpers to run the
//! `eventmesh` binary and read its output.
#![allow(dead_code, unreachable_pub)]

pub mod mesh;
pub mod nats;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_eventmesh");
/// How long a test waits for a line or an exit.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A node on the memory store with every listener on port 0.
pub struct Node {
    /// The Tokio runtime the node runs on (tests may run SDK clients on it too).
    pub rt: tokio::runtime::Runtime,
    handle: Option<RuntimeHandle>,
    /// The TCP protocol address.
    pub tcp: String,
    /// The HTTP protocol address.
    pub http: String,
    /// The gRPC protocol address.
    pub grpc: String,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn start() -> Node {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut c = Config::default();
        c.node.data_dir = dir.path().to_path_buf();
        let any = "127.0.0.1:0".parse().expect("an address");
        c.admin.listen = any;
        c.server.tcp.listen = any;
        c.server.http.listen = any;
        c.server.grpc.listen = any;
        c.server.mqtt.listen = any;
        c.storage.kind = StorageKind::Memory;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let handle = rt.block_on(async {
            let h = Runtime::start(c).await.expect("the node starts");
            assert!(h.wait_ready().await);
            h
        });
        let tcp = handle.tcp_addr().expect("TCP is on").to_string();
        let http = handle.http_addr().expect("HTTP is on").to_string();
        let grpc = handle.grpc_addr().expect("gRPC is on").to_string();
        Node {
            rt,
            handle: Some(handle),
            tcp,
            http,
            grpc,
            _dir: dir,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// The binary with `args`, no `EVENTMESH_*` variables from the test's environment, stdin closed
/// and both outputs piped.
pub fn eventmesh(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EVENTMESH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Lines of a child's pipe on a channel.
pub fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns the lines seen up to and including it.
pub fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?}; saw {seen:#?}"),
        }
    }
}

/// Waits for the child to exit (killing it after [`PATIENCE`]).
pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit in time");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
