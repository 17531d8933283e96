//! Publishes events over HTTP: `cargo run -p eventmesh-sdk --example http_publish [BASE_URL]`
//! (default `http://127.0.0.1:10105`), in the request-code protocol, then as CloudEvents, then a
//! batch.

use eventmesh_sdk::http::{HttpConfig, HttpMode, HttpPublisher};
use eventmesh_sdk::text_event;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:10105".to_owned());
    let config = HttpConfig::new(base).producer_group("example-pub");
    let legacy = HttpPublisher::new(config.clone())?;
    legacy
        .publish("example-topic", text_event("hello over code 104"))
        .await?;
    let binding = HttpPublisher::new(config.mode(HttpMode::CloudEvents))?;
    binding
        .publish("example-topic", text_event("hello as a CloudEvent"))
        .await?;
    binding
        .publish_batch("example-topic", vec![text_event("one"), text_event("two")])
        .await?;
    println!("published 4 events to example-topic");
    Ok(())
}
