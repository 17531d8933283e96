//! Request-reply on `demo-rpc`: a responder (a SYNC subscription whose handler returns the
//! reply) and a requester, both against a runtime at 127.0.0.1:10000 (or the address given as
//! the first argument).
//!
//! ```sh
//! cargo run -p eventmesh-sdk --example request_reply
//! ```

use std::time::Duration;

use eventmesh_sdk::{
    Client, ClientConfig, DEFAULT_ADDRESS, Delivery, Purpose, SubscriptionMode, SubscriptionType,
    text_event,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());

    let responder = Client::connect(
        ClientConfig::builder(address.clone(), "demo-responders")
            .purpose(Purpose::Sub)
            .build()?,
    )
    .await?;
    responder
        .subscribe(
            "demo-rpc",
            SubscriptionMode::Clustering,
            SubscriptionType::Sync,
            |request: Delivery| async move {
                let text =
                    String::from_utf8_lossy(request.event.data.as_deref().unwrap_or_default())
                        .to_uppercase();
                // The returned event is the reply (the request is acked after it is sent).
                Ok(text_event(text))
            },
        )
        .await?;

    let requester =
        Client::connect(ClientConfig::builder(address, "demo-requesters").build()?).await?;
    let reply = requester
        .request("demo-rpc", text_event("ping"), Duration::from_secs(3))
        .await?;
    println!(
        "reply: {}",
        String::from_utf8_lossy(reply.data.as_deref().unwrap_or_default())
    );
    requester.close().await;
    responder.close().await;
    Ok(())
}
