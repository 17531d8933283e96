//! `eventmesh pub --http` and `eventmesh sub --http` (the real binary, as child processes)
//! against a runtime in-process on port 0.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};

const BIN: &str = env!("CARGO_BIN_EXE_eventmesh");
const PATIENCE: Duration = Duration::from_secs(60);

struct Node {
    rt: tokio::runtime::Runtime,
    handle: Option<RuntimeHandle>,
    http: String,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
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
        let http = handle.http_addr().expect("HTTP is on").to_string();
        Node {
            rt,
            handle: Some(handle),
            http,
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

fn eventmesh(args: &[&str]) -> Command {
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

fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needle:?}; saw {seen:#?}"),
        }
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
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

#[test]
fn should_publish_and_subscribe_over_http() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub",
        "--http",
        "--server",
        &node.http,
        "--topic",
        "T-cli-http",
        "--group",
        "g-cli-http",
        "--count",
        "2",
        "--json",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start sub");
    let out = lines(sub.stdout.take().expect("stdout"));
    let err = lines(sub.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");

    for data in ["one", "two"] {
        let output = eventmesh(&[
            "pub",
            "--http",
            "--server",
            &node.http,
            "--topic",
            "T-cli-http",
            data,
        ])
        .output()
        .expect("run pub");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status = wait_exit(&mut sub);
    assert!(
        status.success(),
        "sub failed: {:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    let mut data: Vec<String> = out
        .try_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    data.sort();
    assert_eq!(data, ["one", "two"]);
    // Over HTTP there is no broadcast publish: refused, exit 1.
    let output = eventmesh(&[
        "pub",
        "--http",
        "--server",
        &node.http,
        "--topic",
        "T",
        "--broadcast",
        "x",
    ])
    .output()
    .expect("run pub");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broadcast"));
}
