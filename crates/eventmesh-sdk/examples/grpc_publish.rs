//! Publishes over gRPC: one event, a batch, a one-way event, and a request.
//!
//! ```sh
//! cargo run -p eventmesh -- serve &
//! cargo run -p eventmesh-sdk --features grpc --example grpc_subscribe &
//! cargo run -p eventmesh-sdk --features grpc --example grpc_publish
//! ```

use std::time::Duration;

use eventmesh_sdk::grpc::{GrpcConfig, GrpcError, GrpcPublisher};
use eventmesh_sdk::text_event;

#[tokio::main]
async fn main() -> Result<(), GrpcError> {
    let endpoint =
        std::env::var("EVENTMESH_GRPC").unwrap_or_else(|_| "http://127.0.0.1:10205".to_owned());
    let publisher = GrpcPublisher::connect(GrpcConfig::new(endpoint, "demo-producer")).await?;
    publisher
        .publish("demo-topic", text_event("hello over gRPC"))
        .await?;
    publisher
        .publish_batch("demo-topic", &[text_event("one"), text_event("two")])
        .await?;
    publisher
        .publish_one_way("demo-topic", text_event("fire and forget"))
        .await?;
    match publisher
        .request_reply("demo-rpc", text_event("ping"), Duration::from_secs(3))
        .await
    {
        Ok(reply) => println!(
            "reply: {}",
            String::from_utf8_lossy(reply.data.as_deref().unwrap_or_default())
        ),
        Err(e) => println!("no reply (is grpc_subscribe running?): {e}"),
    }
    Ok(())
}
