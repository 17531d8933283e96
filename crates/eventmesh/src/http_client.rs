//! `eventmesh pub --http` and `eventmesh sub --http`: the SDK's HTTP client on the command line.
//! `--server` is then the mesh's HTTP address (`HOST:PORT` or `http://HOST:PORT`; the TCP
//! default becomes `http://127.0.0.1:10105`). `sub --http` serves a webhook on
//! `--webhook-listen` (a free local port by default), subscribes it (with `--filter`: the topic
//! item's CloudEvents SQL `filter`), heart-beats, and unsubscribes on exit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use eventmesh_sdk::http::{HttpConfig, HttpPublisher, HttpSubscriber, PushedEvent};
use eventmesh_sdk::{SubscriptionMode, SubscriptionType, text_event};
use tokio::sync::mpsc;

use crate::cli::{ClientArgs, ModeArg, ProtocolArg, PubArgs, SubArgs};
use crate::client::format_event;

/// The TCP default of `--server`, which `--http` replaces by the HTTP default.
const TCP_DEFAULT: &str = "127.0.0.1:10000";
/// The mesh's default HTTP address.
const HTTP_DEFAULT: &str = "http://127.0.0.1:10105";

fn base_url(server: &str) -> String {
    if server == TCP_DEFAULT {
        HTTP_DEFAULT.to_owned()
    } else if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
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
    let lines = if args.data == "-" {
        tokio::task::spawn_blocking(|| {
            std::io::stdin()
                .lines()
                .collect::<std::io::Result<Vec<String>>>()
        })
        .await
        .context("the stdin reader failed")?
        .context("reading stdin")?
    } else {
        vec![args.data.clone()]
    };
    if args.broadcast {
        anyhow::bail!(
            "--broadcast is a TCP command; over HTTP, subscribe with --mode broadcasting"
        );
    }
    let publisher = HttpPublisher::new(config(&args.client).producer_group(args.group.clone()))
        .context("the HTTP client")?;
    let topic = &args.client.topic;
    for data in &lines {
        for _ in 0..args.count {
            let event = text_event(data.as_str());
            if args.request {
                let reply = publisher
                    .request(topic, event, args.timeout)
                    .await
                    .context("request failed")?;
                let line = format_event(&reply, args.client.json)?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").context("writing to stdout")?;
                out.flush().context("writing to stdout")?;
            } else {
                publisher
                    .publish(topic, event)
                    .await
                    .context("publish failed")?;
            }
        }
    }
    Ok(())
}

/// `eventmesh sub --http`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let mode = match args.mode {
        ModeArg::Clustering => SubscriptionMode::Clustering,
        ModeArg::Broadcasting => SubscriptionMode::Broadcasting,
    };
    let remaining = Arc::new(AtomicU64::new(args.count.unwrap_or(u64::MAX)));
    let (done_tx, mut done) = mpsc::channel::<()>(1);
    let json = args.client.json;
    let handler = move |e: PushedEvent| {
        let remaining = remaining.clone();
        let done_tx = done_tx.clone();
        async move {
            // Past the count, refuse: the mesh retries it (with another URL of the group).
            let left = remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .map_err(|_| "the --count of events has been printed".to_owned())?;
            let line = format_event(&e.event, json).map_err(|e| format!("{e:#}"))?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
            }
            if left == 1 {
                let _ = done_tx.try_send(());
            }
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
            mode,
            SubscriptionType::Async,
            args.filter.as_deref(),
        )
        .await
        .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group, url = %subscriber.url());
    let outcome = tokio::select! {
        _ = done.recv() => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
    };
    subscriber.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_base_urls() {
        assert_eq!(base_url(TCP_DEFAULT), HTTP_DEFAULT);
        assert_eq!(base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1"), "http://h:1");
    }
}
