//! A webhook subscriber: `cargo run -p eventmesh-sdk --example http_subscribe [BASE_URL]`
//! (default `http://127.0.0.1:10105`). Serves a webhook on a free local port, subscribes it to
//! `example-topic`, heart-beats, and prints each event until Ctrl-C.

use eventmesh_sdk::http::{HttpConfig, HttpSubscriber, PushedEvent};
use eventmesh_sdk::{SubscriptionMode, SubscriptionType};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:10105".to_owned());
    let config = HttpConfig::new(base).consumer_group("example-group");
    let subscriber = HttpSubscriber::start(
        config,
        "127.0.0.1:0".parse()?,
        |e: PushedEvent| async move {
            let data =
                String::from_utf8_lossy(e.event.data.as_deref().unwrap_or_default()).into_owned();
            println!("{} {}: {data}", e.topic, e.event.id);
            Ok::<_, String>(None)
        },
    )
    .await?;
    subscriber
        .subscribe(
            "example-topic",
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
        )
        .await?;
    println!(
        "webhook {} subscribed to example-topic; Ctrl-C to stop",
        subscriber.url()
    );
    tokio::signal::ctrl_c().await?;
    subscriber.close().await;
    Ok(())
}
