//! The SDK side of the gRPC server tests: publishers, subscribers that forward each delivery
//! to a channel, and waiting for what is expected (at most [`WAIT`]).

use std::time::Duration;

use eventmesh_core::{CloudEvent, SubscriptionMode, SubscriptionType};
use eventmesh_runtime::RuntimeHandle;
use eventmesh_sdk::grpc::{GrpcConfig, GrpcDelivery, GrpcPublisher, GrpcSubscriber};
use tokio::sync::mpsc;

use super::{WAIT, sdk};

/// The data of `e` as text.
pub fn text_of(e: &CloudEvent) -> String {
    String::from_utf8_lossy(e.data.as_deref().unwrap_or_default()).into_owned()
}

/// An SDK publisher of the node, in `group`.
pub async fn publisher(h: &RuntimeHandle, group: &str) -> GrpcPublisher {
    GrpcPublisher::connect(sdk(h, group))
        .await
        .expect("connects")
}

/// An ASYNC subscriber of `topic` (with `filter` if any) that forwards every delivery to `tx`
/// and acks it.
pub async fn forwarding(
    config: GrpcConfig,
    topic: &str,
    mode: SubscriptionMode,
    filter: Option<&str>,
    tx: mpsc::Sender<GrpcDelivery>,
) -> GrpcSubscriber {
    let items = vec![(topic.to_owned(), mode, SubscriptionType::Async)];
    GrpcSubscriber::start_filtered(config, items, filter, move |d| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(d).await;
            Ok(None)
        }
    })
    .await
    .expect("subscribed")
}

/// [`forwarding`] without a filter, to a channel of its own.
pub async fn collecting(
    config: GrpcConfig,
    topic: &str,
    mode: SubscriptionMode,
) -> (GrpcSubscriber, mpsc::Receiver<GrpcDelivery>) {
    let (tx, rx) = mpsc::channel(1000);
    (forwarding(config, topic, mode, None, tx).await, rx)
}

/// The next item of `rx`, which must come within [`WAIT`].
pub async fn recv_in_time<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

/// Waits until `cond` holds (checked every 10 ms, at most [`WAIT`]).
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
