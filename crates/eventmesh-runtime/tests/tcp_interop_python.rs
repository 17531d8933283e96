//! The TCP server against an independent client: `scripts/interop/tcp_raw_client.py`, written
//! from the protocol reference with the Python standard library only (it shares no code with our
//! codec, so it cannot share our misreadings). Needs `python3`; without it the test fails.

mod tcp_common;

use std::path::PathBuf;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_python_client_passes_every_check() {
    let (node, _dir) = tcp_common::start(|_| {}).await;
    let addr = node.tcp_addr().expect("TCP is enabled");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interop/tcp_raw_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .arg("--addr")
            .arg(addr.to_string())
            .output()
    })
    .await
    .expect("the blocking task")
    .expect("python3 runs (install it: apt-get install python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("7 of 7 checks passed"),
        "unexpected report:\n{stdout}"
    );
    node.shutdown().await;
}
