//! `eventmesh pub` and `eventmesh sub`: the SDK's TCP client on the command line, for trying a
//! mesh by hand (`--http`: `http_client.rs`, `--grpc`: `grpc_client.rs`).

use std::io::BufRead;

use anyhow::Context as _;
use eventmesh_sdk::{
    Client, ClientConfig, Delivery, Protocol, Purpose, SubscriptionType, text_event,
};
use tokio::sync::mpsc;

use crate::cli::{ClientArgs, ProtocolArg, PubArgs, SubArgs};
use crate::console::{self, Printer};

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
            console::print_event(&reply, args.client.json)?;
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
    let (printer, finish) = Printer::new(args.count, args.client.json);
    // Past the count, leave the event un-acked so the mesh gives it to someone else.
    let handler = move |delivery: Delivery| {
        let printer = printer.clone();
        async move {
            printer.print(&delivery.event)?;
            Ok(())
        }
    };
    client
        .subscribe_filtered(
            &args.client.topic,
            console::subscription_mode(args.mode),
            SubscriptionType::Async,
            args.filter.as_deref(),
            handler,
        )
        .await
        .with_context(|| format!("subscribing to {}", args.client.topic))?;
    tracing::info!(message = "Subscribed.", topic = %args.client.topic, group = %args.group);
    let outcome = tokio::select! {
        finished = finish.wait() => finished,
        () = client.closed() => Err(anyhow::anyhow!("the connection is closed and could not be restored")),
    };
    // Acks of the last events are sent before the goodbye.
    client.close().await;
    outcome
}
