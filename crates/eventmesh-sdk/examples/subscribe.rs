//! Subscribes to `demo-topic` in group `demo-group` on a runtime at 127.0.0.1:10000 (or the
//! address given as the first argument) and prints events until Ctrl-C. Run two of them to see
//! the group share the topic.
//!
//! ```sh
//! cargo run -p eventmesh-sdk --example subscribe
//! ```

use eventmesh_sdk::{
    Client, ClientConfig, DEFAULT_ADDRESS, Delivery, Purpose, SubscriptionMode, SubscriptionType,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let config = ClientConfig::builder(address, "demo-group")
        .purpose(Purpose::Sub)
        .build()?;
    let client = Client::connect(config).await?;
    client
        .subscribe(
            "demo-topic",
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
            |delivery: Delivery| async move {
                let data = delivery.event.data.as_deref().unwrap_or_default();
                println!("{}: {}", delivery.event.id, String::from_utf8_lossy(data));
                // Ok acknowledges; an Err would leave the event to be delivered again.
                Ok(())
            },
        )
        .await?;
    println!("subscribed; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    // Finishes the event in hand, acks it, says goodbye.
    client.close().await;
    Ok(())
}
