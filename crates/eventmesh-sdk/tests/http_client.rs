//! The SDK's HTTP client against the real runtime in-process (HTTP on port 0): publishes in both
//! modes, batches, request-reply, and redelivery after a failing handler.

use std::time::Duration;

use eventmesh_config::{Config, StorageKind};
use eventmesh_runtime::{Runtime, RuntimeHandle};
use eventmesh_sdk::http::{
    HttpConfig, HttpError, HttpMode, HttpPublisher, HttpSubscriber, PushedEvent,
};
use eventmesh_sdk::{SubscriptionMode, SubscriptionType, text_event};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

async fn node() -> (RuntimeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = Config::default();
    c.node.data_dir = dir.path().to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.tcp.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.http.listen = "127.0.0.1:0".parse().expect("an address");
    c.server.grpc.listen = "127.0.0.1:0".parse().expect("an address");
    c.storage.kind = StorageKind::Memory;
    c.delivery.backoff_initial = Duration::from_millis(20);
    c.delivery.backoff_max = Duration::from_millis(200);
    let h = Runtime::start(c).await.expect("the runtime starts");
    assert!(h.wait_ready().await);
    (h, dir)
}

fn base(h: &RuntimeHandle) -> String {
    format!("http://{}", h.http_addr().expect("HTTP on"))
}

/// A subscriber forwarding every push to a channel.
async fn collector(
    config: HttpConfig,
    topic: &str,
) -> (HttpSubscriber, mpsc::Receiver<PushedEvent>) {
    let (tx, rx) = mpsc::channel(64);
    let sub = HttpSubscriber::start(
        config,
        "127.0.0.1:0".parse().expect("an address"),
        move |e: PushedEvent| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e).await;
                Ok::<_, String>(None)
            }
        },
    )
    .await
    .expect("the webhook server starts");
    sub.subscribe(topic, SubscriptionMode::Clustering, SubscriptionType::Async)
        .await
        .expect("subscribed");
    (sub, rx)
}

async fn next(rx: &mut mpsc::Receiver<PushedEvent>) -> PushedEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a push in time")
        .expect("open")
}

fn text(e: &PushedEvent) -> String {
    String::from_utf8_lossy(e.event.data.as_deref().unwrap_or_default()).into_owned()
}

#[tokio::test]
async fn should_publish_in_both_modes_and_receive_through_the_subscriber() {
    let (h, _dir) = node().await;
    let config = HttpConfig::new(base(&h)).consumer_group("sdk-g");
    let (sub, mut rx) = collector(config.clone(), "sdk-t").await;

    let legacy = HttpPublisher::new(config.clone()).expect("a publisher");
    legacy
        .publish("sdk-t", text_event("legacy"))
        .await
        .expect("published");
    let e = next(&mut rx).await;
    assert_eq!((e.topic.as_str(), text(&e).as_str()), ("sdk-t", "legacy"));

    let ce_content = HttpPublisher::new(config.clone().cloudevents()).expect("a publisher");
    let ev = text_event("as cloudevent").with_extension("myext", "v");
    let id = ev.id.clone();
    ce_content.publish("sdk-t", ev).await.expect("published");
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "as cloudevent");
    assert_eq!(e.event.extension_str("myext"), Some("v"));
    assert_eq!(e.event.extension_str("bizseqno"), Some(id.as_str()));

    let binding =
        HttpPublisher::new(config.clone().mode(HttpMode::CloudEvents)).expect("a publisher");
    binding
        .publish("sdk-t", text_event("binding"))
        .await
        .expect("published");
    assert_eq!(text(&next(&mut rx).await), "binding");

    for p in [&legacy, &binding] {
        p.publish_batch("sdk-t", vec![text_event("b1"), text_event("b2")])
            .await
            .expect("batch published");
        let mut got = vec![text(&next(&mut rx).await), text(&next(&mut rx).await)];
        got.sort();
        assert_eq!(got, ["b1", "b2"]);
    }

    // A refusal is typed.
    let err = legacy
        .publish("bad topic ~", text_event("x"))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, HttpError::Refused { status: 400, .. }),
        "{err}"
    );
    sub.close().await;
    h.shutdown().await;
}

#[tokio::test]
async fn should_answer_requests_and_retry_failed_handlers() {
    let (h, _dir) = node().await;
    let config = HttpConfig::new(base(&h)).consumer_group("sdk-rr");
    let responder = HttpSubscriber::start(
        config.clone(),
        "127.0.0.1:0".parse().expect("an address"),
        |e: PushedEvent| async move {
            let body =
                String::from_utf8_lossy(e.event.data.as_deref().unwrap_or_default()).into_owned();
            Ok::<_, String>(Some(text_event(format!("pong: {body}"))))
        },
    )
    .await
    .expect("the webhook server starts");
    responder
        .subscribe(
            "sdk-rpc",
            SubscriptionMode::Clustering,
            SubscriptionType::Sync,
        )
        .await
        .expect("subscribed");
    let publisher = HttpPublisher::new(config.clone()).expect("a publisher");
    let reply = publisher
        .request("sdk-rpc", text_event("ping"), Duration::from_secs(10))
        .await
        .expect("a reply");
    assert_eq!(reply.data.as_deref(), Some(&b"pong: ping"[..]));

    // A handler failing twice: the mesh pushes again until it succeeds.
    let (tx, mut rx) = mpsc::channel(16);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = calls.clone();
    let flaky = HttpSubscriber::start(
        config.clone().consumer_group("sdk-flaky"),
        "127.0.0.1:0".parse().expect("an address"),
        move |e: PushedEvent| {
            let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                if n <= 2 {
                    return Err(format!("not yet ({n})"));
                }
                let _ = tx.send(e).await;
                Ok(None)
            }
        },
    )
    .await
    .expect("the webhook server starts");
    flaky
        .subscribe(
            "sdk-flaky-t",
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
        )
        .await
        .expect("subscribed");
    publisher
        .publish("sdk-flaky-t", text_event("eventually"))
        .await
        .expect("published");
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "eventually");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    h.shutdown().await;
}
