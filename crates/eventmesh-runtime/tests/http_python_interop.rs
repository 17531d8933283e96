//! A third-party CloudEvents client against the HTTP server: the Python `cloudevents` SDK runs
//! `scripts/http-cloudevents-interop.py` (binary, structured and batched publishes, binary
//! pushes parsed by the SDK). Needs a Python with `cloudevents` 2.x: `EVENTMESH_PYTHON`, else
//! the venv `scripts/install-deps` makes (`/var/tmp/eventmesh-py-venv`), else `python3`. When
//! none has the SDK the test says so and passes; `scripts/http-interop` makes the venv and runs
//! this test, requiring it.

mod http_common;

use std::path::PathBuf;
use std::process::Stdio;

use http_common::*;

fn python() -> Option<String> {
    let candidates = std::env::var("EVENTMESH_PYTHON").ok().into_iter().chain([
        "/var/tmp/eventmesh-py-venv/bin/python".to_owned(),
        "python3".to_owned(),
    ]);
    for p in candidates {
        let ok = std::process::Command::new(&p)
            .args(["-c", "import cloudevents.v1.http"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    None
}

#[tokio::test]
async fn should_interoperate_with_the_python_cloudevents_sdk() {
    let Some(python) = python() else {
        eprintln!(
            "SKIPPED: no Python with the `cloudevents` package (set EVENTMESH_PYTHON, or run scripts/http-interop)"
        );
        if std::env::var("EVENTMESH_REQUIRE_PYTHON").is_ok() {
            panic!("EVENTMESH_REQUIRE_PYTHON is set but no Python with cloudevents was found");
        }
        return;
    };
    let (h, _dir) = start(|_| {}).await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/http-cloudevents-interop.py");
    let base = base(&h);
    // The script bounds its own waits (15 s).
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(base)
            .output()
    })
    .await
    .expect("the script's task")
    .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    h.shutdown().await;
}
