//! Broker processes for integration tests: find the binary, pick a free loopback port, spawn the
//! process with its output in a log file, wait until it is ready (noticing an early exit), kill
//! it (SIGKILL) or stop it (SIGTERM), start it again on the same port and data, and kill it when
//! the handle is dropped.
//!
//! Each backend's `tests/common` describes its broker (the command line, the log file, how to
//! tell it is ready) and wraps a [`ChildProcess`]:
//!
//! ```ignore
//! use eventmesh_storage::testkit::process::{ChildProcess, Readiness};
//!
//! let (port, broker) = ChildProcess::spawn_on_free_port(5, |port| {
//!     let dir = dir.clone();
//!     ChildProcess::new(
//!         format!("my-broker on port {port}"),
//!         dir.join("broker.log"),
//!         move || {
//!             let mut cmd = std::process::Command::new("my-broker");
//!             cmd.arg("--port").arg(port.to_string()).arg("--data").arg(&dir);
//!             cmd
//!         },
//!         Readiness::tcp(port),
//!     )
//! })?;
//! ```
//!
//! Std only, blocking: an async test calls it through `spawn_blocking` or `block_in_place`. The
//! only sleeps are the short pauses between readiness checks and while waiting for an exit.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a stopped process may take to exit after SIGTERM before it is SIGKILLed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// The directories of [`Place::System`].
const SYSTEM_DIRS: [&str; 5] = [
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/sbin",
];
/// Log lines quoted in the error of a failed start.
const FAILURE_LOG_LINES: usize = 40;

/// A loopback port that was free a moment ago (the OS picks it). Another process can take it
/// before the broker binds it: [`ChildProcess::spawn_on_free_port`] tries a few.
///
/// Panics when no socket can be bound on 127.0.0.1 at all.
#[track_caller]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"))
}

/// Whether something accepts a TCP connection on `127.0.0.1:port` (within 200 ms).
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Connects to `127.0.0.1:port`, sends `request` (nothing if empty) and returns the first bytes
/// of the reply that arrive within 2 s; `None` if the connection fails or nothing arrives. For
/// probes: a NATS server greets with `INFO`, Redis answers `PING` with `+PONG`, an HTTP health
/// endpoint with `HTTP/1.1 200`.
pub fn tcp_exchange(port: u16, request: &[u8]) -> Option<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    if !request.is_empty() {
        stream.write_all(request).ok()?;
    }
    let mut buf = vec![0u8; 4096];
    match stream.read(&mut buf) {
        Ok(n) if n > 0 => {
            buf.truncate(n);
            Some(buf)
        }
        _ => None,
    }
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A place [`find_binary`] looks for a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `$CARGO_HOME/bin`, then `~/.cargo/bin` (where `cargo install` puts brokers).
    CargoBin,
    /// Every directory on `PATH`.
    Path,
    /// Where distribution packages put programs, `sbin` included (often not on a user's `PATH`):
    /// /usr/sbin, /usr/local/sbin, /usr/local/bin, /usr/bin, /sbin.
    System,
    /// One directory.
    Dir(&'static str),
}

/// The program `name`: the file named by the environment variable `env_var` if it is set (which
/// must exist), else the first `name` found in `places`, in order.
///
/// Panics when there is none, saying where it looked, followed by `install` (how to install it):
/// the broker tests never skip.
#[track_caller]
pub fn find_binary(name: &str, env_var: Option<&str>, places: &[Place], install: &str) -> PathBuf {
    if let Some(var) = env_var
        && let Some(p) = std::env::var_os(var)
    {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var} names {}, which does not exist. {install}",
            p.display()
        );
        return p;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for place in places {
        match place {
            Place::CargoBin => {
                dirs.extend(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")));
                dirs.extend(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
            }
            Place::Path => dirs.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
            Place::System => dirs.extend(SYSTEM_DIRS.map(PathBuf::from)),
            Place::Dir(d) => dirs.push(PathBuf::from(d)),
        }
    }
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return found;
    }
    let looked: Vec<String> = places
        .iter()
        .map(|place| match place {
            Place::CargoBin => "$CARGO_HOME/bin, ~/.cargo/bin".to_owned(),
            Place::Path => "PATH".to_owned(),
            Place::System => SYSTEM_DIRS.join(", "),
            Place::Dir(d) => (*d).to_owned(),
        })
        .collect();
    panic!(
        "{name} is not installed (looked in {}). {install}",
        looked.join(", ")
    );
}

/// A check that a started process is ready: what it waits for, how long it may take and how
/// often it is checked (by default within 30 s, every 20 ms).
pub struct Readiness {
    what: String,
    check: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    within: Duration,
    every: Duration,
}

impl Readiness {
    /// Ready once something accepts TCP connections on `127.0.0.1:port`.
    pub fn tcp(port: u16) -> Self {
        Self::probe(
            format!("accept connections on 127.0.0.1:{port}"),
            move || accepts(port),
        )
    }

    /// Ready once `probe` returns `true`. `what` completes "the process did not …" in messages
    /// ("answer PING on port 6380").
    pub fn probe(
        what: impl Into<String>,
        probe: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::check(what, move || {
            if probe() {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        })
    }

    /// Ready once `check` returns `Ok`; the last error is quoted if the deadline passes.
    pub fn check(
        what: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Readiness {
            what: what.into(),
            check: Box::new(check),
            within: Duration::from_secs(30),
            every: Duration::from_millis(20),
        }
    }

    /// The process must be ready within `deadline` of its start.
    #[must_use]
    pub fn within(mut self, deadline: Duration) -> Self {
        self.within = deadline;
        self
    }

    /// Checks every `pause` (after each failed check).
    #[must_use]
    pub fn polling_every(mut self, pause: Duration) -> Self {
        self.every = pause;
        self
    }
}

/// A child process that can be started, killed and started again from the same recipe, with
/// its stdout and stderr appended to a log file. Dropping it kills the process (SIGKILL).
pub struct ChildProcess {
    name: String,
    log: PathBuf,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    ready: Readiness,
    child: Option<Child>,
}

impl ChildProcess {
    /// A process named `name` in messages ("nats-server on port 4223"), logging to `log`,
    /// started by running what `command` builds (its stdin, stdout and stderr are set here), and
    /// ready when `ready` says so. Nothing is started yet.
    pub fn new(
        name: impl Into<String>,
        log: impl Into<PathBuf>,
        command: impl Fn() -> Command + Send + Sync + 'static,
        ready: Readiness,
    ) -> Self {
        ChildProcess {
            name: name.into(),
            log: log.into(),
            command: Box::new(command),
            ready,
            child: None,
        }
    }

    /// Builds a process for a free port with `make` and spawns it; if it does not start (the
    /// port was taken meanwhile, say), tries again on another port, `attempts` times in all.
    /// Returns the port and the running process, or the last attempt's error.
    pub fn spawn_on_free_port(
        attempts: usize,
        mut make: impl FnMut(u16) -> ChildProcess,
    ) -> Result<(u16, ChildProcess), String> {
        let mut last = String::new();
        for _ in 0..attempts.max(1) {
            let port = free_port();
            let mut process = make(port);
            match process.spawn() {
                Ok(()) => return Ok((port, process)),
                Err(e) => last = e,
            }
        }
        Err(format!(
            "{} attempt(s) on free ports failed, the last: {last}",
            attempts.max(1)
        ))
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// The OS process id, while started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process was started and not killed, stopped or found exited since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process and waits until it is ready. Does nothing if it is running already.
    /// On failure the process is not left running and the error names it, says why (an early
    /// exit with its status, or the readiness deadline) and quotes the end of the log.
    pub fn spawn(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch()?;
        self.wait_ready()
    }

    /// Starts the process without waiting for it to be ready (to start several that need each
    /// other, then [`wait_ready`](Self::wait_ready) on each). Does nothing if it is running.
    pub fn launch(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open the log {}: {e}", self.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file handle: {e}"))?;
        let mut cmd = (self.command)();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| {
                let program = cmd.get_program().to_string_lossy().into_owned();
                match e.kind() {
                    ErrorKind::NotFound => format!("cannot run {}: {program} not found", self.name),
                    _ => format!("cannot run {} ({program}): {e}", self.name),
                }
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the started process is ready. If it exits first, or the deadline passes (it
    /// is then killed), returns an error quoting the end of the log.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.ready.within;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(format!("{} is not running", self.name));
            };
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(self.failure(&format!("exited at start ({status})")));
            }
            let last = match (self.ready.check)() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                self.kill();
                return Err(self.failure(&format!(
                    "did not {} within {} s (last check: {last})",
                    self.ready.what,
                    self.ready.within.as_secs()
                )));
            }
            std::thread::sleep(self.ready.every);
        }
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{} {what}; log {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(FAILURE_LOG_LINES)
        )
    }

    /// Starts the process again with the same recipe (same port and data), after [`kill`],
    /// [`stop`] or an exit, and waits until it is ready. Does nothing if it is running.
    ///
    /// Panics with the reason and the end of the log if it does not come up.
    ///
    /// [`kill`]: Self::kill
    /// [`stop`]: Self::stop
    #[track_caller]
    pub fn start_again(&mut self) {
        if let Err(e) = self.spawn() {
            panic!("restarting {} failed: {e}", self.name);
        }
    }

    /// SIGKILL: the process dies at once, as in a crash. Waits for it; does nothing if it is not
    /// running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; SIGKILL if it has not exited after [`STOP_GRACE`].
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .stdin(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Waits for a process that was told to end some other way (a control tool, a signal to a
    /// process it started) to exit, and forgets it. `None` if it was not running.
    pub fn wait(&mut self) -> Option<ExitStatus> {
        self.child.take().and_then(|mut c| c.wait().ok())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn sh(dir: &Path, script: &'static str, ready: Readiness) -> ChildProcess {
        ChildProcess::new(
            "test shell",
            dir.join("sh.log"),
            move || {
                let mut c = Command::new("sh");
                c.args(["-c", script]);
                c
            },
            ready,
        )
    }

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "eventmesh-process-{label}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        dir
    }

    #[test]
    fn an_early_exit_is_reported_with_the_log() {
        let dir = temp_dir("exit");
        let mut p = sh(
            &dir,
            "echo broken config; exit 3",
            Readiness::probe("never", || false),
        );
        let err = p.spawn().expect_err("the process exits at once");
        assert!(err.contains("exited at start"), "{err}");
        assert!(err.contains("broken config"), "{err}");
        assert!(!p.is_running());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missed_deadline_kills_the_process() {
        let dir = temp_dir("deadline");
        let mut p = sh(
            &dir,
            "sleep 30",
            Readiness::probe("say hello", || false).within(Duration::from_millis(200)),
        );
        let err = p.spawn().expect_err("never ready");
        assert!(err.contains("did not say hello within"), "{err}");
        assert!(!p.is_running());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn kill_stop_and_start_again() {
        let dir = temp_dir("restart");
        // Ready once this start's "up" is in the log: one more line than at the last start.
        let (log, starts) = (dir.join("sh.log"), AtomicUsize::new(0));
        let ready = Readiness::probe("say up", move || {
            let lines = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count();
            let ready = lines > starts.load(Ordering::SeqCst);
            if ready {
                starts.fetch_add(1, Ordering::SeqCst);
            }
            ready
        });
        let mut p = sh(&dir, "echo up; exec sleep 30", ready);
        p.spawn().expect("starts");
        let first = p.pid().expect("a pid");
        p.kill();
        assert!(!p.is_running());
        p.start_again();
        assert_ne!(p.pid(), Some(first));
        p.stop();
        assert!(!p.is_running() && p.pid().is_none());
        assert_eq!(p.log_tail(5), "up\nup");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn probes_see_a_listener_and_its_reply() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("address").port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = l.accept().expect("accept");
                let mut buf = [0u8; 16];
                let n = s.read(&mut buf).unwrap_or(0);
                if &buf[..n] == b"PING\r\n" {
                    let _ = s.write_all(b"+PONG\r\n");
                }
            }
        });
        assert!(accepts(port));
        assert_eq!(
            tcp_exchange(port, b"PING\r\n").as_deref(),
            Some(&b"+PONG\r\n"[..])
        );
        server.join().expect("the test server");
    }
}
