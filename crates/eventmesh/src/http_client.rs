//! `eventmesh pub --http` and `eventmesh sub --http`: the SDK's HTTP client on the command line.
//! `--server` is then the mesh's HTTP address (`HOST:PORT` or `http://HOST:PORT`; the TCP
//! default becomes `http://127.0.0.1:10105`). `sub --http` serves a webhook on
//! `--webhook-listen` (a free local port by default), subscribes it (with `--filter`: the topic
//! item's CloudEvents SQL `filter`), heart-beats, and unsubscribes on exit.

use std::time::Duration;

use anyhow::Context as _;
use eventmesh_sdk::http::{HttpConfig, HttpPublisher, HttpSubscriber, PushedEvent};
use eventmesh_sdk::{CloudEvent, SubscriptionType};

use crate::cli::{ClientArgs, ProtocolArg, PubArgs, SubArgs};
use crate::console::{self, Printer};

/// The mesh's default HTTP address.
const HTTP_DEFAULT: &str = "http://127.0.0.1:10105";

fn base_url(server: &str) -> String {
    console::server_url(server, HTTP_DEFAULT)
}

fn config(args: &ClientArgs) -> HttpConfig {
    let c = HttpConfig::new(base_url(&args.server));
    match args.protocol {
        ProtocolArg::Eventmeshmessage => c,
        ProtocolArg::Cloudevents => c.cloudevents(),
    }
}

/// `eventmesh pub --http`: one event per data argument (or stdin line), code 104, or 101 with
/// `--request`.
pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let lines = console::data_lines(&args).await?;
    if args.broadcast {
        anyhow::bail!(
            "--broadcast is a TCP command; over HTTP, subscribe with --mode broadcasting"
        );
    }
    let publisher = HttpPublisher::new(config(&args.client).producer_group(args.group.clone()))
        .context("the HTTP client")?;
    console::publish_lines(&publisher, &args, &lines).await
}

impl console::Publish for HttpPublisher {
    async fn publish_event(&self, topic: &str, event: CloudEvent) -> anyhow::Result<()> {
        Ok(self.publish(topic, event).await?)
    }

    async fn request_event(
        &self,
        topic: &str,
        event: CloudEvent,
        timeout: Duration,
    ) -> anyhow::Result<CloudEvent> {
        Ok(self.request(topic, event, timeout).await?)
    }
}

/// `eventmesh sub --http`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let (printer, finish) = Printer::new(args.count, args.client.json);
    // Past the count, the event is refused: the mesh retries it (with another URL of the group).
    let handler = move |e: PushedEvent| {
        let printer = printer.clone();
        async move {
            printer.print(&e.event)?;
            Ok::<_, String>(None)
        }
    };
    let config = config(&args.client).consumer_group(args.group.clone());
    let subscriber = HttpSubscriber::start(config, args.webhook_listen, handler)
        .await
        .context("starting the webhook server")?;
    subscriber
        .subscribe_filtered(
            &args.client.topic,
            console::subscription_mode(args.mode),
            SubscriptionType::Async,
            args.filter.as_deref(),
        )
        .await
        .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group, url = %subscriber.url());
    let outcome = finish.wait().await;
    subscriber.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_base_urls() {
        assert_eq!(base_url(console::TCP_DEFAULT), HTTP_DEFAULT);
        assert_eq!(base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1"), "http://h:1");
    }
}
