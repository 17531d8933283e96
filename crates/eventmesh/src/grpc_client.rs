//! `eventmesh pub --grpc` and `eventmesh sub --grpc`: the SDK's gRPC client on the command line.
//! `--server` is then the mesh's gRPC address (`HOST:PORT` or `http://HOST:PORT`; the TCP
//! default becomes `http://127.0.0.1:10205`). `sub --grpc` opens one subscriber stream (with
//! `--filter`: the subscription's CloudEvents SQL `filter` attribute), acknowledges each event
//! once printed, and closes the stream on exit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use eventmesh_sdk::grpc::{GrpcConfig, GrpcDelivery, GrpcPublisher, GrpcSubscriber};
use eventmesh_sdk::{SubscriptionMode, SubscriptionType, text_event};
use tokio::sync::mpsc;

use crate::cli::{ModeArg, PubArgs, SubArgs};
use crate::client::format_event;

/// The TCP default of `--server`, which `--grpc` replaces by the gRPC default.
const TCP_DEFAULT: &str = "127.0.0.1:10000";
/// The mesh's default gRPC address.
const GRPC_DEFAULT: &str = "http://127.0.0.1:10205";

fn endpoint(server: &str) -> String {
    if server == TCP_DEFAULT {
        GRPC_DEFAULT.to_owned()
    } else if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
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
    let publisher = GrpcPublisher::connect(config(&args.client.server, &args.group))
        .await
        .with_context(|| format!("connecting to {}", endpoint(&args.client.server)))?;
    let topic = &args.client.topic;
    for data in &lines {
        for _ in 0..args.count {
            let event = text_event(data.as_str());
            if args.request {
                let reply = publisher
                    .request_reply(topic, event, args.timeout)
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

/// `eventmesh sub --grpc`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let mode = match args.mode {
        ModeArg::Clustering => SubscriptionMode::Clustering,
        ModeArg::Broadcasting => SubscriptionMode::Broadcasting,
    };
    let remaining = Arc::new(AtomicU64::new(args.count.unwrap_or(u64::MAX)));
    let (done_tx, mut done) = mpsc::channel::<()>(1);
    let json = args.client.json;
    let handler = move |d: GrpcDelivery| {
        let remaining = remaining.clone();
        let done_tx = done_tx.clone();
        async move {
            // Past the count, refuse: the mesh gives the event to another member later.
            let left = remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .map_err(|_| "the --count of events has been printed")?;
            let line = format_event(&d.event, json).map_err(|e| format!("{e:#}"))?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            if left == 1 {
                let _ = done_tx.try_send(());
            }
            Ok(None)
        }
    };
    let subscriber = GrpcSubscriber::start_filtered(
        config(&args.client.server, &args.group),
        vec![(args.client.topic.clone(), mode, SubscriptionType::Async)],
        args.filter.as_deref(),
        handler,
    )
    .await
    .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group);
    let outcome = tokio::select! {
        _ = done.recv() => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
    };
    // The acks of the last events are sent before the stream closes.
    subscriber.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_become_endpoints() {
        assert_eq!(endpoint(TCP_DEFAULT), GRPC_DEFAULT);
        assert_eq!(endpoint("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(endpoint("https://h:1"), "https://h:1");
    }
}
