//! Test harness: a private RocketMQ name server and broker (rocketmq-rust 1.0.0) per test, on
//! free loopback ports, in a temporary directory with the small-store settings (16 MiB commit
//! log files instead of 1 GiB preallocated), never the machine's shared services.
//!
//! The tests need `rocketmq-namesrv-rust` and `rocketmq-broker-rust` in `~/.cargo/bin` or on
//! `PATH` (`scripts/install-brokers` installs them). Without them the tests fail, loudly: they
//! never skip.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageError, StorageResult};
use eventmesh_storage_rocketmq::{RocketOptions, RocketStore};
use tempfile::TempDir;

/// How long a starting process may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a new broker may take to register with the name server.
const REGISTERED_WITHIN: Duration = Duration::from_secs(60);

/// A broker binary: `~/.cargo/bin/<name>`, else the first on `PATH`. Panics naming
/// `scripts/install-brokers` when there is none.
pub fn binary(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed (looked in ~/.cargo/bin and on PATH): the RocketMQ store tests \
         run against a real name server and broker and do not skip. Install them with \
         scripts/install-brokers (cargo install --locked --version 1.0.0 rocketmq-namesrv rocketmq-broker)."
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local address").port()
}

/// A free port `p` whose `p - 2` is free too (the broker's fast port).
fn free_broker_port() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p > 1026 && TcpListener::bind(("127.0.0.1", p - 2)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for the broker");
}

fn wait_port(port: u16, child: &mut Child, what: &str, log: &PathBuf) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited at start ({status}); log:\n{}",
                tail(log)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not listen on {port} within {} s; log:\n{}",
                READY_WITHIN.as_secs(),
                tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A private name server and broker, killed when dropped.
pub struct RocketBroker {
    dir: TempDir,
    ns_port: u16,
    broker_port: u16,
    ha_port: u16,
    namesrv: Option<Child>,
    broker: Option<Child>,
}

impl RocketBroker {
    /// Starts a name server and a broker on free ports in a fresh directory.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-rocketmq-test-")
            .tempdir()
            .expect("temporary directory");
        let mut b = RocketBroker {
            dir,
            ns_port: free_port(),
            broker_port: free_broker_port(),
            ha_port: free_port(),
            namesrv: None,
            broker: None,
        };
        b.spawn_namesrv();
        b.spawn_broker();
        b
    }

    /// The store URL.
    pub fn url(&self) -> String {
        format!("rocketmq://127.0.0.1:{}", self.ns_port)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn ns_log(&self) -> PathBuf {
        self.home().join("namesrv.log")
    }

    fn broker_log(&self) -> PathBuf {
        self.home().join("broker.log")
    }

    fn spawn_namesrv(&mut self) {
        let bin = binary("rocketmq-namesrv-rust");
        let log = File::create(self.ns_log()).expect("namesrv log");
        let log2 = log.try_clone().expect("log");
        let mut child = Command::new(&bin)
            .env("ROCKETMQ_HOME", self.home())
            .arg("--listenPort")
            .arg(self.ns_port.to_string())
            .args(["--bindAddress", "127.0.0.1", "--rocketmqHome"])
            .arg(self.home())
            .arg("--kvConfigPath")
            .arg(self.home().join("kvConfig.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        if let Err(e) = wait_port(
            self.ns_port,
            &mut child,
            "rocketmq-namesrv-rust",
            &self.ns_log(),
        ) {
            let _ = child.kill();
            panic!("{e}");
        }
        self.namesrv = Some(child);
    }

    fn spawn_broker(&mut self) {
        let bin = binary("rocketmq-broker-rust");
        let store = self.home().join("store");
        let conf_dir = self.home().join("conf");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        let conf = format!(
            r#"[broker]
namesrvAddr = "127.0.0.1:{ns}"
brokerIp1 = "127.0.0.1"
listenPort = {port}
storePathRootDir = "{store}"
[broker.brokerServerConfig]
bindAddress = "127.0.0.1"
[broker.brokerIdentity]
brokerName = "broker-a"
brokerClusterName = "DefaultCluster"
brokerId = 0
[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "{store}"
haListenAddress = "127.0.0.1"
haListenPort = {ha}
mappedFileSizeCommitLog = 16777216
maxHashSlotNum = 1000
maxIndexNum = 4000
"#,
            ns = self.ns_port,
            port = self.broker_port,
            store = store.display(),
            ha = self.ha_port,
        );
        let conf_path = conf_dir.join("broker.toml");
        std::fs::write(&conf_path, conf).expect("broker.toml");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.broker_log())
            .expect("broker log");
        let log2 = log.try_clone().expect("log");
        let mut child = Command::new(&bin)
            .env("ROCKETMQ_HOME", self.home())
            .env("ROCKETMQ_SECURITY_PROFILE", "development-insecure-loopback")
            .arg("-c")
            .arg(&conf_path)
            .arg("-n")
            .arg(format!("127.0.0.1:{}", self.ns_port))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        if let Err(e) = wait_port(
            self.broker_port,
            &mut child,
            "rocketmq-broker-rust",
            &self.broker_log(),
        ) {
            let _ = child.kill();
            panic!("{e}");
        }
        self.broker = Some(child);
    }

    /// The end of both logs, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- broker log ---\n{}\n--- namesrv log ---\n{}",
            tail(&self.broker_log()),
            tail(&self.ns_log())
        )
    }

    /// SIGKILL of the broker (the name server stays).
    pub fn kill_broker(&mut self) {
        if let Some(mut c) = self.broker.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same ports and store.
    pub fn restart_broker(&mut self) {
        if self.broker.is_none() {
            self.spawn_broker();
        }
    }
}

impl Drop for RocketBroker {
    fn drop(&mut self) {
        self.kill_broker();
        if let Some(mut c) = self.namesrv.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Store options for a test: a unique prefix, short timeouts.
pub fn test_options(url: &str) -> RocketOptions {
    let mut o = RocketOptions::new(url);
    o.prefix = format!("T{:08x}", rand_u32());
    o.request_timeout = Duration::from_secs(3);
    o
}

fn rand_u32() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u32
}

/// Opens a store, retrying while the new broker has not yet registered with the name server.
pub async fn open_store(opts: RocketOptions) -> StorageResult<RocketStore> {
    let deadline = Instant::now() + REGISTERED_WITHIN;
    loop {
        match RocketStore::open(opts.clone()).await {
            Err(StorageError::Unavailable(m)) if Instant::now() < deadline => {
                let _ = m;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// The conformance kit's factory: one private broker, a store per open on the same prefix.
pub struct RocketFactory {
    pub broker: RocketBroker,
    pub opts: RocketOptions,
}

impl RocketFactory {
    pub fn start() -> Self {
        let broker = RocketBroker::start();
        let opts = test_options(&broker.url());
        RocketFactory { broker, opts }
    }
}

#[async_trait]
impl StoreFactory for RocketFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        match open_store(self.opts.clone()).await {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => Err(StorageError::Backend(format!(
                "{e}\n{}",
                self.broker.log_tail()
            ))),
        }
    }

    fn durable(&self) -> bool {
        true
    }
}
