//! gRPC: the SDK's [`GrpcPublisher`] (one channel, so one HTTP/2 connection, per publisher;
//! `publish`, `batchPublish`, `requestReply`) and [`GrpcSubscriber`] (one `subscribeStream`
//! per subscriber, explicit acks).
//!
//! The mesh knows a gRPC client by `ip/pid/sys` (a BROADCASTING member's cursor is named by it),
//! so each publisher and subscriber of the run names its own `sys` (`eventmesh-bench-sub0`, …):
//! they count as separate clients, as separate processes would.

use std::sync::Arc;

use eventmesh_sdk::CloudEvent;
use eventmesh_sdk::grpc::{GrpcConfig, GrpcDelivery, GrpcPublisher, GrpcSubscriber};

use super::{CALL_TIMEOUT, SUBSYSTEM, Subscription, client_error, url};
use crate::{BenchConfig, BenchError};

/// The settings of client `name` (`pub0`, `sub1`, …) in `group`.
fn settings(config: &BenchConfig, group: String, name: &str) -> GrpcConfig {
    let mut c = GrpcConfig::new(url(&config.addr), group);
    c.sys = format!("{SUBSYSTEM}-{name}");
    c.timeout = CALL_TIMEOUT;
    c
}

/// A publisher channel.
#[derive(Clone)]
pub(crate) struct Publisher(Arc<GrpcPublisher>);

impl Publisher {
    pub(crate) async fn connect(
        config: &BenchConfig,
        group: String,
        n: usize,
    ) -> Result<Publisher, BenchError> {
        GrpcPublisher::connect(settings(config, group, &format!("pub{n}")))
            .await
            .map(|p| Publisher(Arc::new(p)))
            .map_err(|e| client_error(format!("connecting publisher {n} to {}", config.addr), e))
    }

    pub(crate) async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<(), String> {
        let outcome = match <[CloudEvent; 1]>::try_from(events) {
            Ok([event]) => self.0.publish(topic, event).await,
            Err(events) => self.0.publish_batch(topic, &events).await,
        };
        outcome.map_err(|e| e.to_string())
    }

    pub(crate) async fn request(&self, topic: &str, event: CloudEvent) -> Result<(), String> {
        self.0
            .request_reply(topic, event, CALL_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// A subscriber stream.
pub(crate) struct Subscriber(GrpcSubscriber);

impl Subscriber {
    pub(crate) async fn start(
        config: &BenchConfig,
        sub: Subscription<'_>,
    ) -> Result<Subscriber, BenchError> {
        let ty = sub.role.subscription_type();
        let role = sub.role;
        let handler = move |delivery: GrpcDelivery| {
            let answer = role.handle(delivery.event.data);
            async move { Ok(answer) }
        };
        GrpcSubscriber::start(
            settings(config, sub.group, &format!("sub{}", sub.n)),
            vec![(sub.topic.to_owned(), sub.mode, ty)],
            handler,
        )
        .await
        .map(Subscriber)
        .map_err(|e| client_error(format!("subscribing {} to {}", sub.n, sub.topic), e))
    }

    pub(crate) async fn close(self) {
        self.0.close().await;
    }
}
