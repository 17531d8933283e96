//! Subscribes over gRPC: prints the events of `demo-topic` and answers requests on `demo-rpc`.
//! Events are acknowledged after the handler returns; heartbeats and resubscribing after a
//! server restart are automatic.
//!
//! ```sh
//! cargo run -p eventmesh-sdk --features grpc --example grpc_subscribe
//! ```

use eventmesh_sdk::grpc::{GrpcConfig, GrpcError, GrpcSubscriber};
use eventmesh_sdk::{SubscriptionMode, SubscriptionType, text_event};

#[tokio::main]
async fn main() -> Result<(), GrpcError> {
    let endpoint =
        std::env::var("EVENTMESH_GRPC").unwrap_or_else(|_| "http://127.0.0.1:10205".to_owned());
    let config = GrpcConfig::new(endpoint, "demo-consumer");
    let events = GrpcSubscriber::start(
        config.clone(),
        vec![(
            "demo-topic".into(),
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
        )],
        |d| async move {
            println!(
                "{}: {}",
                d.topic,
                String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
            );
            Ok(None)
        },
    )
    .await?;
    let rpc = GrpcSubscriber::start(
        config,
        vec![(
            "demo-rpc".into(),
            SubscriptionMode::Clustering,
            SubscriptionType::Sync,
        )],
        |d| async move {
            let question = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default());
            Ok(Some(text_event(format!("pong to {question}"))))
        },
    )
    .await?;
    println!("subscribed; Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    events.close().await;
    rpc.close().await;
    Ok(())
}
