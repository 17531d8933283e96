//! The real `eventmesh` binary: start, `/health`, SIGTERM, and the refusals (bad config, data
//! directory in use or unusable). No fixed ports: the admin listener binds port 0 and the test
//! reads the bound address from the log line `Admin API listening. addr=IP:PORT`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_eventmesh");
/// The bound on anything the tests wait for.
const PATIENCE: Duration = Duration::from_secs(60);

/// `eventmesh` with a clean environment (no inherited `EVENTMESH_*`) and the protocol listeners
/// on port 0 (they are only recorded, never bound, but this keeps the test free of fixed ports).
fn eventmesh(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EVENTMESH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn serve_args(data_dir: &Path) -> Vec<String> {
    [
        "serve",
        "--data-dir",
        &data_dir.display().to_string(),
        "--admin-listen",
        "127.0.0.1:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A running server, its stderr lines on a channel, and everything it printed so far.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    fn start(args: &[String], env: &[(&str, &str)]) -> Server {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = eventmesh(&args);
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn eventmesh");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; `None` when stderr ends first.
    fn wait_for_line(&mut self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no `{needle}` line within {PATIENCE:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    fn admin_addr(&mut self) -> SocketAddr {
        let line = self
            .wait_for_line("Admin API listening.")
            .unwrap_or_else(|| panic!("the server exited:\n{}", self.log.join("\n")));
        parse_addr(&line)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit and returns its status and the rest of its stderr.
    fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        // Drain stderr until it closes (the process exited or closed it), bounded.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the server did not exit within {PATIENCE:?}; log:\n{}",
                        self.log.join("\n")
                    );
                }
            }
        }
        let status = self.child.wait().expect("wait for eventmesh");
        (status, self.log.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_addr(line: &str) -> SocketAddr {
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"));
    value
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// `GET path` → (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

impl Server {
    /// Waits for the admin address, then for the node's "Node ready." line, then checks that
    /// `/health` answers 200 and returns its body. Bounded by [`PATIENCE`]; no sleeps.
    fn wait_healthy(&mut self) -> (SocketAddr, String) {
        let addr = self.admin_addr();
        if self.wait_for_line("Node ready.").is_none() {
            panic!(
                "the server exited before it was ready:\n{}",
                self.log.join("\n")
            );
        }
        let (status, body) = http_get(addr, "/health").expect("the admin listener answers");
        assert_eq!(status, 200, "{body}\nlog:\n{}", self.log.join("\n"));
        (addr, body)
    }
}

#[test]
fn should_serve_health_and_exit_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&serve_args(dir.path()), &[]);
    let (addr, body) = server.wait_healthy();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    let node_id = health["node_id"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("node_id"))
            .unwrap()
            .trim(),
        node_id
    );
    let (status, metrics) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("eventmesh_build_info"), "{metrics}");

    server.signal("TERM");
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    for needle in [
        "Effective configuration.",
        "TCP server listening.",
        "Signal received",
        "Shutdown complete.",
    ] {
        assert!(
            log.contains(needle),
            "`{needle}` missing from the log:\n{log}"
        );
    }
    assert!(
        TcpStream::connect(addr).is_err(),
        "the admin port is closed after exit"
    );
}

#[test]
fn should_exit_zero_on_sigint_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&serve_args(dir.path()), &[]);
    server.wait_healthy();
    server.signal("INT");
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(
        log.contains("signal=\"SIGINT\"") || log.contains("signal=SIGINT"),
        "{log}"
    );
}

#[test]
fn should_list_every_config_problem_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server.tcp]\nlisen = \"127.0.0.1:1\"\n[delivery]\nwindow = 0\nmax_attempts = \"many\"\n",
    )
    .unwrap();
    let out = eventmesh(&[
        "serve",
        "--config",
        &file.display().to_string(),
        "--data-dir",
        &dir.path().join("d").display().to_string(),
    ])
    .env("EVENTMESH_DELIVERY__ACK_TIMEOUT", "forever")
    .env("EVENTMESH_NOT__A_KEY", "1")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("invalid configuration (5 problems)"),
        "{stderr}"
    );
    for needle in [
        "`server.tcp.lisen`: unknown key (did you mean `server.tcp.listen`?)",
        "`delivery.window`: must be at least 1",
        "`delivery.max_attempts`: invalid type",
        "environment variable EVENTMESH_DELIVERY__ACK_TIMEOUT: `delivery.ack_timeout`",
        "environment variable EVENTMESH_NOT__A_KEY",
        &format!("config file {}", file.display()),
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from:\n{stderr}"
        );
    }
    assert!(
        !dir.path().join("d").exists(),
        "nothing is created for a refused config"
    );
}

#[test]
fn should_refuse_a_bad_flag_value_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = eventmesh(&[
        "serve",
        "--data-dir",
        &dir.path().display().to_string(),
        "--admin-listen",
        "nowhere",
        "--store",
        "pulsar",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("flag --admin-listen: `admin.listen`"),
        "{stderr}"
    );
    assert!(stderr.contains("flag --store: `storage.type`"), "{stderr}");
}

#[test]
fn should_refuse_a_data_dir_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start(&serve_args(dir.path()), &[]);
    first.wait_healthy();

    let second = Server::start(&serve_args(dir.path()), &[]);
    let (status, log) = second.wait_exit();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("is in use by another process"), "log:\n{log}");
    assert!(
        log.contains(&format!("(pid {})", first.child.id())),
        "the holder is named:\n{log}"
    );

    first.signal("TERM");
    let (status, log) = first.wait_exit();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
}

#[test]
fn should_refuse_an_unusable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let server = Server::start(&serve_args(&file), &[]);
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("Startup failed.") && log.contains(&file.display().to_string()),
        "log:\n{log}"
    );
}

#[test]
fn should_log_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &serve_args(dir.path()),
        &[("EVENTMESH_LOG__FORMAT", "json")],
    );
    let line = server
        .wait_for_line("Admin API listening.")
        .expect("the server runs");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    server
        .wait_for_line("Node ready.")
        .expect("the server gets ready");
    assert_eq!(http_get(addr, "/health").unwrap().0, 200);
    server.signal("TERM");
    assert_eq!(server.wait_exit().0.code(), Some(0));
}
