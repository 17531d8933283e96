//! The terminal side that `eventmesh pub` and `eventmesh sub` share over TCP, HTTP and gRPC:
//! the server address of a protocol, the data to publish, one printed line per event, and a
//! subscriber that stops after `--count` events or at Ctrl-C.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use eventmesh_sdk::{CloudEvent, SubscriptionMode, text_event};
use tokio::sync::mpsc;

use crate::cli::{ModeArg, PubArgs};

/// The TCP default of `--server`, which `--http` and `--grpc` replace by their own default.
pub(crate) const TCP_DEFAULT: &str = "127.0.0.1:10000";

/// `server` as a URL: `default` for the TCP default, `http://` added to a bare `HOST:PORT`.
pub(crate) fn server_url(server: &str, default: &str) -> String {
    if server == TCP_DEFAULT {
        default.to_owned()
    } else if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// The subscription mode `--mode` names.
pub(crate) fn subscription_mode(mode: ModeArg) -> SubscriptionMode {
    match mode {
        ModeArg::Clustering => SubscriptionMode::Clustering,
        ModeArg::Broadcasting => SubscriptionMode::Broadcasting,
    }
}

/// The data of `pub`: every line of stdin for `-`, else the one argument.
pub(crate) async fn data_lines(args: &PubArgs) -> anyhow::Result<Vec<String>> {
    if args.data != "-" {
        return Ok(vec![args.data.clone()]);
    }
    tokio::task::spawn_blocking(|| {
        std::io::stdin()
            .lines()
            .collect::<std::io::Result<Vec<String>>>()
    })
    .await
    .context("the stdin reader failed")?
    .context("reading stdin")
}

/// The publisher of the HTTP or gRPC client, for [`publish_lines`].
pub(crate) trait Publish {
    /// Publishes `event` to `topic`.
    async fn publish_event(&self, topic: &str, event: CloudEvent) -> anyhow::Result<()>;
    /// Sends `event` to `topic` as a request and returns the reply (within `timeout`).
    async fn request_event(
        &self,
        topic: &str,
        event: CloudEvent,
        timeout: Duration,
    ) -> anyhow::Result<CloudEvent>;
}

/// `pub` over HTTP or gRPC: `--count` events of each line of data, published, or with
/// `--request` sent as requests whose replies are printed.
pub(crate) async fn publish_lines(
    publisher: &impl Publish,
    args: &PubArgs,
    lines: &[String],
) -> anyhow::Result<()> {
    let topic = &args.client.topic;
    for data in lines {
        for _ in 0..args.count {
            let event = text_event(data.as_str());
            if args.request {
                let reply = publisher
                    .request_event(topic, event, args.timeout)
                    .await
                    .context("request failed")?;
                print_event(&reply, args.client.json)?;
            } else {
                publisher
                    .publish_event(topic, event)
                    .await
                    .context("publish failed")?;
            }
        }
    }
    Ok(())
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

/// Prints `event` on one line of stdout (the reply of `pub --request`).
pub(crate) fn print_event(event: &CloudEvent, json: bool) -> anyhow::Result<()> {
    let line = format_event(event, json)?;
    write_line(&line).context("writing to stdout")
}

fn write_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// What a subscriber's handler prints with: one line per event, up to `--count` of them.
#[derive(Clone)]
pub(crate) struct Printer {
    remaining: Arc<AtomicU64>,
    done: mpsc::Sender<()>,
    json: bool,
}

/// The end of `sub`: the `--count` events are printed, or Ctrl-C.
pub(crate) struct Finish {
    done: mpsc::Receiver<()>,
}

impl Printer {
    /// A printer of `count` events (all of them without) and the [`Finish`] it signals.
    pub(crate) fn new(count: Option<u64>, json: bool) -> (Self, Finish) {
        let (done, rx) = mpsc::channel(1);
        let printer = Self {
            remaining: Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX))),
            done,
            json,
        };
        (printer, Finish { done: rx })
    }

    /// Claims one of the events still wanted and prints it. Past the count the event is
    /// refused (an error), so that the mesh gives it to another member later.
    pub(crate) fn print(&self, event: &CloudEvent) -> Result<(), String> {
        let left = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_err(|_| "the --count of events has been printed".to_owned())?;
        let line = format_event(event, self.json).map_err(|e| format!("{e:#}"))?;
        write_line(&line).map_err(|e| e.to_string())?;
        if left == 1 {
            let _ = self.done.try_send(());
        }
        Ok(())
    }
}

impl Finish {
    /// Waits until the `--count` events are printed or Ctrl-C.
    pub(crate) async fn wait(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.done.recv() => Ok(()),
            signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        }
    }
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

    #[test]
    fn server_addresses_become_urls() {
        assert_eq!(server_url(TCP_DEFAULT, "http://d:1"), "http://d:1");
        assert_eq!(
            server_url("127.0.0.1:8080", "http://d:1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(server_url("https://h:1", "http://d:1"), "https://h:1");
    }

    #[tokio::test]
    async fn printing_stops_at_the_count() {
        let (printer, finish) = Printer::new(Some(2), false);
        let e = CloudEvent::new("1", "/s", "t").with_data("text/plain", "x");
        assert!(printer.print(&e).is_ok());
        assert!(printer.print(&e).is_ok());
        assert!(printer.print(&e).is_err(), "a third event is refused");
        finish.wait().await.unwrap();
    }
}
