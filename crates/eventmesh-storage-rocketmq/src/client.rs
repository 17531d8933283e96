//! The RocketMQ clients one store holds, behind a small API in the store's own terms: topic
//! admin, routes, batch sends to one queue, pulls at an offset, queue offsets and consumer
//! offsets. Every call is bounded by `request_timeout`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cheetah_string::CheetahString;
use parking_lot::Mutex;
use rocketmq_client_rust::{
    ClientConfig, ClientInstanceHandle, ClientRuntime, ClientRuntimeConfig, ConsumerAdmin,
    DefaultMQAdminExt, DefaultMQProducer, RouteAdmin, TopicAdmin,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use tracing::debug;

use crate::error::RocketError;

/// Where a topic's one queue lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) broker_name: String,
    pub(crate) broker_addr: String,
}

/// What one pull found.
pub(crate) struct Pulled {
    /// Messages at and after the offset asked for, in offset order.
    pub(crate) messages: Vec<MessageExt>,
    /// Whether the offset asked for was outside what the queue holds.
    pub(crate) illegal: bool,
    /// The queue's lowest retained offset.
    pub(crate) min: u64,
}

/// The clients of one store.
pub(crate) struct Clients {
    owner: Mutex<Option<RuntimeOwner>>,
    runtime: Arc<ClientRuntime>,
    handle: ClientInstanceHandle,
    /// Producers on their own client instances (connections), used in turn: one producer
    /// sends one request at a time.
    producers: Vec<DefaultMQProducer>,
    next_producer: std::sync::atomic::AtomicUsize,
    admin: tokio::sync::Mutex<DefaultMQAdminExt>,
    timeout: Duration,
    cluster: String,
    /// Cached routes; `true` marks one whose broker failed: it is asked for again, and kept
    /// while the name servers no longer route the topic (they drop a dead broker's topics).
    routes: Mutex<HashMap<String, (Route, bool)>>,
}

/// Producers sending at once (each on its own connection).
const PRODUCERS: usize = 4;

/// How often the clients refresh topic routes from the name servers, in milliseconds.
const ROUTE_POLL_MS: u32 = 10_000;

/// The longest the client's tasks may take to stop on close (its default is 30 s).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Clients {
    /// Starts the clients against the name servers `namesrv` (`h1:p;h2:p`).
    pub(crate) async fn start(
        namesrv: &str,
        cluster: &str,
        instance: &str,
        timeout: Duration,
    ) -> Result<Clients, RocketError> {
        let mut rt_config = RuntimeConfig::for_parallelism("eventmesh-rocketmq", 2);
        rt_config.shutdown_timeout = SHUTDOWN_TIMEOUT;
        let owner = RuntimeOwner::plan(rt_config)
            .map_err(|e| RocketError::Config(format!("client runtime: {e}")))?
            .build()
            .map_err(|e| RocketError::Config(format!("client runtime: {e}")))?;
        let telemetry = rocketmq_observability::TelemetryRuntimeGuard::noop();
        let runtime = ClientRuntime::try_new(
            owner.root_context().component("eventmesh-store"),
            ClientRuntimeConfig {
                shutdown_timeout: SHUTDOWN_TIMEOUT,
                ..ClientRuntimeConfig::default()
            },
            telemetry.handle(),
        )
        .map_err(|e| RocketError::Config(format!("client runtime: {e}")))?;

        let mut config = ClientConfig::new();
        config.set_namesrv_addr(namesrv.into());
        config.set_mq_client_api_timeout(ms(timeout));
        // Routes are polled every 10 s, the client's minimum (its default is 30 s): a broker
        // that restarts is used again soon after it registers with the name servers.
        config.set_poll_name_server_interval(ROUTE_POLL_MS);
        let base_config = config.clone();
        config.set_instance_name(format!("{instance}-h").into());
        let handle = ClientInstanceHandle::get_or_create(&runtime, rand::random(), config, None)
            .map_err(|e| RocketError::from_client("starting the client", &e))?;
        handle
            .start()
            .await
            .map_err(|e| RocketError::from_client("starting the client", &e))?;

        let send_timeout = u32::try_from(ms(timeout)).unwrap_or(u32::MAX);
        let mut producers = Vec::with_capacity(PRODUCERS);
        for n in 0..PRODUCERS {
            let mut producer_config = base_config.clone();
            producer_config.set_instance_name(format!("{instance}-p{n}").into());
            let mut producer = DefaultMQProducer::builder(runtime.clone())
                .client_config(producer_config)
                .producer_group(format!("{instance}-producer"))
                .name_server_addr(namesrv.to_owned())
                .send_msg_timeout(send_timeout)
                .retry_times_when_send_failed(0)
                .max_message_size(64 * 1024 * 1024)
                .build();
            producer
                .start()
                .await
                .map_err(|e| RocketError::from_client("starting the producer", &e))?;
            producers.push(producer);
        }

        let mut admin = DefaultMQAdminExt::with_timeout(runtime.clone(), timeout);
        admin.set_namesrv_addr(namesrv);
        admin
            .start()
            .await
            .map_err(|e| RocketError::from_client("starting the admin client", &e))?;

        Ok(Clients {
            owner: Mutex::new(Some(owner)),
            runtime,
            handle,
            producers,
            next_producer: std::sync::atomic::AtomicUsize::new(0),
            admin: tokio::sync::Mutex::new(admin),
            timeout,
            cluster: cluster.to_owned(),
            routes: Mutex::new(HashMap::new()),
        })
    }

    /// Runs a client call within the request timeout.
    async fn call<T, F>(&self, op: &str, f: F) -> Result<T, RocketError>
    where
        F: Future<Output = rocketmq_client_rust::ClientResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RocketError::from_client(op, &e)),
            Err(_) => Err(RocketError::Unavailable(format!(
                "{op}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// The master brokers (name, address) of the configured cluster.
    async fn masters(&self) -> Result<Vec<(String, String)>, RocketError> {
        let admin = self.admin.lock().await;
        let info = self
            .call("reading the cluster", admin.examine_broker_cluster_info())
            .await?;
        let names: HashSet<CheetahString> = info
            .cluster_addr_table
            .as_ref()
            .and_then(|t| t.get(self.cluster.as_str()).cloned())
            .unwrap_or_default();
        let mut out = Vec::new();
        if let Some(table) = &info.broker_addr_table {
            for name in names {
                if let Some(addr) = table.get(&name).and_then(|b| b.broker_addrs().get(&0)) {
                    out.push((name.to_string(), addr.to_string()));
                }
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(RocketError::Unavailable(format!(
                "no master broker of cluster `{}` is registered with the name servers",
                self.cluster
            )));
        }
        Ok(out)
    }

    /// Checks that the name servers answer and know a master broker of the cluster.
    pub(crate) async fn check_cluster(&self) -> Result<(), RocketError> {
        self.masters().await.map(drop)
    }

    /// Creates a topic with one read and one write queue on the cluster's first master.
    pub(crate) async fn create_topic(&self, name: &str) -> Result<(), RocketError> {
        let (_, addr) = self
            .masters()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RocketError::Unavailable("no master broker".to_owned()))?;
        let mut config = rocketmq_model::topic::TopicConfig::new(name);
        config.read_queue_nums = 1;
        config.write_queue_nums = 1;
        let admin = self.admin.lock().await;
        self.call(
            "creating a topic",
            admin.create_and_update_topic_config(addr.into(), config),
        )
        .await?;
        Ok(())
    }

    /// Creates (or updates) a consumer group on the broker at `addr`; the broker refuses offset
    /// commits of groups it does not know.
    pub(crate) async fn create_group(&self, addr: &str, group: &str) -> Result<(), RocketError> {
        let config =
            rocketmq_protocol::protocol::subscription::subscription_group_config::SubscriptionGroupConfig::new(
                group.into(),
            );
        let admin = self.admin.lock().await;
        self.call(
            "creating a consumer group",
            admin.create_and_update_subscription_group_config(addr.into(), config),
        )
        .await
    }

    /// Deletes a topic from the cluster's brokers and the name servers.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<(), RocketError> {
        self.routes.lock().remove(name);
        let admin = self.admin.lock().await;
        self.call(
            "deleting a topic",
            admin.delete_topic(name.into(), self.cluster.as_str().into()),
        )
        .await
    }

    /// Every topic the name servers know.
    pub(crate) async fn all_topics(&self) -> Result<Vec<String>, RocketError> {
        let admin = self.admin.lock().await;
        let list = self
            .call("listing topics", admin.fetch_all_topic_list())
            .await?;
        Ok(list.topic_list.iter().map(|t| t.to_string()).collect())
    }

    /// Forgets the cached route of a topic (deleted, or created by this store).
    pub(crate) fn forget_route(&self, name: &str) {
        self.routes.lock().remove(name);
    }

    /// Marks the cached route of a topic as failed: the next call asks the name servers again.
    fn suspect_route(&self, name: &str) {
        if let Some((_, stale)) = self.routes.lock().get_mut(name) {
            *stale = true;
        }
    }

    /// The route of a topic's queue 0, `None` when the name servers do not know the topic.
    pub(crate) async fn route(&self, name: &str) -> Result<Option<Route>, RocketError> {
        let stale = match self.routes.lock().get(name) {
            Some((r, false)) => return Ok(Some(r.clone())),
            Some((r, true)) => Some(r.clone()),
            None => None,
        };
        let data = self
            .call(
                "reading a topic route",
                self.handle.topic_route(name, ms(self.timeout)),
            )
            .await;
        let data = match data {
            Ok(d) => d,
            // The name server answers TOPIC_NOT_EXIST (17) for an unknown topic.
            Err(RocketError::Broker { reason, .. }) if reason.contains("17") => None,
            Err(e) => return Err(e),
        };
        let Some(data) = data else {
            // While its broker is down the name servers forget a topic: keep the last route, so
            // calls fail as unavailable rather than as an unknown topic.
            return Ok(stale);
        };
        let mut brokers: Vec<&str> = data
            .queue_datas
            .iter()
            .filter(|q| q.read_queue_nums > 0 && q.write_queue_nums > 0)
            .map(|q| q.broker_name.as_str())
            .collect();
        brokers.sort_unstable();
        let Some(broker) = brokers.first() else {
            return Ok(stale);
        };
        let Some(addr) = data
            .broker_datas
            .iter()
            .find(|b| b.broker_name().as_str() == *broker)
            .and_then(|b| b.broker_addrs().get(&0))
        else {
            return Err(RocketError::Unavailable(format!(
                "the master of broker `{broker}` holding topic `{name}` is not registered"
            )));
        };
        let route = Route {
            broker_name: (*broker).to_owned(),
            broker_addr: addr.to_string(),
        };
        self.routes
            .lock()
            .insert(name.to_owned(), (route.clone(), false));
        Ok(Some(route))
    }

    /// Sends a batch to the topic's queue 0; returns the queue offset of its first message. A
    /// failure to reach the broker marks the cached route, so the next call asks again.
    pub(crate) async fn send(
        &self,
        topic: &str,
        route: &Route,
        messages: Vec<Message>,
    ) -> Result<u64, RocketError> {
        let r = self.send_inner(topic, route, messages).await;
        if matches!(r, Err(RocketError::Unavailable(_))) {
            self.suspect_route(topic);
        }
        r
    }

    async fn send_inner(
        &self,
        topic: &str,
        route: &Route,
        messages: Vec<Message>,
    ) -> Result<u64, RocketError> {
        let mq = MessageQueue::from_parts(topic, route.broker_name.as_str(), 0);
        let n = messages.len();
        let producer = &self.producers[self
            .next_producer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.producers.len()];
        let result = if n == 1 {
            let Some(m) = messages.into_iter().next() else {
                return Err(RocketError::Config("empty batch".to_owned()));
            };
            self.call(
                "publishing",
                producer.send_to_queue_with_timeout(m, mq, ms(self.timeout)),
            )
            .await?
            .ok_or_else(|| RocketError::Protocol {
                op: "publishing".to_owned(),
                reason: "no send result".to_owned(),
            })?
        } else {
            self.call(
                "publishing",
                producer.send_batch_to_queue_with_timeout(messages, mq, ms(self.timeout)),
            )
            .await?
        };
        use rocketmq_model::result::SendStatus;
        match result.send_status {
            SendStatus::SendOk => Ok(result.queue_offset),
            other => Err(RocketError::Unavailable(format!(
                "publishing: the broker answered {other:?}"
            ))),
        }
    }

    /// Pulls up to `max` messages of queue 0 from `offset`, waiting up to `suspend` at the
    /// broker when there are none.
    pub(crate) async fn pull(
        &self,
        group: &str,
        topic: &str,
        route: &Route,
        offset: u64,
        max: u32,
        suspend: Duration,
    ) -> Result<Pulled, RocketError> {
        use rocketmq_model::common::sys_flag::pull_sys_flag::PullSysFlag;
        use rocketmq_model::result::PullStatus;
        use rocketmq_protocol::protocol::header::namesrv::topic_operation_header::TopicRequestHeader;
        use rocketmq_protocol::protocol::header::pull_message_request_header::PullMessageRequestHeader;

        let suspend_ms = ms(suspend);
        let sys_flag = PullSysFlag::build_sys_flag(false, suspend_ms > 0, true, false);
        let header = PullMessageRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            lite_topic: None,
            queue_id: 0,
            queue_offset: i64::try_from(offset).unwrap_or(i64::MAX),
            max_msg_nums: i32::try_from(max).unwrap_or(i32::MAX),
            sys_flag: i32::try_from(sys_flag).unwrap_or(0),
            commit_offset: 0,
            suspend_timeout_millis: suspend_ms,
            sub_version: 0,
            subscription: Some("*".into()),
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
            request_source: None,
            proxy_forward_client_id: None,
            topic_request: Some(TopicRequestHeader {
                lo: None,
                rpc: Some(rpc_header(&route.broker_name)),
            }),
        };
        let limit = self.timeout + suspend;
        let fut = self.handle.pull_outcome_from_broker(
            &route.broker_addr,
            header,
            ms(self.timeout) + suspend_ms,
        );
        let outcome = match tokio::time::timeout(limit, fut).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let e = RocketError::from_client("pulling", &e);
                if matches!(e, RocketError::Unavailable(_)) {
                    self.suspect_route(topic);
                }
                return Err(e);
            }
            Err(_) => {
                return Err(RocketError::Unavailable(format!(
                    "pulling: no answer within {} ms",
                    limit.as_millis()
                )));
            }
        };
        let status = outcome.pull_status();
        let next = outcome.next_begin_offset();
        let min = outcome.min_offset();
        debug!(message = "Pulled.", topic, offset, ?status, next);
        let messages = outcome.into_messages().unwrap_or_default();
        Ok(Pulled {
            messages: if status == PullStatus::Found {
                messages
            } else {
                Vec::new()
            },
            illegal: status == PullStatus::OffsetIllegal,
            min,
        })
    }

    /// The lowest and the next offset of a topic's queue 0.
    pub(crate) async fn offsets(
        &self,
        topic: &str,
        route: &Route,
    ) -> Result<(u64, u64), RocketError> {
        let mq = MessageQueue::from_parts(topic, route.broker_name.as_str(), 0);
        let t = ms(self.timeout);
        let min = self
            .call(
                "reading the lowest offset",
                self.handle.min_offset(&route.broker_addr, &mq, t),
            )
            .await?;
        let max = self
            .call(
                "reading the next offset",
                self.handle.max_offset(&route.broker_addr, &mq, t),
            )
            .await?;
        Ok((to_u64(min), to_u64(max)))
    }

    /// The first offset of queue 0 whose message was stored at or after `time_ms`.
    pub(crate) async fn offset_at(
        &self,
        topic: &str,
        route: &Route,
        time_ms: i64,
    ) -> Result<u64, RocketError> {
        let mq = MessageQueue::from_parts(topic, route.broker_name.as_str(), 0);
        let o = self
            .call(
                "searching an offset by time",
                self.handle.search_offset(
                    &route.broker_addr,
                    &mq,
                    time_ms,
                    rocketmq_model::common::boundary_type::BoundaryType::Lower,
                    ms(self.timeout),
                ),
            )
            .await?;
        Ok(to_u64(o))
    }

    /// A consumer group's offset on a topic's queue 0; `None` when it has none.
    /// Takes or renews the broker's lock of `topic`'s queue for `group` as `client_id` (the
    /// rebalance lock of RocketMQ's orderly consumers: held until released or not renewed for
    /// the broker's `lockMaxLiveTime`, 60 s by default). `false`: another client holds it.
    pub(crate) async fn lock_queue(
        &self,
        group: &str,
        topic: &str,
        route: &Route,
        client_id: &str,
    ) -> Result<bool, RocketError> {
        use rocketmq_protocol::protocol::body::request::lock_batch_request_body::LockBatchRequestBody;
        let mq = MessageQueue::from_parts(topic, route.broker_name.as_str(), 0);
        let body = LockBatchRequestBody {
            consumer_group: Some(group.into()),
            client_id: Some(client_id.into()),
            only_this_broker: true,
            mq_set: HashSet::from([mq.clone()]),
        };
        let fut = self
            .handle
            .lock_batch_mq(&route.broker_addr, body, ms(self.timeout));
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(locked)) => Ok(locked.contains(&mq)),
            Ok(Err(e)) => Err(RocketError::from_client("locking a cursor's queue", &e)),
            Err(_) => Err(RocketError::Unavailable(format!(
                "locking a cursor's queue: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Releases the lock [`Self::lock_queue`] took, so that another store may take the cursor
    /// at once.
    pub(crate) async fn unlock_queue(
        &self,
        group: &str,
        topic: &str,
        route: &Route,
        client_id: &str,
    ) -> Result<(), RocketError> {
        use rocketmq_protocol::protocol::body::unlock_batch_request_body::UnlockBatchRequestBody;
        let body = UnlockBatchRequestBody {
            consumer_group: Some(group.into()),
            client_id: Some(client_id.into()),
            only_this_broker: true,
            mq_set: HashSet::from([MessageQueue::from_parts(
                topic,
                route.broker_name.as_str(),
                0,
            )]),
        };
        let addr: CheetahString = route.broker_addr.as_str().into();
        let fut = self.handle.unlock_batch_mq(&addr, body, ms(self.timeout));
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RocketError::from_client("unlocking a cursor's queue", &e)),
            Err(_) => Err(RocketError::Unavailable(format!(
                "unlocking a cursor's queue: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    pub(crate) async fn consumer_offset(
        &self,
        group: &str,
        topic: &str,
        route: &Route,
    ) -> Result<Option<u64>, RocketError> {
        use rocketmq_protocol::protocol::header::namesrv::topic_operation_header::TopicRequestHeader;
        use rocketmq_protocol::protocol::header::query_consumer_offset_request_header::QueryConsumerOffsetRequestHeader;
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id: 0,
            set_zero_if_not_found: Some(false),
            topic_request_header: Some(TopicRequestHeader {
                lo: None,
                rpc: Some(rpc_header(&route.broker_name)),
            }),
        };
        let fut = self
            .handle
            .query_consumer_offset(&route.broker_addr, header, ms(self.timeout));
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(o)) if o >= 0 => Ok(Some(to_u64(o))),
            Ok(Ok(_)) => Ok(None),
            // QUERY_NOT_FOUND: the group never committed on this queue.
            Ok(Err(e)) if e.broker_response_code() == Some(22) => Ok(None),
            Ok(Err(e)) => Err(RocketError::from_client("reading a consumer offset", &e)),
            Err(_) => Err(RocketError::Unavailable(format!(
                "reading a consumer offset: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Sets a consumer group's offset on a topic's queue 0.
    pub(crate) async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        route: &Route,
        offset: u64,
    ) -> Result<(), RocketError> {
        use rocketmq_protocol::protocol::header::namesrv::topic_operation_header::TopicRequestHeader;
        use rocketmq_protocol::protocol::header::update_consumer_offset_header::UpdateConsumerOffsetRequestHeader;
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id: 0,
            commit_offset: i64::try_from(offset).unwrap_or(i64::MAX),
            topic_request_header: Some(TopicRequestHeader {
                lo: None,
                rpc: Some(rpc_header(&route.broker_name)),
            }),
        };
        self.call(
            "committing a consumer offset",
            self.handle.update_consumer_offset(
                &route.broker_addr.as_str().into(),
                header,
                ms(self.timeout),
            ),
        )
        .await
    }

    /// Stops every client and the client runtime.
    pub(crate) async fn shutdown(&self) {
        self.admin.lock().await.shutdown().await;
        self.handle.shutdown_owned().await;
        let _ = self.runtime.shutdown().await;
        let owner = self.owner.lock().take();
        if let Some(owner) = owner {
            let _ = owner.shutdown_tasks().await;
            let _ = owner.shutdown_background();
        }
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn rpc_header(broker: &str) -> rocketmq_transport::api::RpcRequestHeader {
    rocketmq_transport::api::RpcRequestHeader {
        namespace: None,
        namespaced: None,
        broker_name: Some(broker.into()),
        oneway: None,
    }
}
