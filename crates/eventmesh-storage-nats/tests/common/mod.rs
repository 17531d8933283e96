//! Test harness: a private `nats-server` with JetStream per test, on a free loopback port, in a
//! temporary directory, never the machine's shared server on 4222.
//!
//! The tests need the `nats-server` binary (Debian: `apt-get install nats-server`, which puts it
//! in /usr/sbin; `scripts/install-deps` does it). Without it they fail, loudly: they never skip.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::testkit::process::{
    ChildProcess, Place, Readiness, find_binary, tcp_exchange,
};
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_nats::{NatsOptions, NatsStore};
use parking_lot::Mutex;
use tempfile::TempDir;

/// How long a starting server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// The `nats-server` binary: `$NATS_SERVER`, else the first found on `PATH` or in the system
/// directories (/usr/sbin, ...). Panics with the install command when there is none.
pub fn nats_server_binary() -> PathBuf {
    find_binary(
        "nats-server",
        Some("NATS_SERVER"),
        &[Place::Path, Place::System],
        "The NATS store tests run against a real broker and do not skip. Install it with \
         `apt-get install nats-server` (or run scripts/install-deps), or point NATS_SERVER at the binary.",
    )
}

/// One private nats-server with JetStream, killed when dropped.
pub struct NatsServer {
    port: u16,
    /// Declared before `dir`: killed before its directory is removed.
    process: ChildProcess,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory, waiting until it accepts
    /// connections and greets them with INFO.
    pub fn start() -> Self {
        let bin = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("eventmesh-nats-test-")
            .tempdir()
            .expect("temporary directory");
        std::fs::write(
            dir.path().join("nats.conf"),
            "# Room for the mesh's 4 MiB events.\nmax_payload: 8MB\n",
        )
        .expect("write nats.conf");
        let root = dir.path().to_path_buf();
        let (port, process) =
            ChildProcess::spawn_on_free_port(5, |port| nats_process(&bin, &root, port))
                .unwrap_or_else(|e| panic!("nats-server did not start: {e}"));
        NatsServer { port, process, dir }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail(30)
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the server again on the same port and store directory (after `kill` or `stop`).
    pub fn start_again(&mut self) {
        self.process.start_again();
    }

    /// A graceful restart: `stop`, then `start_again`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// nats-server with JetStream on `port`, its store and config in `dir`, ready once it greets a
/// client with INFO.
fn nats_process(bin: &Path, dir: &Path, port: u16) -> ChildProcess {
    let (bin, dir) = (bin.to_path_buf(), dir.to_path_buf());
    let ready = Readiness::probe(
        format!("greet a client with INFO on port {port}"),
        move || tcp_exchange(port, b"").is_some_and(|reply| reply.starts_with(b"INFO")),
    )
    .within(READY_WITHIN);
    ChildProcess::new(
        format!("nats-server on port {port}"),
        dir.join("nats.log"),
        move || {
            let mut cmd = Command::new(&bin);
            cmd.args(["-js", "-a", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .arg("-sd")
                .arg(dir.join("jetstream"))
                .arg("-c")
                .arg(dir.join("nats.conf"));
            cmd
        },
        ready,
    )
}

/// Store options for a test against `url`: a unique stream prefix, a short crash lease.
pub fn test_options(url: &str) -> NatsOptions {
    let mut o = NatsOptions::new(url);
    o.stream_prefix = format!("T{:08x}", rand_u32());
    o.ack_wait = Duration::from_secs(5);
    o.request_timeout = Duration::from_secs(3);
    o.max_reconnect_backoff = Duration::from_millis(250);
    o
}

fn rand_u32() -> u32 {
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

/// The conformance kit's factory: its own nats-server; every open after the first restarts
/// that server gracefully (same port, same store directory), so the restart scenario checks
/// what a broker restart keeps.
pub struct NatsFactory {
    server: Arc<Mutex<NatsServer>>,
    opts: NatsOptions,
    opens: AtomicUsize,
}

impl NatsFactory {
    pub fn start() -> Self {
        let server = NatsServer::start();
        let opts = test_options(&server.url());
        NatsFactory {
            server: Arc::new(Mutex::new(server)),
            opts,
            opens: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl StoreFactory for NatsFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        if self.opens.fetch_add(1, Ordering::SeqCst) > 0 {
            let server = self.server.clone();
            tokio::task::spawn_blocking(move || server.lock().restart())
                .await
                .expect("restart task");
        }
        Ok(Arc::new(NatsStore::connect(self.opts.clone()).await?))
    }

    fn durable(&self) -> bool {
        true
    }
}
