//! The connection to RabbitMQ and the loop that restores it.
//!
//! lapin does not reconnect by itself (its auto-recovery is opt-in and replays topology this
//! store does not need replayed), so a supervisor task owns the connection: it watches it, and
//! once it is lost, reconnects with a growing pause (up to `max_reconnect_backoff`) until the
//! store is closed. Each connection gets a new generation number; channels, stream readers and
//! cursor locks remember the generation they were made on and are made again on the next
//! one. While the connection is down every call fails at once with
//! [`RabbitError::Unavailable`]; nothing waits for the broker longer than `confirm_timeout`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::RabbitError;
use crate::options::RabbitOptions;

/// A live connection and its generation.
pub(crate) struct Link {
    pub(crate) conn: Connection,
    pub(crate) generation: u64,
}

/// Owns the connection; cheap to share.
pub(crate) struct Conn {
    opts: RabbitOptions,
    current: Mutex<Option<Arc<Link>>>,
    generation: watch::Sender<u64>,
    publisher: tokio::sync::Mutex<Option<(u64, Channel)>>,
    closed: AtomicBool,
}

impl Conn {
    /// Connects once (failing if the broker cannot be reached within `connect_timeout`) and
    /// starts the supervisor.
    pub(crate) async fn open(opts: RabbitOptions) -> Result<Arc<Conn>, RabbitError> {
        let first = connect(&opts).await?;
        let conn = Arc::new(Conn {
            opts,
            current: Mutex::new(Some(Arc::new(Link {
                conn: first,
                generation: 1,
            }))),
            generation: watch::Sender::new(1),
            publisher: tokio::sync::Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(supervise(Arc::downgrade(&conn)));
        Ok(conn)
    }

    /// The live connection, or `Unavailable` while it is being restored.
    pub(crate) fn link(&self) -> Result<Arc<Link>, RabbitError> {
        let link = self.current.lock().clone();
        match link {
            Some(l) if l.conn.status().connected() => Ok(l),
            _ => Err(self.down()),
        }
    }

    fn down(&self) -> RabbitError {
        RabbitError::Unavailable(format!(
            "not connected to RabbitMQ at {}; reconnecting",
            self.opts.masked_url()
        ))
    }

    /// A new channel on the live connection.
    pub(crate) async fn channel(&self) -> Result<(u64, Channel), RabbitError> {
        let link = self.link()?;
        let ch = self
            .bounded("channel.open", link.conn.create_channel())
            .await?;
        Ok((link.generation, ch))
    }

    /// Runs a broker call within `confirm_timeout`, naming it in errors.
    pub(crate) async fn bounded<T>(
        &self,
        op: &str,
        fut: impl Future<Output = lapin::Result<T>>,
    ) -> Result<T, RabbitError> {
        match tokio::time::timeout(self.opts.confirm_timeout, fut).await {
            Ok(r) => r.map_err(|e| RabbitError::amqp(op, e)),
            Err(_) => Err(RabbitError::Unavailable(format!(
                "RabbitMQ did not answer {op} within {} ms",
                self.opts.confirm_timeout.as_millis()
            ))),
        }
    }

    /// The shared channel in confirm mode used for every publish.
    pub(crate) async fn publisher(&self) -> Result<Channel, RabbitError> {
        let link = self.link()?;
        let mut slot = self.publisher.lock().await;
        if let Some((generation, ch)) = &*slot
            && *generation == link.generation
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = self
            .bounded("channel.open", link.conn.create_channel())
            .await?;
        self.bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        *slot = Some((link.generation, ch.clone()));
        Ok(ch)
    }

    /// Publishes one persistent message with `mandatory` and waits for the broker's confirm.
    /// `Ok(false)`: the message could not be routed (no such queue behind the exchange).
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<bool, RabbitError> {
        let ch = self.publisher().await?;
        let confirm = self
            .bounded(
                "basic.publish",
                ch.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    props.with_delivery_mode(2),
                ),
            )
            .await?;
        match self.bounded("publisher confirm", confirm).await? {
            Confirmation::Ack(None) => Ok(true),
            Confirmation::Ack(Some(_)) => Ok(false),
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err(RabbitError::Refused(routing_key.to_owned()))
            }
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the connection and stops reconnecting.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let link = self.current.lock().take();
        if let Some(l) = link {
            let _ = tokio::time::timeout(
                self.opts.confirm_timeout,
                l.conn.close(200, "eventmesh store closed".into()),
            )
            .await;
        }
    }
}

async fn connect(opts: &RabbitOptions) -> Result<Connection, RabbitError> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("eventmesh-{}", std::process::id()).into());
    match tokio::time::timeout(opts.connect_timeout, Connection::connect(&opts.url, props)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(RabbitError::Unavailable(format!(
            "cannot connect to RabbitMQ at {}: {e}",
            opts.masked_url()
        ))),
        Err(_) => Err(RabbitError::Unavailable(format!(
            "cannot connect to RabbitMQ at {}: no answer within {} ms",
            opts.masked_url(),
            opts.connect_timeout.as_millis()
        ))),
    }
}

/// Watches the connection and restores it until the store is closed.
async fn supervise(conn: std::sync::Weak<Conn>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(c) = conn.upgrade() else { return };
        if c.closed.load(Ordering::SeqCst) {
            return;
        }
        let healthy = c
            .current
            .lock()
            .as_ref()
            .is_some_and(|l| l.conn.status().connected());
        if healthy {
            backoff = Duration::from_millis(100);
            drop(c);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if c.current.lock().take().is_some() {
            tracing::warn!(
                message = "Lost the connection to RabbitMQ; reconnecting.",
                url = %c.opts.masked_url()
            );
        }
        match connect(&c.opts).await {
            Ok(new) => {
                if c.closed.load(Ordering::SeqCst) {
                    let _ = new.close(200, "eventmesh store closed".into()).await;
                    return;
                }
                let generation = *c.generation.borrow() + 1;
                *c.current.lock() = Some(Arc::new(Link {
                    conn: new,
                    generation,
                }));
                c.generation.send_replace(generation);
                tracing::info!(
                    message = "Reconnected to RabbitMQ.",
                    url = %c.opts.masked_url(),
                    generation
                );
            }
            Err(error) => {
                tracing::debug!(message = "Reconnecting to RabbitMQ failed.", %error);
                let pause = backoff;
                backoff = (backoff * 2).min(c.opts.max_reconnect_backoff);
                drop(c);
                tokio::time::sleep(pause).await;
            }
        }
    }
}
