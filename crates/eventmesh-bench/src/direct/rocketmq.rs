//! RocketMQ (`rocketmq://namesrv:port[,namesrv:port…][?cluster=NAME]`, rocketmq-client-rust
//! 1.0.0, the RocketMQ store's client): a fresh topic per run with one read and one write queue
//! on the cluster's first master (as the store makes them); every publish awaits the broker's
//! `SEND_OK` (with `--batch N`, the N messages go out as one batch send), from a pool of four
//! producers used in turn (the store's pool); subscribers are push consumers of one consumer group
//! for a CLUSTERING run and of one group each for BROADCASTING, reading from the first offset and
//! answering `CONSUME_SUCCESS` for every message (the client persists consumed offsets on its own
//! schedule). The topic and groups are deleted afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventmesh_core::redact::mask_url;
use parking_lot::Mutex;
use rocketmq_client_rust::{
    ClientConfig, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, ConsumerAdmin, DefaultMQAdminExt, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently, RouteAdmin, TopicAdmin,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{OnEvent, RunGroups, sanitize};
use crate::BenchError;

/// What the direct side does, for the report.
pub(crate) const SETTINGS: &str = "RocketMQ via rocketmq-client-rust 1.0.0: one queue on the cluster's first master; every send awaits SEND_OK (4 producers used in turn, as the store); push consumers (CLUSTERING model), one group per subscription, every message answered CONSUME_SUCCESS (offsets persisted by the client every 5 s)";

/// How long admin and send calls may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Producers used in turn, as many as the store has.
const PRODUCERS: usize = 4;
/// The longest the client's tasks may take to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn client_error(op: &str, e: &rocketmq_client_rust::ClientError) -> BenchError {
    BenchError::Direct(format!("RocketMQ: {op}: {e}"))
}

/// A connection to a RocketMQ cluster: its client runtime, admin client and producers.
pub(crate) struct Rocket {
    url: String,
    namesrv: String,
    owner: Mutex<Option<RuntimeOwner>>,
    runtime: Arc<ClientRuntime>,
    admin: Arc<tokio::sync::Mutex<DefaultMQAdminExt>>,
    producers: Arc<Vec<DefaultMQProducer>>,
    /// The master (name, address) that holds the run's topic.
    master: (String, String),
    cluster: String,
}

/// Splits `rocketmq://h1:p1,h2:p2[?cluster=NAME]` into the name servers (`h1:p1;h2:p2`) and
/// the cluster (`DefaultCluster` unless named).
fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("rocketmq://")?;
    let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
    let hosts = hosts.trim_end_matches('/');
    if hosts.is_empty() || hosts.split(',').any(|h| !h.contains(':')) {
        return None;
    }
    let mut cluster = "DefaultCluster".to_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cluster", c)) if !c.is_empty() => cluster = c.to_owned(),
            _ => return None,
        }
    }
    Some((hosts.replace(',', ";"), cluster))
}

impl Rocket {
    /// Connects to the name servers of `url` and finds the cluster's first master.
    pub(crate) async fn connect(url: &str) -> Result<Rocket, BenchError> {
        let Some((namesrv, cluster)) = parse_url(url) else {
            return Err(BenchError::Unsupported(format!(
                "--direct {}: not a rocketmq://host:port[,host:port][?cluster=NAME] URL",
                mask_url(url)
            )));
        };
        let mut rt_config = RuntimeConfig::for_parallelism("eventmesh-bench-rocketmq", 2);
        rt_config.shutdown_timeout = SHUTDOWN_TIMEOUT;
        let runtime_error =
            |e: &dyn std::fmt::Display| BenchError::Direct(format!("RocketMQ client runtime: {e}"));
        let owner = RuntimeOwner::plan(rt_config)
            .map_err(|e| runtime_error(&e))?
            .build()
            .map_err(|e| runtime_error(&e))?;
        let telemetry = rocketmq_observability::TelemetryRuntimeGuard::noop();
        let runtime = ClientRuntime::try_new(
            owner.root_context().component("eventmesh-bench"),
            ClientRuntimeConfig {
                shutdown_timeout: SHUTDOWN_TIMEOUT,
                ..ClientRuntimeConfig::default()
            },
            telemetry.handle(),
        )
        .map_err(|e| client_error("client runtime", &e))?;
        let rocket = Rocket {
            url: url.to_owned(),
            namesrv: namesrv.clone(),
            owner: Mutex::new(Some(owner)),
            runtime: runtime.clone(),
            admin: Arc::new(tokio::sync::Mutex::new(DefaultMQAdminExt::with_timeout(
                runtime.clone(),
                TIMEOUT,
            ))),
            producers: Arc::new(Vec::new()),
            master: (String::new(), String::new()),
            cluster: cluster.clone(),
        };
        // From here on a failure still shuts the runtime down.
        match rocket.start().await {
            Ok(rocket) => Ok(rocket),
            Err((rocket, e)) => {
                rocket.close().await;
                Err(e)
            }
        }
    }

    async fn start(mut self) -> Result<Rocket, (Rocket, BenchError)> {
        let cant = |e: BenchError, url: &str| {
            BenchError::Direct(format!("cannot connect to {}: {e}", mask_url(url)))
        };
        {
            let mut admin = self.admin.lock().await;
            admin.set_namesrv_addr(&self.namesrv);
            if let Err(e) = admin.start().await {
                drop(admin);
                let e = cant(client_error("starting the admin client", &e), &self.url);
                return Err((self, e));
            }
        }
        match self.first_master().await {
            Ok(m) => self.master = m,
            Err(e) => {
                let e = cant(e, &self.url);
                return Err((self, e));
            }
        }
        let mut producers = Vec::with_capacity(PRODUCERS);
        let instance = format!("eventmesh-bench-{:08x}", rand::random::<u32>());
        for n in 0..PRODUCERS {
            let mut config = ClientConfig::new();
            config.set_namesrv_addr(self.namesrv.as_str().into());
            config.set_instance_name(format!("{instance}-p{n}").into());
            let mut producer = DefaultMQProducer::builder(self.runtime.clone())
                .client_config(config)
                .producer_group(format!("{instance}-producer"))
                .name_server_addr(self.namesrv.clone())
                .send_msg_timeout(u32::try_from(ms(TIMEOUT)).unwrap_or(u32::MAX))
                .retry_times_when_send_failed(0)
                .build();
            if let Err(e) = producer.start().await {
                let e = cant(client_error("starting a producer", &e), &self.url);
                for mut p in producers {
                    DefaultMQProducer::shutdown(&mut p).await;
                }
                return Err((self, e));
            }
            producers.push(producer);
        }
        self.producers = Arc::new(producers);
        Ok(self)
    }

    /// The first master (by name) of `cluster`: (name, address).
    async fn first_master(&self) -> Result<(String, String), BenchError> {
        let cluster = self.cluster.as_str();
        let admin = self.admin.lock().await;
        let info = tokio::time::timeout(TIMEOUT, admin.examine_broker_cluster_info())
            .await
            .map_err(|_| BenchError::Direct("the name servers did not answer".to_owned()))?
            .map_err(|e| client_error("reading the cluster", &e))?;
        let names = info
            .cluster_addr_table
            .as_ref()
            .and_then(|t| t.get(cluster).cloned())
            .unwrap_or_default();
        let mut masters: Vec<(String, String)> = names
            .iter()
            .filter_map(|name| {
                let addr = info
                    .broker_addr_table
                    .as_ref()?
                    .get(name)?
                    .broker_addrs()
                    .get(&0)?
                    .to_string();
                Some((name.to_string(), addr))
            })
            .collect();
        masters.sort();
        masters.into_iter().next().ok_or_else(|| {
            BenchError::Direct(format!(
                "no master broker of cluster `{cluster}` is registered with the name servers"
            ))
        })
    }

    /// The broker URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Creates the run's topic for `topic`.
    pub(crate) async fn prepare(&self, topic: &str) -> Result<RocketTopic, BenchError> {
        let name = format!("eventmesh-bench-{}", sanitize(topic));
        let mut config = rocketmq_model::topic::TopicConfig::new(name.as_str());
        config.read_queue_nums = 1;
        config.write_queue_nums = 1;
        {
            let admin = self.admin.lock().await;
            tokio::time::timeout(
                TIMEOUT,
                admin.create_and_update_topic_config(self.master.1.as_str().into(), config),
            )
            .await
            .map_err(|_| BenchError::Direct(format!("cannot create topic {name}: no answer")))?
            .map_err(|e| client_error(&format!("creating topic {name}"), &e))?;
        }
        Ok(RocketTopic {
            queue: MessageQueue::from_parts(name.as_str(), self.master.0.as_str(), 0),
            name,
            namesrv: self.namesrv.clone(),
            runtime: self.runtime.clone(),
            admin: self.admin.clone(),
            master_addr: self.master.1.clone(),
            cluster: self.cluster.clone(),
            producers: self.producers.clone(),
            next: Arc::new(AtomicUsize::new(0)),
            groups: RunGroups::default(),
        })
    }

    /// Stops the producers, the admin client and the client runtime.
    pub(crate) async fn close(self) {
        if let Some(producers) = Arc::into_inner(self.producers) {
            for mut p in producers {
                DefaultMQProducer::shutdown(&mut p).await;
            }
        }
        self.admin.lock().await.shutdown().await;
        let _ = self.runtime.shutdown().await;
        let owner = self.owner.lock().take();
        if let Some(owner) = owner {
            let _ = owner.shutdown_tasks().await;
            let _ = owner.shutdown_background();
        }
    }
}

/// The run's topic.
#[derive(Clone)]
pub(crate) struct RocketTopic {
    name: String,
    queue: MessageQueue,
    namesrv: String,
    runtime: Arc<ClientRuntime>,
    admin: Arc<tokio::sync::Mutex<DefaultMQAdminExt>>,
    master_addr: String,
    cluster: String,
    producers: Arc<Vec<DefaultMQProducer>>,
    next: Arc<AtomicUsize>,
    /// The consumer groups the run made, deleted with the topic.
    groups: RunGroups,
}

/// Answers `CONSUME_SUCCESS` for every message after handing its body to the bench.
struct Listener(OnEvent);

impl MessageListenerConcurrently for Listener {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        for m in msgs {
            (self.0)(m.body().as_deref().unwrap_or_default());
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

impl RocketTopic {
    /// Sends `data` `count` times (one batch send when more than one) and awaits `SEND_OK`.
    pub(crate) async fn publish(&self, data: Bytes, count: u64) -> Result<(), String> {
        let producer = &self.producers[self.next.fetch_add(1, Ordering::Relaxed) % PRODUCERS];
        let message = || {
            Message::builder()
                .topic(self.name.as_str())
                .body(data.clone())
                .build_unchecked()
        };
        let status = if count <= 1 {
            producer
                .send_to_queue_with_timeout(message(), self.queue.clone(), ms(TIMEOUT))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no send result".to_owned())?
                .send_status
        } else {
            let batch: Vec<Message> = (0..count).map(|_| message()).collect();
            producer
                .send_batch_to_queue_with_timeout(batch, self.queue.clone(), ms(TIMEOUT))
                .await
                .map_err(|e| e.to_string())?
                .send_status
        };
        match status {
            SendStatus::SendOk => Ok(()),
            other => Err(format!("the broker answered {other:?}")),
        }
    }

    /// Starts a push consumer in the group `group` (from the topic's first offset), calling
    /// `on_event` with each message's body, until `stop` is cancelled.
    pub(crate) async fn subscribe(
        &self,
        group: &str,
        stop: CancellationToken,
        on_event: OnEvent,
    ) -> Result<tokio::task::JoinHandle<()>, BenchError> {
        let group_name = format!("{}-{}", self.name, sanitize(group));
        self.groups.remember(&group_name);
        let mut config = ClientConfig::new();
        config.set_namesrv_addr(self.namesrv.as_str().into());
        config.set_instance_name(format!("{group_name}-{:08x}", rand::random::<u32>()).into());
        let mut consumer = DefaultMQPushConsumer::builder(self.runtime.clone())
            .client_config(config)
            .consumer_group(group_name.clone())
            .name_server_addr(self.namesrv.clone())
            .message_model(MessageModel::Clustering)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .build();
        let cant = |e: rocketmq_client_rust::ClientError| {
            client_error(&format!("starting consumer {group_name}"), &e)
        };
        consumer
            .subscribe(self.name.as_str(), "*")
            .await
            .map_err(cant)?;
        consumer.register_message_listener_concurrently(Listener(on_event));
        consumer.start().await.map_err(cant)?;
        Ok(tokio::spawn(async move {
            stop.cancelled().await;
            MQPushConsumer::shutdown(&mut consumer).await;
        }))
    }

    /// Deletes the run's topic and consumer groups.
    pub(crate) async fn remove(&self) {
        let admin = self.admin.lock().await;
        let deleted = tokio::time::timeout(
            TIMEOUT,
            admin.delete_topic(self.name.as_str().into(), self.cluster.as_str().into()),
        )
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            warn!(message = "Could not delete the benchmark topic.", topic = %self.name);
        }
        let groups = self.groups.all();
        for group in groups {
            let r = tokio::time::timeout(
                TIMEOUT,
                admin.delete_subscription_group(
                    self.master_addr.as_str().into(),
                    group.as_str().into(),
                    Some(true),
                ),
            )
            .await;
            if !matches!(r, Ok(Ok(()))) {
                warn!(message = "Could not delete a benchmark group.", %group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls_name_the_name_servers_and_the_cluster() {
        assert_eq!(
            parse_url("rocketmq://127.0.0.1:9876"),
            Some(("127.0.0.1:9876".to_owned(), "DefaultCluster".to_owned()))
        );
        assert_eq!(
            parse_url("rocketmq://a:1,b:2/?cluster=C1"),
            Some(("a:1;b:2".to_owned(), "C1".to_owned()))
        );
        assert_eq!(parse_url("rocketmq://"), None);
        assert_eq!(parse_url("rocketmq://host"), None);
        assert_eq!(parse_url("rocketmq://a:1?bogus=1"), None);
        assert_eq!(parse_url("kafka://a:1"), None);
    }
}
