//! An `eventmesh serve` child process with every listener on port 0, JSON logs collected as they
//! come (so its stderr never fills), its TCP address read from the log; SIGKILL on demand, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{PATIENCE, eventmesh};

pub struct MeshProcess {
    /// A name for messages (`A`, `B`).
    pub name: String,
    /// The TCP protocol address.
    pub tcp: String,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl MeshProcess {
    /// Starts a node with `config` (TOML) as its configuration file and waits until it is ready.
    pub fn start(name: &str, config: &str) -> MeshProcess {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config_path = dir.path().join("eventmesh.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let data = dir.path().join("data");
        let any = "127.0.0.1:0";
        let mut cmd = eventmesh(&[
            "serve",
            "--config",
            &config_path.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--admin-listen",
            any,
            "--tcp-listen",
            any,
            "--http-listen",
            any,
            "--grpc-listen",
            any,
        ]);
        cmd.env("EVENTMESH_LOG__FORMAT", "json");
        let mut child = cmd.spawn().expect("spawn eventmesh serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let mut node = MeshProcess {
            name: name.to_owned(),
            tcp: String::new(),
            child: Some(child),
            log,
            _dir: dir,
        };
        let line = node.wait_for_line("TCP server listening.");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("node {name}: a log line that is not JSON ({e}): {line}"));
        node.tcp = v["addr"]
            .as_str()
            .unwrap_or_else(|| panic!("node {name}: no addr in {line}"))
            .to_owned();
        node.wait_for_line("Node ready.");
        node
    }

    /// Waits for a log line containing `needle`; panics with the log when the node exits first or
    /// after [`PATIENCE`].
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            assert!(
                !exited && Instant::now() < deadline,
                "node {}: no log line with {needle:?} (exited: {exited}); log:\n{}",
                self.name,
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last lines the node logged.
    pub fn log_tail(&self) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL: the node dies at once, without draining.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MeshProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
