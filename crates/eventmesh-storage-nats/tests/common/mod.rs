//! Test harness: a private `nats-server` with JetStream per test, on a free loopback port, in a
//! temporary directory, never the machine's shared server on 4222.
//!
//! The tests need the `nats-server` binary (Debian: `apt-get install nats-server`, which puts it
//! in /usr/sbin; `scripts/install-deps` does it). Without it they fail, loudly: they never skip.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_nats::{NatsOptions, NatsStore};
use parking_lot::Mutex;
use tempfile::TempDir;

/// How long a starting server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// The `nats-server` binary: `$NATS_SERVER`, else the first found on `PATH`, /usr/sbin,
/// /usr/local/bin, /usr/bin. Panics with the install command when there is none.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "NATS_SERVER names {}, which does not exist: the NATS store tests need a nats-server binary and do not skip",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/bin", "/usr/bin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let candidate = d.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server is not installed (looked on PATH and in /usr/sbin, /usr/local/bin, /usr/bin): \
         the NATS store tests run against a real broker and do not skip. Install it with \
         `apt-get install nats-server` (or run scripts/install-deps), or point NATS_SERVER at the binary."
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local address").port()
}

/// One private nats-server with JetStream, killed when dropped.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    starts: usize,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory, waiting until it accepts
    /// connections.
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
        let mut s = NatsServer {
            bin,
            port: free_port(),
            dir,
            child: None,
            starts: 0,
        };
        let mut last = String::new();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            match s.spawn() {
                Ok(()) => return s,
                Err(e) => {
                    last = e;
                    s.port = free_port();
                }
            }
        }
        panic!("nats-server did not start: {last}");
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

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// The server's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open the server log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store_dir())
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready()
    }

    /// Waits until the server accepts a connection and greets it with INFO.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "nats-server exited at start ({status}) on port {}; log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nats-server on port {} did not accept connections within {} s; log:\n{}",
                    self.port,
                    READY_WITHIN.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the server dies at once, as in a crash.
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

    /// Starts the server again on the same port and store directory (after `kill` or `stop`).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        if let Err(e) = self.spawn() {
            panic!("restarting nats-server failed: {e}");
        }
    }

    /// A graceful restart: `stop`, then `start_again`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
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
