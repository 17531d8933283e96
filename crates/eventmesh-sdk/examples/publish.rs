//! Publishes a few events to `demo-topic` on a runtime at 127.0.0.1:10000 (or the address given
//! as the first argument).
//!
//! ```sh
//! cargo run -p eventmesh --release -- serve          # in another terminal
//! cargo run -p eventmesh-sdk --example publish
//! ```

use eventmesh_sdk::{Client, ClientConfig, DEFAULT_ADDRESS, text_event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let config = ClientConfig::builder(address, "demo-publisher").build()?;
    let client = Client::connect(config).await?;
    for i in 0..5 {
        // Returns once the runtime has stored the event.
        client
            .publish("demo-topic", text_event(format!("hello #{i}")))
            .await?;
        println!("published hello #{i}");
    }
    // Every subscribing group's members get it (BROADCASTING), whatever the command; this is
    // the Java SDK's `broadcast`.
    client
        .broadcast("demo-topic", text_event("hello, everyone"))
        .await?;
    client.close().await;
    Ok(())
}
