//! Private `nats-server` processes with JetStream for the multi-node tests: one server, or a
//! cluster of three with routes between them, each on free loopback ports in its own temporary
//! directory (never the machine's shared server on 4222). Without a `nats-server` binary the tests
//! fail with the install command: they do not skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use eventmesh_storage::testkit::process::{
    ChildProcess, Place, Readiness, find_binary, free_port, tcp_exchange,
};
use tempfile::TempDir;

/// How long a cluster may take to elect its JetStream meta leader.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The `nats-server` binary: `$NATS_SERVER`, else the first on `PATH` or in /usr/sbin, /usr/bin, ...
pub fn nats_server_binary() -> PathBuf {
    find_binary(
        "nats-server",
        Some("NATS_SERVER"),
        &[Place::Path, Place::System],
        "The multi-node tests run against a real NATS and do not skip. Install it with \
         `apt-get install nats-server` (scripts/install-deps does).",
    )
}

struct Server {
    client_port: u16,
    process: ChildProcess,
}

/// One nats-server, or a JetStream cluster of several; all killed when dropped.
pub struct NatsCluster {
    /// Declared before `dir`: killed before their directory is removed.
    servers: Vec<Server>,
    dir: TempDir,
}

impl NatsCluster {
    /// `n` servers (1 = no cluster), started and ready (JetStream answering on every one).
    pub fn start(n: usize) -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-nats-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let bin = nats_server_binary();
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut servers: Vec<Server> = (0..n)
            .map(|i| {
                let client_port = free_port();
                let mut args: Vec<String> = vec!["-js".into(), "-a".into(), "127.0.0.1".into()];
                args.extend([
                    "-n".into(),
                    format!("n{i}"),
                    "-p".into(),
                    client_port.to_string(),
                ]);
                let store = dir.path().join(format!("n{i}"));
                args.extend(["-sd".into(), store.display().to_string()]);
                if n > 1 {
                    let routes: Vec<String> = (cluster_ports.iter().enumerate())
                        .filter(|(j, _)| *j != i)
                        .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                        .collect();
                    args.extend([
                        "--cluster_name".into(),
                        "mesh-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", cluster_ports[i]),
                        "--routes".into(),
                        routes.join(","),
                    ]);
                }
                Server {
                    client_port,
                    process: server_process(i, &bin, args, dir.path()),
                }
            })
            .collect();
        // Every server is started before any is waited for: a cluster's meta leader needs them.
        for s in &mut servers {
            s.process.launch().unwrap_or_else(|e| panic!("{e}"));
        }
        for s in &mut servers {
            s.process.wait_ready().unwrap_or_else(|e| panic!("{e}"));
        }
        NatsCluster { servers, dir }
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

    /// SIGKILL of server `i`: it dies at once, as in a crash.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].process.kill();
    }

    /// The log of server `i`.
    pub fn log(&self, i: usize) -> String {
        self.servers[i].process.log_tail(40)
    }
}

/// Server `i`: `bin` with `args` and a monitoring port, logging in `dir`, ready once it says
/// JetStream is healthy (`GET /healthz` answers 200), which in a cluster needs a meta leader.
fn server_process(i: usize, bin: &Path, mut args: Vec<String>, dir: &Path) -> ChildProcess {
    let monitor_port = free_port();
    args.extend(["-m".into(), monitor_port.to_string()]);
    let ready = Readiness::probe(
        format!("answer GET /healthz with 200 on port {monitor_port}"),
        move || {
            tcp_exchange(
                monitor_port,
                b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
            )
            .is_some_and(|r| r.starts_with(b"HTTP/1.0 200") || r.starts_with(b"HTTP/1.1 200"))
        },
    )
    .within(READY_WITHIN)
    .polling_every(Duration::from_millis(100));
    let bin = bin.to_path_buf();
    ChildProcess::new(
        format!("nats-server {i}"),
        dir.join(format!("n{i}.log")),
        move || {
            let mut cmd = Command::new(&bin);
            cmd.args(&args);
            cmd
        },
        ready,
    )
}
