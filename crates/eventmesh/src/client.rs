//! `eventmesh pub` and `eventmesh sub`: the SDK's TCP client on the command line, for trying a
//! mesh by hand (`--http`: `http_client.rs`, `--grpc`: `grpc_client.rs`).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use eventmesh_sdk::{
    Client, ClientConfig, CloudEvent, Delivery, Protocol, Purpose, SubscriptionMode,
    SubscriptionType, text_event,
};
use tokio::sync::mpsc;

use crate::cli::{ClientArgs, ModeArg, ProtocolArg, PubArgs, SubArgs};

fn protocol(arg: ProtocolArg) -> Protocol {
    match arg {
        ProtocolArg::Eventmeshmessage => Protocol::EventMeshMessage,
        ProtocolArg::Cloudevents => Protocol::CloudEvents,
    }
}

fn config(args: &ClientArgs, group: &str, purpose: Purpose) -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig::builder(args.server.clone(), group)
        .purpose(purpose)
        .protocol(protocol(args.protocol))
        .subsystem("eventmesh-cli")
        .build()?)
}

/// One line for `event`: its structured JSON, or its data as text (line breaks escaped).
pub(crate) fn format_event(event: &CloudEvent, json: bool) -> anyhow::Result<String> {
    if json {
        let bytes = eventmesh_protocol::cloudevents::encode_event(event)
            .context("encoding the event as JSON")?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let data = event.data.as_deref().unwrap_or_default();
    Ok(String::from_utf8_lossy(data)
        .replace('\\', "\\\\")
        .replace('\r', "\\r")
        .replace('\n', "\\n"))
}

/// `eventmesh pub`.
pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<()> {
    if args.client.http {
        return crate::http_client::publish(args).await;
    }
    if args.client.grpc {
        return crate::grpc_client::publish(args).await;
    }
    let client = Client::connect(config(&args.client, &args.group, Purpose::Pub)?)
        .await
        .with_context(|| format!("connecting to {}", args.client.server))?;
    let result = publish_all(&client, &args).await;
    client.close().await;
    result
}

async fn publish_all(client: &Client, args: &PubArgs) -> anyhow::Result<()> {
    let mut published = 0u64;
    if args.data == "-" {
        // Read stdin on a blocking thread, a bounded channel of lines in between.
        let (tx, mut rx) = mpsc::channel::<std::io::Result<String>>(64);
        let reader = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                let stop = line.is_err();
                if tx.blocking_send(line).is_err() || stop {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            let line = line.context("reading stdin")?;
            published += publish_one(client, args, &line).await?;
        }
        reader.await.context("the stdin reader failed")?;
    } else {
        published += publish_one(client, args, &args.data).await?;
    }
    tracing::debug!(message = "Published.", events = published);
    Ok(())
}

async fn publish_one(client: &Client, args: &PubArgs, data: &str) -> anyhow::Result<u64> {
    let topic = &args.client.topic;
    for _ in 0..args.count {
        let event = text_event(data);
        if args.request {
            let reply = client
                .request(topic, event, args.timeout)
                .await
                .context("request failed")?;
            let line = format_event(&reply, args.client.json)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        } else if args.broadcast {
            client
                .broadcast(topic, event)
                .await
                .context("broadcast failed")?;
        } else {
            client
                .publish(topic, event)
                .await
                .context("publish failed")?;
        }
    }
    Ok(args.count)
}

/// `eventmesh sub`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    if args.client.http {
        return crate::http_client::subscribe(args).await;
    }
    if args.client.grpc {
        return crate::grpc_client::subscribe(args).await;
    }
    let client = Client::connect(config(&args.client, &args.group, Purpose::Sub)?)
        .await
        .with_context(|| format!("connecting to {}", args.client.server))?;
    let mode = match args.mode {
        ModeArg::Clustering => SubscriptionMode::Clustering,
        ModeArg::Broadcasting => SubscriptionMode::Broadcasting,
    };
    let remaining = Arc::new(AtomicU64::new(args.count.unwrap_or(u64::MAX)));
    let (done_tx, mut done) = mpsc::channel::<()>(1);
    let json = args.client.json;
    let handler = move |delivery: Delivery| {
        let remaining = remaining.clone();
        let done_tx = done_tx.clone();
        async move {
            // Claim one of the events still wanted; past the count, leave the event un-acked so
            // the mesh gives it to someone else.
            let left = remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .map_err(|_| "the --count of events has been printed")?;
            let line = format_event(&delivery.event, json).map_err(|e| format!("{e:#}"))?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            if left == 1 {
                let _ = done_tx.try_send(());
            }
            Ok(())
        }
    };
    client
        .subscribe_filtered(
            &args.client.topic,
            mode,
            SubscriptionType::Async,
            args.filter.as_deref(),
            handler,
        )
        .await
        .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group);
    let outcome = tokio::select! {
        _ = done.recv() => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        () = client.closed() => Err(anyhow::anyhow!("the connection is closed and could not be restored")),
    };
    // Acks of the last events are sent before the goodbye.
    client.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_on_one_line() {
        let e = CloudEvent::new("1", "/s", "t").with_data("text/plain", "a\nb\\c");
        assert_eq!(format_event(&e, false).unwrap(), "a\\nb\\\\c");
        let json = format_event(&e, true).unwrap();
        assert!(!json.contains('\n'), "{json}");
        assert!(json.contains("\"id\":\"1\""), "{json}");
    }
}
