//! HTTP: the SDK's [`HttpPublisher`] (one keep-alive connection pool per publisher; request
//! codes 104, 102 for batches, 101 for requests) and [`HttpSubscriber`] (a webhook served by
//! this process on 127.0.0.1, a free port, subscribed with code 206 and unsubscribed on close).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use eventmesh_sdk::CloudEvent;
use eventmesh_sdk::http::{HttpConfig, HttpPublisher, HttpSubscriber, PushedEvent};

use super::{CALL_TIMEOUT, SUBSYSTEM, Subscription, client_error, url};
use crate::{BenchConfig, BenchError};

fn settings(config: &BenchConfig) -> HttpConfig {
    let mut c = HttpConfig::new(url(&config.addr)).timeout(CALL_TIMEOUT);
    c.sys = SUBSYSTEM.to_owned();
    c
}

/// A publisher's connection pool.
#[derive(Clone)]
pub(crate) struct Publisher(Arc<HttpPublisher>);

impl Publisher {
    /// A publisher for `group` (it connects on its first call).
    pub(crate) fn connect(config: &BenchConfig, group: String) -> Result<Publisher, BenchError> {
        HttpPublisher::new(settings(config).producer_group(group))
            .map(|p| Publisher(Arc::new(p)))
            .map_err(|e| client_error(format!("the HTTP client for {}", config.addr), e))
    }

    pub(crate) async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<(), String> {
        let outcome = match <[CloudEvent; 1]>::try_from(events) {
            Ok([event]) => self.0.publish(topic, event).await,
            Err(events) => self.0.publish_batch(topic, events).await,
        };
        outcome.map_err(|e| e.to_string())
    }

    pub(crate) async fn request(&self, topic: &str, event: CloudEvent) -> Result<(), String> {
        self.0
            .request(topic, event, CALL_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// A subscribed webhook.
pub(crate) struct Subscriber(HttpSubscriber);

impl Subscriber {
    pub(crate) async fn start(
        config: &BenchConfig,
        sub: Subscription<'_>,
    ) -> Result<Subscriber, BenchError> {
        let ty = sub.role.subscription_type();
        let role = sub.role;
        let handler = move |pushed: PushedEvent| {
            let answer = role.handle(pushed.event.data);
            async move { Ok::<_, String>(answer) }
        };
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let webhook =
            HttpSubscriber::start(settings(config).consumer_group(sub.group), bind, handler)
                .await
                .map_err(|e| client_error(format!("starting webhook {}", sub.n), e))?;
        webhook
            .subscribe(sub.topic, sub.mode, ty)
            .await
            .map_err(|e| {
                client_error(
                    format!(
                        "subscribing webhook {} ({}) to {}",
                        sub.n,
                        webhook.url(),
                        sub.topic
                    ),
                    e,
                )
            })?;
        Ok(Subscriber(webhook))
    }

    pub(crate) async fn close(self) {
        self.0.close().await;
    }
}
