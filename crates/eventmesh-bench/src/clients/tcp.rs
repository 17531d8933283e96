//! TCP: the SDK's [`Client`], one connection per publisher or subscriber.

use eventmesh_sdk::{Client, ClientConfig, CloudEvent, Delivery, Purpose, SubscriptionType};

use super::{CALL_TIMEOUT, Role, SUBSYSTEM, Subscription, client_error, reply};
use crate::{BenchConfig, BenchError};

async fn connect(
    config: &BenchConfig,
    group: String,
    purpose: Purpose,
    n: usize,
) -> Result<Client, BenchError> {
    let client_config = ClientConfig::builder(config.addr.clone(), group)
        .purpose(purpose)
        .subsystem(SUBSYSTEM)
        .request_timeout(CALL_TIMEOUT)
        .max_in_flight(config.window.saturating_add(8))
        .build()
        .map_err(|e| client_error("building the client configuration".into(), e))?;
    Client::connect(client_config).await.map_err(|e| {
        client_error(
            format!("connecting {} {n} to {}", purpose.as_str(), config.addr),
            e,
        )
    })
}

/// A publisher connection.
#[derive(Clone)]
pub(crate) struct Publisher(Client);

impl Publisher {
    pub(crate) async fn connect(
        config: &BenchConfig,
        group: String,
        n: usize,
    ) -> Result<Publisher, BenchError> {
        Ok(Publisher(connect(config, group, Purpose::Pub, n).await?))
    }

    /// TCP has no batch publish: more than one event (refused by the settings' check) goes
    /// one message after the other.
    pub(crate) async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<(), String> {
        for event in events {
            self.0
                .publish(topic, event)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub(crate) async fn request(&self, topic: &str, event: CloudEvent) -> Result<(), String> {
        self.0
            .request(topic, event, CALL_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn close(&self) {
        self.0.close().await;
    }
}

/// A subscriber connection.
pub(crate) struct Subscriber(Client);

impl Subscriber {
    pub(crate) async fn start(
        config: &BenchConfig,
        sub: Subscription<'_>,
    ) -> Result<Subscriber, BenchError> {
        let client = connect(config, sub.group, Purpose::Sub, sub.n).await?;
        let result = match sub.role {
            Role::Echo => {
                let handler = |delivery: Delivery| {
                    let data = delivery.event.data.unwrap_or_default();
                    async move { Ok(reply(data)) }
                };
                client
                    .subscribe(sub.topic, sub.mode, SubscriptionType::Sync, handler)
                    .await
            }
            Role::Count(on_event) => {
                let handler = move |delivery: Delivery| {
                    on_event(delivery.event.data.as_deref());
                    async { Ok(()) }
                };
                client
                    .subscribe(sub.topic, sub.mode, SubscriptionType::Async, handler)
                    .await
            }
        };
        result.map_err(|e| client_error(format!("subscribing {} to {}", sub.n, sub.topic), e))?;
        Ok(Subscriber(client))
    }

    pub(crate) async fn close(self) {
        self.0.close().await;
    }
}
