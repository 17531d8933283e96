//! `eventmesh pub` and `eventmesh sub` (the real binary, as child processes) against a runtime
//! in-process on port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};

const BIN: &str = env!("CARGO_BIN_EXE_eventmesh");
const PATIENCE: Duration = Duration::from_secs(60);

/// A node on the memory store with every listener on port 0, on its own Tokio runtime.
struct Node {
    rt: tokio::runtime::Runtime,
    handle: Option<RuntimeHandle>,
    tcp: String,
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
        let tcp = handle.tcp_addr().expect("TCP is on").to_string();
        Node {
            rt,
            handle: Some(handle),
            tcp,
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

/// Lines of a child's pipe on a channel.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
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
fn should_publish_stdin_lines_and_print_them_from_sub() {
    let node = Node::start();
    let mut sub = eventmesh(&[
        "sub", "--server", &node.tcp, "--topic", "T-cli", "--group", "g-cli", "--count", "2",
        "--json",
    ])
    .env("EVENTMESH_LOG__LEVEL", "info")
    .spawn()
    .expect("start sub");
    let out = lines(sub.stdout.take().expect("stdout"));
    let err = lines(sub.stderr.take().expect("stderr"));
    wait_for(&err, "Subscribed.");

    let mut publisher = eventmesh(&["pub", "--server", &node.tcp, "--topic", "T-cli", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start pub");
    publisher
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"one\ntwo\n")
        .expect("write stdin");
    let status = wait_exit(&mut publisher);
    let mut stderr = String::new();
    publisher
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(status.success(), "pub failed: {stderr}");

    let status = wait_exit(&mut sub);
    assert!(
        status.success(),
        "sub failed: {:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    let printed: Vec<String> = out.try_iter().collect();
    assert_eq!(printed.len(), 2, "{printed:?}");
    let data: Vec<String> = printed
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["subject"], "T-cli", "{l}");
            v["data"].as_str().expect("text data").to_owned()
        })
        .collect();
    assert_eq!(data, ["one", "two"]);
}

#[test]
fn should_print_the_reply_of_a_request() {
    let node = Node::start();
    let responder = node.rt.block_on(async {
        let client = eventmesh_sdk::Client::connect(
            eventmesh_sdk::ClientConfig::builder(node.tcp.clone(), "g-cli-rr")
                .purpose(eventmesh_sdk::Purpose::Sub)
                .build()
                .expect("config"),
        )
        .await
        .expect("connect");
        client
            .subscribe(
                "T-cli-rr",
                eventmesh_sdk::SubscriptionMode::Clustering,
                eventmesh_sdk::SubscriptionType::Sync,
                |d: eventmesh_sdk::Delivery| async move {
                    let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                        .to_uppercase();
                    Ok(eventmesh_sdk::text_event(text))
                },
            )
            .await
            .expect("subscribe");
        client
    });
    let output = eventmesh(&[
        "pub",
        "--server",
        &node.tcp,
        "--topic",
        "T-cli-rr",
        "--request",
        "--timeout",
        "5s",
        "ping",
    ])
    .output()
    .expect("run pub");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PING\n");
    node.rt.block_on(responder.close());
}

#[test]
fn should_fail_with_exit_1_when_the_server_is_unreachable() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = unused.local_addr().expect("addr").to_string();
    drop(unused);
    let output = eventmesh(&["pub", "--server", &addr, "--topic", "T", "x"])
        .output()
        .expect("run pub");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to"), "{stderr}");
}
