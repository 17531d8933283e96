//! What the binary's tests share: a runtime in-process on port 0 (on its own Tokio runtime, so
//! the tests can drive the binary with blocking child-process calls) and helpers to run the
//! `eventmesh` binary and read its output.
#![allow(dead_code, unreachable_pub)]

pub mod mesh;
pub mod nats;
pub mod serve_store;
pub mod tansu;

use std::io::{BufRead, BufReader, Read, Write};
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

/// A running `eventmesh sub` (with `info` logs), its stdout and stderr lines.
pub struct Sub {
    pub child: Child,
    pub out: mpsc::Receiver<String>,
    pub err: mpsc::Receiver<String>,
}

impl Sub {
    /// Starts `eventmesh` with `args` and waits until it has subscribed.
    pub fn start(args: &[&str]) -> Sub {
        let mut child = eventmesh(args)
            .env("EVENTMESH_LOG__LEVEL", "info")
            .spawn()
            .expect("start sub");
        let out = lines(child.stdout.take().expect("stdout"));
        let err = lines(child.stderr.take().expect("stderr"));
        wait_for(&err, "Subscribed.");
        Sub { child, out, err }
    }

    /// Waits for the exit, asserts it is a success, and returns the lines printed.
    pub fn printed(self) -> Vec<String> {
        self.printed_or(&String::new)
    }

    /// [`Sub::printed`], with `context` added to a failure's message.
    pub fn printed_or(mut self, context: &dyn Fn() -> String) -> Vec<String> {
        let status = wait_exit(&mut self.child);
        assert!(
            status.success(),
            "sub failed: {:?}\n{}",
            self.err.try_iter().collect::<Vec<_>>(),
            context()
        );
        self.out.try_iter().collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `eventmesh pub --server <server> --topic <topic> -` with `lines` on stdin, one per line;
/// asserts it succeeds (`context` adds to a failure's message).
pub fn pub_lines(server: &str, topic: &str, lines: &[&str], context: &dyn Fn() -> String) {
    let mut publisher = eventmesh(&["pub", "--server", server, "--topic", topic, "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start pub");
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    publisher
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let status = wait_exit(&mut publisher);
    let mut stderr = String::new();
    publisher
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(status.success(), "pub failed: {stderr}\n{}", context());
}

/// Runs the binary with `args` and asserts it succeeds; returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let output = eventmesh(args).output().expect("run eventmesh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the binary with `args` and asserts it fails with exit 1; returns its stderr.
pub fn run_refused(args: &[&str]) -> String {
    let output = eventmesh(args).output().expect("run eventmesh");
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The text data of JSON-printed events, sorted.
pub fn data_of<'a>(lines: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut data: Vec<String> = lines
        .into_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    data.sort();
    data
}

/// `sub <flag> --count 2 --json` gets the two events `pub <flag>` sends, and
/// `pub <flag> --broadcast` is refused (exit 1): `flag` is `--http` or `--grpc`, `server` the
/// node's address for it.
pub fn check_pub_sub(flag: &str, server: &str, topic: &str, group: &str) {
    let sub = Sub::start(&[
        "sub", flag, "--server", server, "--topic", topic, "--group", group, "--count", "2",
        "--json",
    ]);
    for data in ["one", "two"] {
        run_ok(&["pub", flag, "--server", server, "--topic", topic, data]);
    }
    assert_eq!(data_of(&sub.printed()), ["one", "two"]);
    let stderr = run_refused(&[
        "pub",
        flag,
        "--server",
        server,
        "--topic",
        "T",
        "--broadcast",
        "x",
    ]);
    assert!(stderr.contains("broadcast"), "{stderr}");
}

/// `sub <flag> --filter 'type = 'keep'' --count 2 --json`, started and subscribed.
pub fn filtered_sub(flag: &str, server: &str, topic: &str, group: &str) -> Sub {
    Sub::start(&[
        "sub",
        flag,
        "--server",
        server,
        "--topic",
        topic,
        "--group",
        group,
        "--filter",
        "type = 'keep'",
        "--count",
        "2",
        "--json",
    ])
}

/// A filter that does not parse is refused by the mesh with the parse error: exit 1.
pub fn check_bad_filter_refused(flag: &str, server: &str, topic: &str, group: &str) {
    let stderr = run_refused(&[
        "sub", flag, "--server", server, "--topic", topic, "--group", group, "--filter", "type = ",
    ]);
    assert!(stderr.contains("invalid filter"), "{stderr}");
    assert!(stderr.contains("parse"), "{stderr}");
}
