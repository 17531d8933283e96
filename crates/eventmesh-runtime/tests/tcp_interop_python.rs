//! The TCP server against an independent client: `scripts/interop/tcp_raw_client.py`, written
//! from the protocol reference with the Python standard library only (it shares no code with our
//! codec, so it cannot share our misreadings). Needs `python3`; without it the test fails.

mod python_common;
mod tcp_common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_python_client_passes_every_check() {
    let (node, _dir) = tcp_common::start(|_| {}).await;
    let addr = node.tcp_addr().expect("TCP is enabled");
    python_common::run_script(
        "python3",
        "interop/tcp_raw_client.py",
        vec!["--addr".into(), addr.to_string()],
        "7 of 7 checks passed",
    )
    .await;
    node.shutdown().await;
}
