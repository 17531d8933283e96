//! A third-party gRPC client against the gRPC server: Python grpcio with stubs that grpcio-tools
//! generates from our `.proto` files runs `scripts/interop/grpc_python_client.py` (subscribe a
//! stream, publish, batch publish, heartbeats, bad input, the legacy package). It shares no code
//! with the server or the SDK. Needs a Python with `grpcio` and `grpcio-tools` (see
//! [`python_common`] for which Python, and what happens without one).

mod grpc_common;
mod python_common;

use grpc_common::*;
use python_common::{python_with, run_script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_interoperate_with_python_grpcio() {
    let Some(python) = python_with("grpc, grpc_tools", "run scripts/install-deps") else {
        return;
    };
    let (h, _dir) = start(|c| c.storage.kind = eventmesh_config::StorageKind::Memory).await;
    let addr = h.grpc_addr().expect("gRPC is enabled").to_string();
    run_script(
        &python,
        "interop/grpc_python_client.py",
        vec!["--addr".into(), addr],
        "checks passed",
    )
    .await;
    h.shutdown().await;
}
