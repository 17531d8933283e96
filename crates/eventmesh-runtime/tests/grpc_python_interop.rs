//! A third-party gRPC client against the gRPC server: Python grpcio with stubs that grpcio-tools
//! generates from our `.proto` files runs `scripts/interop/grpc_python_client.py` (subscribe a
//! stream, publish, batch publish, heartbeats, bad input, the legacy package). It shares no code
//! with the server or the SDK. Needs a Python with `grpcio` and `grpcio-tools`:
//! `EVENTMESH_PYTHON`, else the venv `scripts/install-deps` makes (`/var/tmp/eventmesh-py-venv`),
//! else `python3`. When none has them the test says so and passes, unless
//! `EVENTMESH_REQUIRE_PYTHON` is set.

mod grpc_common;

use std::path::PathBuf;
use std::process::Stdio;

use grpc_common::*;

fn python() -> Option<String> {
    let candidates = std::env::var("EVENTMESH_PYTHON").ok().into_iter().chain([
        "/var/tmp/eventmesh-py-venv/bin/python".to_owned(),
        "python3".to_owned(),
    ]);
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import grpc, grpc_tools"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_interoperate_with_python_grpcio() {
    let Some(python) = python() else {
        eprintln!(
            "SKIPPED: no Python with `grpcio` and `grpcio-tools` (set EVENTMESH_PYTHON, or run scripts/install-deps)"
        );
        if std::env::var("EVENTMESH_REQUIRE_PYTHON").is_ok() {
            panic!("EVENTMESH_REQUIRE_PYTHON is set but no Python with grpcio was found");
        }
        return;
    };
    let (h, _dir) = start(|c| c.storage.kind = eventmesh_config::StorageKind::Memory).await;
    let addr = h.grpc_addr().expect("gRPC is enabled").to_string();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/interop/grpc_python_client.py");
    // The script bounds each of its waits.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .args(["--addr", &addr])
            .output()
    })
    .await
    .expect("the script's task")
    .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("checks passed"),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    h.shutdown().await;
}
