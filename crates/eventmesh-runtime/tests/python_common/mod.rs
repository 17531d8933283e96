//! Running the third-party Python clients of `scripts/` against a node under test.
//!
//! The Python is `EVENTMESH_PYTHON`, else the venv `scripts/install-deps` makes
//! (`/var/tmp/eventmesh-py-venv`), else `python3`: the first that can import what the script
//! needs. When none can, the test says so and passes, unless `EVENTMESH_REQUIRE_PYTHON` is set.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The first Python that can run `import {modules}`; `None` (after saying so, or panicking when
/// `EVENTMESH_REQUIRE_PYTHON` is set) when none can.
pub fn python_with(modules: &str, hint: &str) -> Option<String> {
    let candidates = std::env::var("EVENTMESH_PYTHON").ok().into_iter().chain([
        "/var/tmp/eventmesh-py-venv/bin/python".to_owned(),
        "python3".to_owned(),
    ]);
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", &format!("import {modules}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        eprintln!("SKIPPED: no Python can `import {modules}` (set EVENTMESH_PYTHON, or {hint})");
        if std::env::var("EVENTMESH_REQUIRE_PYTHON").is_ok() {
            panic!("EVENTMESH_REQUIRE_PYTHON is set but no Python can `import {modules}`");
        }
    }
    found
}

/// Runs `scripts/{script}` with `python` and `args` (the scripts bound their own waits) and
/// asserts that it exits 0 and prints `expect`.
pub async fn run_script(python: &str, script: &str, args: Vec<String>, expect: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(script);
    let python = python.to_owned();
    let out =
        tokio::task::spawn_blocking(move || Command::new(&python).arg(&path).args(&args).output())
            .await
            .expect("the script's task")
            .expect("the Python interpreter runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(expect),
        "{script}: status {:?}, expected {expect:?} in its output\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
