//! Test harness: a private tansu broker (Kafka-compatible, written in Rust) per test, on free
//! loopback ports, with its data in a temporary directory, never a shared broker on 9092.
//!
//! The tests need the `tansu` binary (0.6.0 with the `dynostore` and `libsql` features), which
//! `scripts/install-brokers` installs into ~/.cargo/bin. Without it they fail, loudly: they never
//! skip.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary};
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_kafka::{KafkaOptions, KafkaStore};
use parking_lot::Mutex;
use tempfile::TempDir;

/// How long a starting broker may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The `tansu` binary: `$TANSU`, else ~/.cargo/bin/tansu, else the first on `PATH`. Panics with
/// the install command when there is none.
pub fn tansu_binary() -> PathBuf {
    find_binary(
        "tansu",
        Some("TANSU"),
        &[Place::CargoBin, Place::Path],
        "The Kafka store tests run against a real Kafka-compatible broker and do not skip. Install \
         it with scripts/install-brokers (cargo install --locked --version 0.6.0 tansu --features \
         dynostore,libsql), or point TANSU at the binary.",
    )
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
    port: u16,
    engine: Engine,
    /// Declared before `dir`: killed before its directory is removed.
    process: ChildProcess,
    dir: TempDir,
}

impl Tansu {
    /// Starts a broker on a free port, waiting until it accepts connections.
    pub fn start(engine: Engine) -> Self {
        let bin = tansu_binary();
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-tansu-test-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path().to_path_buf();
        let (port, process) =
            ChildProcess::spawn_on_free_port(5, |port| tansu_process(&bin, &root, port, engine))
                .unwrap_or_else(|e| {
                    panic!("tansu did not start: {e}\n{}", first_error(&root.join(LOG)))
                });
        Tansu {
            port,
            engine,
            process,
            dir,
        }
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

    /// The end of the broker's log (for failure messages), after its first error if any.
    pub fn log_tail(&self) -> String {
        format!(
            "{}{}",
            first_error(self.process.log_path()),
            self.process.log_tail(30)
        )
    }

    /// SIGKILL: the broker dies at once, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the broker again on the same port and data (after `kill` or `stop`).
    pub fn start_again(&mut self) {
        self.process.start_again();
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }
}

/// The broker's log file, in its directory.
const LOG: &str = "tansu.log";

/// The first error line of the log (usually the cause), as a line to put before its tail.
fn first_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains("ERROR") || l.contains("panicked"))
        .map_or(String::new(), |l| format!("first error: {l}\n...\n"))
}

/// tansu on `port` with its data in `dir` (its working directory), ready once it accepts a TCP
/// connection.
fn tansu_process(bin: &Path, dir: &Path, port: u16, engine: Engine) -> ChildProcess {
    let (bin, dir) = (bin.to_path_buf(), dir.to_path_buf());
    ChildProcess::new(
        format!("tansu on port {port}"),
        dir.join(LOG),
        move || {
            let listener = format!("tcp://127.0.0.1:{port}");
            let engine = match engine {
                Engine::Memory => "memory://tansu/",
                // Relative to the broker's working directory, the temporary directory.
                Engine::Sqlite => "sqlite://tansu.db",
            };
            let mut cmd = Command::new(&bin);
            cmd.arg("broker")
                .args(["--listener-url", &listener])
                .args(["--advertised-listener-url", &listener])
                .args(["--storage-engine", engine])
                .env("CLUSTER_ID", "eventmesh-test")
                .env("RUST_LOG", "warn")
                .current_dir(&dir);
            cmd
        },
        Readiness::tcp(port).within(READY_WITHIN),
    )
}

/// Store options for a test against `url`: unique prefixes, short timeouts.
///
/// To see what the clients do, run with `RUST_LOG` (for instance
/// `RUST_LOG=eventmesh_storage_kafka=debug,librdkafka=debug`) and, for librdkafka's own debug
/// contexts, `EVENTMESH_TEST_KAFKA_DEBUG` (for instance `cgrp,topic`) and `--nocapture`.
pub fn test_options(url: &str) -> KafkaOptions {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut o = KafkaOptions::new(url);
    if let Ok(contexts) = std::env::var("EVENTMESH_TEST_KAFKA_DEBUG") {
        o.properties.insert("debug".to_owned(), contexts);
    }
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
    engine: Engine,
}

impl TansuFactory {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// A factory on a broker with the memory engine: for scenarios that never restart it (the
    /// store is not durable across broker restarts then).
    pub fn in_memory() -> Self {
        Self::on(Engine::Memory, |_| {})
    }

    /// A factory whose options are changed by `tune` first.
    pub fn with(tune: impl FnOnce(&mut KafkaOptions)) -> Self {
        Self::on(Engine::Sqlite, tune)
    }

    fn on(engine: Engine, tune: impl FnOnce(&mut KafkaOptions)) -> Self {
        let broker = Tansu::start(engine);
        let mut opts = test_options(&broker.url());
        tune(&mut opts);
        TansuFactory {
            broker: Arc::new(Mutex::new(broker)),
            opts,
            opens: AtomicUsize::new(0),
            engine,
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
        self.engine == Engine::Sqlite
    }
}
