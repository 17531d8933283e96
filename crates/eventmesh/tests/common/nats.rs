//! Private `nats-server` processes with JetStream for the multi-node tests: one server, or a
//! cluster of three with routes between them, each on free loopback ports in its own temporary
//! directory (never the machine's shared server on 4222). Without a `nats-server` binary the tests
//! fail with the install command: they do not skip.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a cluster may take to elect its JetStream meta leader.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The `nats-server` binary: `$NATS_SERVER`, else the first on `PATH`, /usr/sbin, /usr/bin.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed: the multi-node tests run against a real NATS and do \
                 not skip. Install it with `apt-get install nats-server` (scripts/install-deps does)."
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Server {
    name: String,
    client_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// One nats-server, or a JetStream cluster of several; all killed when dropped.
pub struct NatsCluster {
    bin: PathBuf,
    dir: TempDir,
    cluster_ports: Vec<u16>,
    servers: Vec<Server>,
}

impl NatsCluster {
    /// `n` servers (1 = no cluster), started and ready (JetStream answering on every one).
    pub fn start(n: usize) -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-nats-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let mut c = NatsCluster {
            bin: nats_server_binary(),
            dir,
            cluster_ports: (0..n).map(|_| free_port()).collect(),
            servers: (0..n)
                .map(|i| Server {
                    name: format!("n{i}"),
                    client_port: free_port(),
                    monitor_port: free_port(),
                    child: None,
                })
                .collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_healthy(i);
        }
        c
    }

    /// The client URL listing every server (`nats://127.0.0.1:a,127.0.0.1:b,…`).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.client_port))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    fn spawn(&mut self, i: usize) {
        let n = self.servers.len();
        let s = &self.servers[i];
        let store = self.dir.path().join(&s.name);
        let log = File::create(self.dir.path().join(format!("{}.log", s.name))).expect("a log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-n", &s.name])
            .args(["-p", &s.client_port.to_string()])
            .args(["-m", &s.monitor_port.to_string()])
            .arg("-sd")
            .arg(&store);
        if n > 1 {
            let routes: Vec<String> = self
                .cluster_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--cluster_name", "mesh-test"])
                .args([
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", self.cluster_ports[i]),
                ])
                .args(["--routes", &routes.join(",")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("a log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.servers[i].child = Some(child);
    }

    /// Waits until server `i` says JetStream is healthy (`/healthz`), which in a cluster needs a
    /// meta leader.
    fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(ch) = self.servers[i].child.as_mut()
                && let Ok(Some(status)) = ch.try_wait()
            {
                panic!(
                    "nats-server {i} exited at start ({status}); log:\n{}",
                    self.log(i)
                );
            }
            if healthz(self.servers[i].monitor_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {i} was not healthy within {} s; log:\n{}",
                READY_WITHIN.as_secs(),
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL of server `i`: it dies at once, as in a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The log of server `i`.
    pub fn log(&self, i: usize) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.log", self.servers[i].name));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}

/// `GET /healthz` on a monitoring port answers 200.
fn healthz(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}
