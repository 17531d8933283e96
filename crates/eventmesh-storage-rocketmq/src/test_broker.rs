//! Test support (feature `test-broker`): a private RocketMQ name server and broker
//! (rocketmq-rust 1.0.0) on free loopback ports, in a temporary directory with the small-store
//! settings (16 MiB commit log files instead of 1 GiB preallocated), never the machine's shared
//! services. The store's own tests and the `eventmesh` binary's `serve --store rocketmq` test
//! start their brokers with it.
//!
//! It needs `rocketmq-namesrv-rust` and `rocketmq-broker-rust` in `~/.cargo/bin` or on `PATH`
//! (`scripts/install-brokers` installs them). Without them [`RocketBroker::start`] panics, saying
//! so: the tests never skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary, free_port};
use eventmesh_storage::{EventStore, StorageError, StorageResult};
use tempfile::TempDir;

use crate::{RocketOptions, RocketStore};

/// How long a starting process may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a new broker may take to register with the name server.
pub const REGISTERED_WITHIN: Duration = Duration::from_secs(60);
/// Log lines quoted by [`RocketBroker::log_tail`], per log.
const TAIL_LINES: usize = 40;

/// A broker binary: `~/.cargo/bin/<name>`, else the first on `PATH`. Panics naming
/// `scripts/install-brokers` when there is none.
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    find_binary(
        name,
        None,
        &[Place::CargoBin, Place::Path],
        "The RocketMQ tests run against a real name server and broker and do not skip. \
         Install them with scripts/install-brokers (cargo install --locked --version 1.0.0 \
         rocketmq-namesrv rocketmq-broker).",
    )
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

/// A private name server and broker, killed when dropped.
pub struct RocketBroker {
    ns_port: u16,
    /// The processes are declared before `dir`, the broker first: dropped (killed) in this order,
    /// before the directory is removed.
    broker: ChildProcess,
    namesrv: ChildProcess,
    dir: TempDir,
}

impl RocketBroker {
    /// Starts a name server and a broker on free ports in a fresh directory, and returns once
    /// both accept connections (the broker may not have registered with the name server yet:
    /// see [`open_store`] and [`RocketBroker::wait_registered`]). Panics when a binary is
    /// missing or a process does not start, with the end of its log.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-rocketmq-test-")
            .tempdir()
            .expect("temporary directory");
        let home = dir.path().to_path_buf();
        let (ns_port, broker_port, ha_port) = (free_port(), free_broker_port(), free_port());
        let mut namesrv = namesrv_process(&home, ns_port);
        let mut broker = broker_process(&home, ns_port, broker_port, ha_port);
        if let Err(e) = namesrv.spawn() {
            panic!("{e}");
        }
        if let Err(e) = broker.spawn() {
            panic!("{e}");
        }
        RocketBroker {
            ns_port,
            broker,
            namesrv,
            dir,
        }
    }

    /// The store URL (`rocketmq://127.0.0.1:<name server port>`), as `storage.url` and
    /// `eventmesh serve --store-url` take it.
    pub fn url(&self) -> String {
        format!("rocketmq://127.0.0.1:{}", self.ns_port)
    }

    /// The directory the name server and broker work and log in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The end of both logs, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- broker log ---\n{}\n--- namesrv log ---\n{}",
            self.broker.log_tail(TAIL_LINES),
            self.namesrv.log_tail(TAIL_LINES)
        )
    }

    /// SIGKILL of the broker (the name server stays).
    pub fn kill_broker(&mut self) {
        self.broker.kill();
    }

    /// Starts the broker again on the same ports and store.
    pub fn restart_broker(&mut self) {
        self.broker.start_again();
    }

    /// Blocks until the broker has registered with the name server, so that a store opened on
    /// [`url`](Self::url) right after (for example by an `eventmesh serve` process, which
    /// opens its store once) finds the cluster: opens a store (retrying while the cluster is
    /// unavailable, up to [`REGISTERED_WITHIN`]) and closes it. The store runs on a runtime of
    /// its own, on a thread of its own, so this may be called from synchronous tests and from
    /// async ones alike. Panics with the end of both logs if the broker does not register.
    pub fn wait_registered(&self) {
        let url = self.url();
        let opened = std::thread::spawn(move || -> StorageResult<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| StorageError::Backend(format!("a Tokio runtime: {e}")))?;
            rt.block_on(async {
                let store = open_store(test_options(&url)).await?;
                store.close().await
            })
        })
        .join();
        match opened {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "the RocketMQ broker did not register with its name server within {:?}: {e}\n{}",
                REGISTERED_WITHIN,
                self.log_tail()
            ),
            Err(_) => panic!(
                "waiting for the RocketMQ broker panicked\n{}",
                self.log_tail()
            ),
        }
    }
}

/// The name server on `ns_port`, with `home` as its RocketMQ home.
fn namesrv_process(home: &Path, ns_port: u16) -> ChildProcess {
    let bin = binary("rocketmq-namesrv-rust");
    let home = home.to_path_buf();
    ChildProcess::new(
        "rocketmq-namesrv-rust",
        home.join("namesrv.log"),
        move || {
            let mut cmd = Command::new(&bin);
            cmd.env("ROCKETMQ_HOME", &home)
                .arg("--listenPort")
                .arg(ns_port.to_string())
                .args(["--bindAddress", "127.0.0.1", "--rocketmqHome"])
                .arg(&home)
                .arg("--kvConfigPath")
                .arg(home.join("kvConfig.json"));
            cmd
        },
        Readiness::tcp(ns_port).within(READY_WITHIN),
    )
}

/// The broker on `port` (and `port - 2`, `ha_port`), registering with the name server on
/// `ns_port`, its store and config under `home` (the config is written here).
fn broker_process(home: &Path, ns_port: u16, port: u16, ha_port: u16) -> ChildProcess {
    let bin = binary("rocketmq-broker-rust");
    let store = home.join("store");
    let conf_dir = home.join("conf");
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    let conf = format!(
        r#"[broker]
namesrvAddr = "127.0.0.1:{ns_port}"
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
haListenPort = {ha_port}
mappedFileSizeCommitLog = 16777216
maxHashSlotNum = 1000
maxIndexNum = 4000
"#,
        store = store.display(),
    );
    let conf_path = conf_dir.join("broker.toml");
    std::fs::write(&conf_path, conf).expect("broker.toml");
    let home = home.to_path_buf();
    ChildProcess::new(
        "rocketmq-broker-rust",
        home.join("broker.log"),
        move || {
            let mut cmd = Command::new(&bin);
            cmd.env("ROCKETMQ_HOME", &home)
                .env("ROCKETMQ_SECURITY_PROFILE", "development-insecure-loopback")
                // Queue locks of a store that died free up after 4 s, not 60 (see
                // `test_options`' lock_renew).
                .env(
                    "rocketmq.broker.rebalance.lockMaxLiveTime",
                    LOCK_MAX_LIVE.as_millis().to_string(),
                )
                .arg("-c")
                .arg(&conf_path)
                .arg("-n")
                .arg(format!("127.0.0.1:{ns_port}"));
            cmd
        },
        Readiness::tcp(port).within(READY_WITHIN),
    )
}

/// How long the test broker keeps a queue lock that is not renewed.
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(4);

/// Store options for a test: a unique prefix, short timeouts, queue locks renewed every second
/// (the test broker lets them go after [`LOCK_MAX_LIVE`]).
pub fn test_options(url: &str) -> RocketOptions {
    let mut o = RocketOptions::new(url);
    o.prefix = format!("T{:08x}", rand::random::<u32>());
    o.request_timeout = Duration::from_secs(3);
    o.lock_renew = Duration::from_secs(1);
    o
}

/// Opens a store, retrying while the new broker has not yet registered with the name server
/// (the open fails as unavailable), up to [`REGISTERED_WITHIN`].
pub async fn open_store(opts: RocketOptions) -> StorageResult<RocketStore> {
    let deadline = Instant::now() + REGISTERED_WITHIN;
    loop {
        match RocketStore::open(opts.clone()).await {
            Err(StorageError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}
