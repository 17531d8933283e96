//! `eventmesh pub --grpc` and `eventmesh sub --grpc`: the SDK's gRPC client on the command line.
//! `--server` is then the mesh's gRPC address (`HOST:PORT` or `http://HOST:PORT`; the TCP
//! default becomes `http://127.0.0.1:10205`). `sub --grpc` opens one subscriber stream (with
//! `--filter`: the subscription's CloudEvents SQL `filter` attribute), acknowledges each event
//! once printed, and closes the stream on exit.

use std::time::Duration;

use anyhow::Context as _;
use eventmesh_sdk::grpc::{GrpcConfig, GrpcDelivery, GrpcPublisher, GrpcSubscriber};
use eventmesh_sdk::{CloudEvent, SubscriptionType};

use crate::cli::{PubArgs, SubArgs};
use crate::console::{self, Printer};

/// The mesh's default gRPC address.
const GRPC_DEFAULT: &str = "http://127.0.0.1:10205";

fn endpoint(server: &str) -> String {
    console::server_url(server, GRPC_DEFAULT)
}

fn config(server: &str, group: &str) -> GrpcConfig {
    let mut c = GrpcConfig::new(endpoint(server), group);
    c.sys = "eventmesh-cli".to_owned();
    c
}

/// `eventmesh pub --grpc`: one `publish` per event, or `requestReply` with `--request`.
pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<()> {
    if args.broadcast {
        anyhow::bail!(
            "--broadcast is a TCP command; over gRPC, subscribe with --mode broadcasting"
        );
    }
    let lines = console::data_lines(&args).await?;
    let publisher = GrpcPublisher::connect(config(&args.client.server, &args.group))
        .await
        .with_context(|| format!("connecting to {}", endpoint(&args.client.server)))?;
    console::publish_lines(&publisher, &args, &lines).await
}

impl console::Publish for GrpcPublisher {
    async fn publish_event(&self, topic: &str, event: CloudEvent) -> anyhow::Result<()> {
        Ok(self.publish(topic, event).await?)
    }

    async fn request_event(
        &self,
        topic: &str,
        event: CloudEvent,
        timeout: Duration,
    ) -> anyhow::Result<CloudEvent> {
        Ok(self.request_reply(topic, event, timeout).await?)
    }
}

/// `eventmesh sub --grpc`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let (printer, finish) = Printer::new(args.count, args.client.json);
    // Past the count, the event is refused: the mesh gives it to another member later.
    let handler = move |d: GrpcDelivery| {
        let printer = printer.clone();
        async move {
            printer.print(&d.event)?;
            Ok(None)
        }
    };
    let mode = console::subscription_mode(args.mode);
    let subscriber = GrpcSubscriber::start_filtered(
        config(&args.client.server, &args.group),
        vec![(args.client.topic.clone(), mode, SubscriptionType::Async)],
        args.filter.as_deref(),
        handler,
    )
    .await
    .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group);
    let outcome = finish.wait().await;
    // The acks of the last events are sent before the stream closes.
    subscriber.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_endpoints() {
        assert_eq!(endpoint(console::TCP_DEFAULT), GRPC_DEFAULT);
        assert_eq!(endpoint("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(endpoint("https://h:1"), "https://h:1");
    }
}
