//! A third-party CloudEvents client against the HTTP server: the Python `cloudevents` SDK runs
//! `scripts/http-cloudevents-interop.py` (binary, structured and batched publishes, binary
//! pushes parsed by the SDK). Needs a Python with `cloudevents` 2.x (see [`python_common`] for
//! which Python, and what happens without one); `scripts/http-interop` makes the venv and runs
//! this test, requiring it.

mod http_common;
mod python_common;

use http_common::*;
use python_common::{python_with, run_script};

#[tokio::test]
async fn should_interoperate_with_the_python_cloudevents_sdk() {
    let Some(python) = python_with("cloudevents.v1.http", "run scripts/http-interop") else {
        return;
    };
    let (h, _dir) = start(|_| {}).await;
    run_script(&python, "http-cloudevents-interop.py", vec![base(&h)], "OK").await;
    h.shutdown().await;
}
