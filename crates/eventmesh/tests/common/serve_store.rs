//! `eventmesh serve` (the real binary) in front of a real broker, with `eventmesh sub` and
//! `eventmesh pub` as its clients.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;

use eventmesh_storage::testkit::process::free_port;

use super::{Sub, eventmesh, lines, pub_lines, wait_exit, wait_for};

/// A running `eventmesh serve --store …`, killed when dropped (a failing test leaves none behind).
pub struct Serve {
    child: Child,
    /// Its TCP protocol address.
    pub tcp: String,
    /// Its log lines after `Node ready.`.
    pub log: mpsc::Receiver<String>,
}

impl Serve {
    /// Starts `serve --store <store> --store-url <url>` with its data in `data_dir`, the TCP
    /// listener on a free port and the others on port 0, and waits for `Node ready.`; asserts
    /// that the log said `opened` (the store's own line) before. `context` adds the broker's side
    /// to a failure.
    pub fn start(
        store: &str,
        url: &str,
        data_dir: &Path,
        opened: &str,
        context: &dyn Fn() -> String,
    ) -> Serve {
        let tcp = format!("127.0.0.1:{}", free_port());
        let mut child = eventmesh(&[
            "serve",
            "--store",
            store,
            "--store-url",
            url,
            "--data-dir",
            &data_dir.display().to_string(),
            "--admin-listen",
            "127.0.0.1:0",
            "--tcp-listen",
            &tcp,
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .env("EVENTMESH_LOG__LEVEL", "info")
        // The RocketMQ test broker lets queue locks go after 4 s: renew them well within that.
        .env("EVENTMESH_STORAGE__ROCKETMQ__LOCK_RENEW", "1s")
        .spawn()
        .expect("start serve");
        let log = lines(child.stderr.take().expect("stderr"));
        let serve = Serve { child, tcp, log };
        let seen = wait_for(&serve.log, "Node ready.");
        assert!(
            seen.iter().any(|l| l.contains(opened)),
            "{seen:#?}\n{}",
            context()
        );
        serve
    }

    /// SIGTERM, then asserts a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "serve did not stop cleanly: {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `sub --count <n> --json` on `topic` for `group`, then `pub -` with `events` one per line on
/// stdin; returns the data the subscriber printed, in its order.
pub fn carry(
    serve: &Serve,
    topic: &str,
    group: &str,
    events: &[&str],
    context: &dyn Fn() -> String,
) -> Vec<String> {
    let count = events.len().to_string();
    let sub = Sub::start(&[
        "sub", "--server", &serve.tcp, "--topic", topic, "--group", group, "--count", &count,
        "--json",
    ]);
    pub_lines(&serve.tcp, topic, events, context);
    sub.printed_or(&|| {
        format!(
            "serve: {:?}\n{}",
            serve.log.try_iter().collect::<Vec<_>>(),
            context()
        )
    })
    .iter()
    .map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        v["data"].as_str().expect("text data").to_owned()
    })
    .collect()
}
