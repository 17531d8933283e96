//! Test harness: a private tansu broker (Kafka-compatible, written in Rust) per test, on free
//! loopback ports, with its data in a temporary directory, never a shared broker on 9092.
//!
//! The tests need the `tansu` binary (0.6.0 with the `dynostore` and `libsql` features), which
//! `scripts/install-brokers` installs into ~/.cargo/bin. Without it they fail, loudly: they never
//! skip.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_kafka::{KafkaOptions, KafkaStore};
use parking_lot::Mutex;
use tempfile::TempDir;

/// How long a starting broker may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The `tansu` binary: `$TANSU`, else ~/.cargo/bin/tansu, else the first on `PATH`. Panics with
/// the install command when there is none.
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TANSU names {}, which does not exist: the Kafka store tests need a tansu broker and do not skip",
            p.display()
        );
        return p;
    }
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
        let candidate = d.join("tansu");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "tansu is not installed (looked in $CARGO_HOME/bin, ~/.cargo/bin and on PATH): the Kafka \
         store tests run against a real Kafka-compatible broker and do not skip. Install it with \
         scripts/install-brokers (cargo install --locked --version 0.6.0 tansu --features \
         dynostore,libsql), or point TANSU at the binary."
    );
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local address").port()
}

/// Where the broker keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// In memory: lost when the broker stops.
    Memory,
    /// A SQLite file in the broker's directory: survives restarts.
    Sqlite,
}

/// One private tansu broker, killed when dropped.
pub struct Tansu {
    bin: PathBuf,
    port: u16,
    engine: Engine,
    dir: TempDir,
    child: Option<Child>,
}

impl Tansu {
    /// Starts a broker on a free port, waiting until it accepts connections.
    pub fn start(engine: Engine) -> Self {
        let bin = tansu_binary();
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-tansu-test-")
            .tempdir()
            .expect("temporary directory");
        let mut t = Tansu {
            bin,
            port: free_port(),
            engine,
            dir,
            child: None,
        };
        let mut last = String::new();
        // A port found free can be taken before the broker binds it: try a few.
        for _ in 0..5 {
            match t.spawn() {
                Ok(()) => return t,
                Err(e) => {
                    last = e;
                    t.port = free_port();
                }
            }
        }
        panic!("tansu did not start: {last}");
    }

    /// The store URL of the broker.
    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    /// The end of the broker's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // The first error is usually the cause; the tail shows the state at the end.
        let first = lines
            .iter()
            .find(|l| l.contains("ERROR") || l.contains("panicked"))
            .map_or(String::new(), |l| format!("first error: {l}\n...\n"));
        format!(
            "{first}{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open the broker log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let engine = match self.engine {
            Engine::Memory => "memory://tansu/".to_owned(),
            // Relative to the broker's working directory, the temporary directory.
            Engine::Sqlite => "sqlite://tansu.db".to_owned(),
        };
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &engine])
            .env("CLUSTER_ID", "eventmesh-test")
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the broker accepts a TCP connection.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "tansu exited at start ({status}) on port {}; log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "tansu on port {} did not accept connections within {} s; log:\n{}",
                    self.port,
                    READY_WITHIN.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the broker dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts the broker again on the same port and data (after `kill` or `stop`).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        if let Err(e) = self.spawn() {
            panic!("restarting tansu failed: {e}");
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Store options for a test against `url`: unique prefixes, short timeouts.
pub fn test_options(url: &str) -> KafkaOptions {
    let mut o = KafkaOptions::new(url);
    let tag = rand_u32();
    o.topic_prefix = format!("t{tag:08x}.");
    o.group_prefix = format!("g{tag:08x}.");
    o.request_timeout = Duration::from_secs(5);
    o.publish_timeout = Duration::from_secs(3);
    o.session_timeout = Duration::from_secs(6);
    o
}

pub fn rand_u32() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// The conformance kit's factory: its own tansu broker with the SQLite engine; every open after
/// the first restarts that broker gracefully (same port, same data), so the restart scenario
/// checks what a broker restart keeps, commit metadata included.
pub struct TansuFactory {
    broker: Arc<Mutex<Tansu>>,
    opts: KafkaOptions,
    opens: AtomicUsize,
}

impl TansuFactory {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// A factory whose options are changed by `tune` first.
    pub fn with(tune: impl FnOnce(&mut KafkaOptions)) -> Self {
        let broker = Tansu::start(Engine::Sqlite);
        let mut opts = test_options(&broker.url());
        tune(&mut opts);
        TansuFactory {
            broker: Arc::new(Mutex::new(broker)),
            opts,
            opens: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl StoreFactory for TansuFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        if self.opens.fetch_add(1, Ordering::SeqCst) > 0 {
            let broker = self.broker.clone();
            tokio::task::spawn_blocking(move || {
                let mut b = broker.lock();
                b.stop();
                b.start_again();
            })
            .await
            .expect("restart task");
        }
        Ok(Arc::new(KafkaStore::connect(self.opts.clone()).await?))
    }

    fn durable(&self) -> bool {
        true
    }
}
