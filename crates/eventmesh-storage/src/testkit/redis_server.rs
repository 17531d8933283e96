//! A private `redis-server` for tests: the one recipe the Redis store's tests, the runtime's and
//! the binary's tests share (a free loopback port, the AOF and the log in a test directory,
//! ready once it answers `PING` with `PONG`, not `-LOADING` while it replays its AOF).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{ChildProcess, Place, Readiness, find_binary, tcp_exchange};

/// How long a redis-server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// When redis-server syncs its append-only file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFsync {
    /// Before answering each write (`appendfsync always`): nothing acknowledged is lost.
    Always,
    /// Once a second (`appendfsync everysec`), as production setups often run it.
    EverySec,
}

impl AppendFsync {
    fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::EverySec => "everysec",
        }
    }
}

/// The redis-server binary (on `PATH` or in the system directories); panics saying how to
/// install it when there is none.
pub fn redis_server_binary() -> PathBuf {
    find_binary(
        "redis-server",
        None,
        &[Place::Path, Place::System],
        "These tests run their own redis-server; install it with scripts/install-deps \
         (apt-get install redis-server).",
    )
}

/// A redis-server on `port` with its AOF (`appendonly yes`, `fsync`) and its log in `dir`, not
/// started yet; [`ChildProcess::spawn`] starts it and waits for PONG. Starting it again after a
/// kill keeps the port and the data.
pub fn redis_server(bin: &Path, dir: &Path, port: u16, fsync: AppendFsync) -> ChildProcess {
    let (bin, dir) = (bin.to_path_buf(), dir.to_path_buf());
    let ready = Readiness::probe(format!("answer PING with PONG on port {port}"), move || {
        tcp_exchange(port, b"PING\r\n").is_some_and(|reply| reply.starts_with(b"+PONG"))
    })
    .within(START_TIMEOUT)
    .polling_every(Duration::from_millis(5));
    ChildProcess::new(
        format!("redis-server on port {port}"),
        dir.join("redis-server.log"),
        move || {
            let mut cmd = Command::new(&bin);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
                .arg(&dir)
                .args(["--appendonly", "yes", "--appendfsync", fsync.as_str()])
                .args(["--save", "", "--protected-mode", "no"]);
            cmd
        },
        ready,
    )
}

/// Starts a redis-server on a free port (another is tried when the port is taken before
/// redis-server binds it) with its data and log in `dir`; killed when the returned process is
/// dropped. Blocking. Panics with the end of its log if it does not start.
pub fn start_redis_server(dir: &Path, fsync: AppendFsync) -> (u16, ChildProcess) {
    let bin = redis_server_binary();
    ChildProcess::spawn_on_free_port(5, |port| redis_server(&bin, dir, port, fsync))
        .unwrap_or_else(|e| panic!("redis-server did not start: {e}"))
}
