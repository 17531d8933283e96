//! Webhook subscriptions and their pushes.
//!
//! A subscription is (consumer group, topic, URL) with a mode, a type, a push format and
//! optional limits. It is persisted in the metadata store under
//! `webhooks/<group>/<topic>/<url>` (not on a lease, so it survives a restart: the node restores
//! every subscription at start and delivery resumes from the group's position). A URL is alive
//! while it heart-beats (code 203) or subscribes again; one silent for `url_ttl` is removed.
//!
//! Each (group, topic) becomes core members through [`pusher`]s: one for a CLUSTERING
//! subscription (round-robin over its URLs), one per URL for BROADCASTING. The core decides
//! windows, attempts, backoff and dead-lettering; the pusher reports each answer (see
//! [`answer`]).
//!
//! Files: `client.rs` (the HTTP client and its deny-list connector), `deny.rs`, `format.rs` (the
//! three push formats), `answer.rs` (the answer table), `pusher.rs`.
//!
//! Limits: the window (`maxInFlight`) and pace (`pushRate`) of a CLUSTERING (group, topic) are
//! set by its first subscription on the node; later ones with other values do not change them
//! until every URL of it is gone.

mod answer;
mod client;
mod deny;
mod format;
mod pusher;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::http::Uri;
use bytes::Bytes;
use eventmesh_config::Config;
use eventmesh_core::{
    ErrorCode, EventMeshError, GroupName, SessionMeta, Subscription, SubscriptionMode,
    SubscriptionType, Topic, TopicPattern, Transport,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use format::PushFormat;

use super::HttpOptions;
use super::form::{FieldError, Fields};
use super::metrics;
use crate::core::Core;
use crate::meta::{MetaStore, escape_key_part};
use client::PushClient;
use deny::DenyList;
use pusher::{PushEnv, Pusher, PusherHandle, Target, Targets};

/// The meta-store prefix of webhook subscriptions.
pub const META_PREFIX: &str = "webhooks/";

/// Options of webhook pushes (`[server.http.webhook]` and `delivery.ack_timeout`).
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// How long one push may take.
    pub push_timeout: Duration,
    /// Default and largest window per subscription.
    pub max_in_flight: u32,
    /// Default pushes per second per subscription (0: unlimited).
    pub push_rate: u32,
    /// A URL silent for this long is removed (zero: never).
    pub url_ttl: Duration,
    /// Failures in a row before a URL is skipped.
    pub unhealthy_after: u32,
    /// How long a failing URL is skipped.
    pub unhealthy_for: Duration,
    /// Denied networks (CIDR).
    pub deny_networks: Vec<String>,
    /// The core's ack timeout (a window is sized so that paced pushes start before it).
    pub ack_timeout: Duration,
    /// Extra CA certificates (PEM file) for https URLs; empty: the system's roots only.
    pub ca_file: String,
}

impl WebhookOptions {
    /// The options the configuration gives.
    pub fn from_config(config: &Config) -> Self {
        let w = &config.server.http.webhook;
        WebhookOptions {
            push_timeout: w
                .push_timeout
                .min(config.delivery.ack_timeout.mul_f64(0.8))
                .max(Duration::from_millis(1)),
            max_in_flight: w.max_in_flight.max(1),
            push_rate: w.push_rate,
            url_ttl: w.url_ttl,
            unhealthy_after: w.unhealthy_after.max(1),
            unhealthy_for: w.unhealthy_for,
            deny_networks: w.deny_networks.clone(),
            ack_timeout: config.delivery.ack_timeout,
            ca_file: w.ca_file.clone(),
        }
    }
}

/// One topic of a subscribe request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicItem {
    /// The topic.
    pub topic: Topic,
    /// CLUSTERING or BROADCASTING.
    pub mode: SubscriptionMode,
    /// ASYNC or SYNC.
    pub ty: SubscriptionType,
}

/// A webhook subscribe.
#[derive(Clone, Debug)]
pub struct SubscribeRequest {
    /// The subscriber's URL.
    pub url: String,
    /// The consumer group.
    pub group: GroupName,
    /// The topics.
    pub items: Vec<TopicItem>,
    /// The push format.
    pub format: PushFormat,
    /// Pushes in flight at most (default and cap: `max_in_flight`).
    pub max_in_flight: Option<u32>,
    /// Pushes per second (default: `push_rate`).
    pub push_rate: Option<u32>,
}

/// Topic items from JSON, each with its filter: an array of `{"topic","mode","type","filter"}`
/// objects (keys in any case; mode and type default to CLUSTERING and ASYNC, the filter to
/// `default_filter`) or of topic names.
pub(crate) fn topic_items(
    v: &Value,
    default_filter: Option<&str>,
) -> Result<Vec<(TopicItem, Option<String>)>, FieldError> {
    let Value::Array(items) = v else {
        return Err(FieldError::invalid(
            "topic",
            "must be a JSON array of {\"topic\",\"mode\",\"type\"}",
        ));
    };
    if items.is_empty() {
        return Err(FieldError::invalid("topic", "names no topic"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (name, mode, ty, filter) = match item {
                Value::String(s) => (s.clone(), None, None, None),
                Value::Object(o) => {
                    let f = Fields::from_json_object(o);
                    let filter = f.get("filter").map(str::to_owned);
                    let name = f
                        .get("topic")
                        .ok_or_else(|| {
                            FieldError::invalid("topic", format!("item {i} has no `topic`"))
                        })?
                        .to_owned();
                    (
                        name,
                        f.get("mode").map(str::to_owned),
                        f.get("type").map(str::to_owned),
                        filter,
                    )
                }
                _ => {
                    return Err(FieldError::invalid(
                        "topic",
                        format!("item {i} is neither an object nor a topic name"),
                    ));
                }
            };
            let topic = Topic::new(name.trim())
                .map_err(|e| FieldError::invalid("topic", format!("item {i}: {e}")))?;
            let mode = match mode {
                None => SubscriptionMode::Clustering,
                Some(m) => SubscriptionMode::parse(&m).ok_or_else(|| {
                    FieldError::invalid(
                        "topic",
                        format!("item {i}: mode `{m}` is not CLUSTERING or BROADCASTING"),
                    )
                })?,
            };
            let ty = match ty {
                None => SubscriptionType::Async,
                Some(t) => SubscriptionType::parse(&t).ok_or_else(|| {
                    FieldError::invalid(
                        "topic",
                        format!("item {i}: type `{t}` is not ASYNC or SYNC"),
                    )
                })?,
            };
            let filter = filter
                .or_else(|| default_filter.map(str::to_owned))
                .filter(|f| !f.trim().is_empty());
            Ok((TopicItem { topic, mode, ty }, filter))
        })
        .collect()
}

/// A subscription as persisted and listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// The subscriber's URL.
    pub url: String,
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// `CLUSTERING` or `BROADCASTING`.
    pub mode: String,
    /// `ASYNC` or `SYNC`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The push format.
    pub format: PushFormat,
    /// The window asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// The pace asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_rate: Option<u32>,
    /// The CloudEvents SQL filter of the (group, topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

type SubKey = (GroupName, Topic);

struct Sub {
    mode: SubscriptionMode,
    ty: SubscriptionType,
    filter: Option<String>,
    urls: BTreeMap<String, SubscriptionInfo>,
    /// CLUSTERING: the shared URL list of its one pusher.
    targets: Arc<Targets>,
    /// CLUSTERING: key `None`; BROADCASTING: one per URL.
    pushers: HashMap<Option<String>, PusherHandle>,
}

/// The webhook subscriptions of one node and their pushers.
pub struct WebhookManager {
    env: Arc<PushEnv>,
    meta: Arc<dyn MetaStore>,
    options: WebhookOptions,
    /// Serializes subscribe / unsubscribe / expiry.
    subs: tokio::sync::Mutex<HashMap<SubKey, Sub>>,
    /// When each (group, topic, URL) was last heard from.
    seen: Mutex<HashMap<(GroupName, Topic, String), Instant>>,
    tasks: Mutex<JoinSet<()>>,
    cancel: Mutex<CancellationToken>,
    shutdown_grace: Duration,
}

fn meta_key(group: &GroupName, topic: &Topic, url: &str) -> String {
    format!(
        "{META_PREFIX}{}/{}/{}",
        escape_key_part(group.as_str()),
        escape_key_part(&topic.to_string()),
        escape_key_part(url)
    )
}

fn meta_err(e: crate::meta::MetaError) -> EventMeshError {
    EventMeshError::new(
        ErrorCode::StorageUnavailable,
        format!("cannot persist the webhook subscription: {e}"),
    )
}

/// Why a call to another mesh failed.
#[derive(Debug)]
pub(crate) enum RemoteCallError {
    /// The URL is not `http[s]://host[:port]/...`.
    BadUrl(EventMeshError),
    /// The URL resolves into a denied network.
    Denied(String),
    /// Connecting, sending or reading the answer failed, or took longer than the push timeout.
    Unreachable(String),
}

/// Checks a subscriber URL's shape: `http[s]://host[:port]/...`.
fn parse_url(url: &str) -> Result<Uri, EventMeshError> {
    let bad = |why: &str| {
        EventMeshError::new(
            ErrorCode::BadRequest,
            format!("url `{url}` is invalid: {why}"),
        )
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("use an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    Ok(uri)
}

impl WebhookManager {
    /// POSTs a JSON `body` to `url` (another mesh) through the push client, so the same deny
    /// list applies, within the push timeout: the status and the answer's body.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(axum::http::StatusCode, Bytes), RemoteCallError> {
        let uri = parse_url(url).map_err(RemoteCallError::BadUrl)?;
        let mut req = axum::http::Request::post(uri).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| {
                RemoteCallError::BadUrl(EventMeshError::new(
                    ErrorCode::BadRequest,
                    format!("`{url}`: {e}"),
                ))
            })?;
        match tokio::time::timeout(self.env.push_timeout, self.env.client.send(req)).await {
            Ok(Ok(a)) => Ok((a.status, a.body)),
            Ok(Err(client::PushError::Denied(why))) => Err(RemoteCallError::Denied(why)),
            Ok(Err(e)) => Err(RemoteCallError::Unreachable(e.to_string())),
            Err(_) => Err(RemoteCallError::Unreachable(format!(
                "no answer within {:?}",
                self.env.push_timeout
            ))),
        }
    }

    pub(crate) fn new(
        core: Arc<Core>,
        meta: Arc<dyn MetaStore>,
        http: HttpOptions,
    ) -> Result<Arc<Self>, String> {
        let options = http.webhook.clone();
        let client = PushClient::new(
            DenyList::new(&options.deny_networks),
            options.push_timeout,
            &options.ca_file,
        )?;
        let env = Arc::new(PushEnv {
            core,
            client,
            instance: format::Instance {
                cluster: http.cluster.clone(),
                ip: http.ip.clone(),
                env: http.env.clone(),
                idc: http.idc.clone(),
            },
            push_timeout: options.push_timeout,
            unhealthy_after: options.unhealthy_after,
            unhealthy_for: options.unhealthy_for,
        });
        Ok(Arc::new(WebhookManager {
            env,
            meta,
            options,
            subs: tokio::sync::Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
            cancel: Mutex::new(CancellationToken::new()),
            shutdown_grace: http.shutdown_grace,
        }))
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Restores the persisted subscriptions and starts the expiry of silent URLs; `cancel` stops
    /// everything (see [`WebhookManager::stop`]).
    pub(crate) async fn start(self: &Arc<Self>, cancel: CancellationToken) {
        *self.cancel.lock() = cancel.clone();
        match self.meta.list(META_PREFIX).await {
            Ok(entries) => {
                let mut restored = 0usize;
                for (key, value) in entries {
                    let info: SubscriptionInfo = match serde_json::from_slice(&value) {
                        Ok(i) => i,
                        Err(error) => {
                            warn!(message = "Skipping an unreadable webhook subscription.", key = %key, %error);
                            continue;
                        }
                    };
                    match self.restore(info).await {
                        Ok(()) => restored += 1,
                        Err(error) => {
                            warn!(message = "Failed to restore a webhook subscription.", key = %key, %error);
                        }
                    }
                }
                if restored > 0 {
                    info!(
                        message = "Webhook subscriptions restored.",
                        count = restored
                    );
                }
            }
            Err(error) => {
                warn!(message = "Failed to list the persisted webhook subscriptions.", %error);
            }
        }
        if !self.options.url_ttl.is_zero() {
            let me = Arc::downgrade(self);
            let period = (self.options.url_ttl / 10)
                .clamp(Duration::from_millis(100), Duration::from_secs(5));
            self.spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(period) => {}
                    }
                    let Some(me) = me.upgrade() else { return };
                    me.expire().await;
                }
            });
        }
    }

    /// Stops every pusher: pushes in progress get `shutdown_grace` to finish, then are aborted
    /// (the core returns what they held to the store).
    pub(crate) async fn stop(&self) {
        self.cancel.lock().cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.shutdown_grace, drained)
            .await
            .is_err()
        {
            debug!(message = "Webhook pushers still running after the grace; aborting them.");
            tasks.abort_all();
        }
    }

    async fn restore(&self, info: SubscriptionInfo) -> Result<(), EventMeshError> {
        let group = GroupName::new(&info.consumer_group)?;
        let topic = Topic::parse(&info.topic)?;
        let mut subs = self.subs.lock().await;
        self.apply(&mut subs, &group, &topic, info).await
    }

    /// Subscribes `req.url` to every topic of `req`; answers once the store positions are
    /// recorded. All or nothing: a failure undoes what this request added.
    pub async fn subscribe(&self, req: SubscribeRequest) -> Result<(), EventMeshError> {
        self.subscribe_filtered(req, None).await
    }

    /// [`WebhookManager::subscribe`] with a CloudEvents SQL `filter` for every topic of `req`
    /// (the filter belongs to the (group, topic): another one for the same group and topic is a
    /// conflict).
    pub async fn subscribe_filtered(
        &self,
        req: SubscribeRequest,
        filter: Option<String>,
    ) -> Result<(), EventMeshError> {
        let filter = filter.filter(|f| !f.trim().is_empty());
        let uri = parse_url(&req.url)?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host = uri.host().unwrap_or_default().to_owned();
        client::check_url_host(&self.env.client.deny, &host, port)
            .await
            .map_err(|why| {
                EventMeshError::new(
                    ErrorCode::Forbidden,
                    format!("url `{}` refused: {why}", req.url),
                )
            })?;
        let mut subs = self.subs.lock().await;
        for item in &req.items {
            if let Some(s) = subs.get(&(req.group.clone(), item.topic.clone()))
                && (s.mode != item.mode || s.ty != item.ty || s.filter != filter)
            {
                return Err(EventMeshError::new(
                    ErrorCode::SubscriptionConflict,
                    format!(
                        "group `{}` already subscribes topic `{}` as {} {} with filter {} here; use the same mode, type and filter",
                        req.group,
                        item.topic,
                        s.mode.as_str(),
                        s.ty.as_str(),
                        s.filter
                            .as_deref()
                            .map_or_else(|| "none".to_owned(), |f| format!("`{f}`"))
                    ),
                ));
            }
        }
        let cap = self.options.max_in_flight;
        let mut added: Vec<Topic> = Vec::new();
        for item in &req.items {
            let info = SubscriptionInfo {
                url: req.url.clone(),
                consumer_group: req.group.to_string(),
                topic: item.topic.to_string(),
                mode: item.mode.as_str().to_owned(),
                ty: item.ty.as_str().to_owned(),
                format: req.format,
                max_in_flight: req.max_in_flight.map(|m| m.clamp(1, cap)),
                push_rate: req.push_rate,
                filter: filter.clone(),
            };
            let key = meta_key(&req.group, &item.topic, &req.url);
            let value = Bytes::from(serde_json::to_vec(&info).unwrap_or_default());
            let was_new = !subs
                .get(&(req.group.clone(), item.topic.clone()))
                .is_some_and(|s| s.urls.contains_key(&req.url));
            let result = match self.meta.put(&key, value, None).await {
                Ok(()) => self.apply(&mut subs, &req.group, &item.topic, info).await,
                Err(e) => Err(meta_err(e)),
            };
            if let Err(e) = result {
                if was_new {
                    let _ = self.meta.delete(&key).await;
                }
                for t in added {
                    self.remove(&mut subs, &req.group, &t, &req.url, true).await;
                }
                return Err(e);
            }
            if was_new {
                added.push(item.topic.clone());
            }
            info!(message = "Webhook subscribed.", url = %req.url, group = %req.group, topic = %item.topic, mode = item.mode.as_str(), r#type = item.ty.as_str(), format = req.format.as_str());
        }
        metrics::urls(self.seen.lock().len());
        Ok(())
    }

    /// Adds one (group, topic, URL) here (idempotent: an existing one gets its format updated).
    async fn apply(
        &self,
        subs: &mut HashMap<SubKey, Sub>,
        group: &GroupName,
        topic: &Topic,
        info: SubscriptionInfo,
    ) -> Result<(), EventMeshError> {
        let uri = parse_url(&info.url)?;
        let mode = SubscriptionMode::parse(&info.mode).unwrap_or_default();
        let ty = SubscriptionType::parse(&info.ty).unwrap_or_default();
        let key = (group.clone(), topic.clone());
        let url = info.url.clone();
        self.seen
            .lock()
            .insert((group.clone(), topic.clone(), url.clone()), Instant::now());
        if let Some(s) = subs.get_mut(&key)
            && s.urls.contains_key(&url)
        {
            if let Some(t) = s.targets.get(&url) {
                *t.format.lock() = info.format;
            }
            s.urls.insert(url, info);
            return Ok(());
        }
        let target = Target::new(url.clone(), uri, info.format);
        let window = self.window(info.max_in_flight, info.push_rate);
        let rate = info.push_rate.unwrap_or(self.options.push_rate);
        let filter = info.filter.clone();
        let sub = subs.entry(key.clone()).or_insert_with(|| Sub {
            mode,
            ty,
            filter: filter.clone(),
            urls: BTreeMap::new(),
            targets: Arc::new(Targets::default()),
            pushers: HashMap::new(),
        });
        let started = match mode {
            SubscriptionMode::Clustering => {
                sub.targets.add(target);
                if sub.pushers.is_empty() {
                    let identity = format!("webhook/{group}");
                    self.start_pusher(
                        group,
                        topic,
                        (mode, ty, filter),
                        sub.targets.clone(),
                        identity,
                        window,
                        rate,
                    )
                    .await
                    .map(|h| {
                        sub.pushers.insert(None, h);
                    })
                } else {
                    Ok(())
                }
            }
            SubscriptionMode::Broadcasting => {
                let targets = Arc::new(Targets::default());
                targets.add(target);
                self.start_pusher(
                    group,
                    topic,
                    (mode, ty, filter),
                    targets,
                    url.clone(),
                    window,
                    rate,
                )
                .await
                .map(|h| {
                    sub.pushers.insert(Some(url.clone()), h);
                })
            }
        };
        match started {
            Ok(()) => {
                sub.urls.insert(url, info);
                Ok(())
            }
            Err(e) => {
                sub.targets.remove(&url);
                if sub.urls.is_empty() {
                    subs.remove(&key);
                }
                self.seen
                    .lock()
                    .remove(&(group.clone(), topic.clone(), url));
                Err(e)
            }
        }
    }

    /// The window of a pusher: what the subscription asks (capped), small enough that paced
    /// pushes start well within the core's ack timeout.
    fn window(&self, asked: Option<u32>, rate: Option<u32>) -> usize {
        let cap = self.options.max_in_flight;
        let mut w = asked.unwrap_or(cap).clamp(1, cap) as usize;
        let rate = rate.unwrap_or(self.options.push_rate);
        if rate > 0 {
            let budget = self
                .options
                .ack_timeout
                .saturating_sub(self.options.push_timeout)
                .as_secs_f64()
                / 2.0;
            let paced = (f64::from(rate) * budget).floor().max(1.0) as usize;
            w = w.min(paced);
        }
        w
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_pusher(
        &self,
        group: &GroupName,
        topic: &Topic,
        (mode, ty, filter): (SubscriptionMode, SubscriptionType, Option<String>),
        targets: Arc<Targets>,
        identity: String,
        window: usize,
        rate: u32,
    ) -> Result<PusherHandle, EventMeshError> {
        let core = &self.env.core;
        let session = Arc::new(core.open_session(SessionMeta {
            id: core.new_session_id(),
            transport: Transport::Http,
            peer: None,
            client_identity: identity,
            principal: None,
            traceparent: None,
        })?);
        let (tx, rx) = mpsc::channel(window);
        let endpoint = core.endpoint(tx, Some(window));
        core.subscribe(
            &session,
            Subscription {
                group: group.clone(),
                topic: TopicPattern::Exact(topic.clone()),
                mode,
                ty,
                filter,
            },
            endpoint,
        )
        .await?;
        let cancel = self.cancel.lock().child_token();
        let delete_cursor = Arc::new(AtomicBool::new(false));
        let pusher = Pusher {
            env: self.env.clone(),
            session,
            rx,
            targets,
            rate,
            cancel: cancel.clone(),
            delete_cursor: delete_cursor.clone(),
            group: group.clone(),
            topic: topic.clone(),
        };
        self.spawn(pusher.run());
        Ok(PusherHandle {
            cancel,
            delete_cursor,
        })
    }

    /// Removes one (group, topic, URL): from the meta store, its target, and its pusher when it
    /// was the last URL (or a BROADCASTING one). `explicit`: an unsubscribe (a BROADCASTING
    /// member's cursor is deleted), not an expiry.
    async fn remove(
        &self,
        subs: &mut HashMap<SubKey, Sub>,
        group: &GroupName,
        topic: &Topic,
        url: &str,
        explicit: bool,
    ) -> bool {
        let key = (group.clone(), topic.clone());
        let Some(sub) = subs.get_mut(&key) else {
            return false;
        };
        if sub.urls.remove(url).is_none() {
            return false;
        }
        self.seen
            .lock()
            .remove(&(group.clone(), topic.clone(), url.to_owned()));
        if let Err(error) = self.meta.delete(&meta_key(group, topic, url)).await {
            warn!(message = "Failed to delete a persisted webhook subscription.", %error, url = %url, group = %group, topic = %topic);
        }
        match sub.mode {
            SubscriptionMode::Clustering => {
                sub.targets.remove(url);
                if sub.urls.is_empty()
                    && let Some(p) = sub.pushers.remove(&None)
                {
                    p.stop(false);
                }
            }
            SubscriptionMode::Broadcasting => {
                if let Some(p) = sub.pushers.remove(&Some(url.to_owned())) {
                    p.stop(explicit);
                }
            }
        }
        if sub.urls.is_empty() {
            subs.remove(&key);
        }
        metrics::urls(self.seen.lock().len());
        true
    }

    /// Unsubscribes `url` of `group` from `topics`. Fails when none of them was subscribed.
    pub async fn unsubscribe(
        &self,
        group: &GroupName,
        url: &str,
        topics: &[Topic],
    ) -> Result<(), EventMeshError> {
        let mut subs = self.subs.lock().await;
        let mut removed = 0;
        for t in topics {
            if self.remove(&mut subs, group, t, url, true).await {
                info!(message = "Webhook unsubscribed.", url = %url, group = %group, topic = %t);
                removed += 1;
            }
        }
        if removed == 0 && !topics.is_empty() {
            return Err(EventMeshError::new(
                ErrorCode::NotSubscribed,
                format!(
                    "url `{url}` of group `{group}` is not subscribed to any of those topics here"
                ),
            ));
        }
        Ok(())
    }

    /// Marks (topic, URL) entries of `group` alive; returns how many were known.
    pub fn heartbeat(&self, group: &GroupName, entries: &[(Topic, String)]) -> usize {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        entries
            .iter()
            .filter(|(t, u)| {
                seen.get_mut(&(group.clone(), t.clone(), u.clone()))
                    .map(|at| *at = now)
                    .is_some()
            })
            .count()
    }

    /// Removes URLs silent for `url_ttl`.
    async fn expire(&self) {
        let ttl = self.options.url_ttl;
        let now = Instant::now();
        let stale: Vec<(GroupName, Topic, String)> = self
            .seen
            .lock()
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        let mut subs = self.subs.lock().await;
        for (g, t, u) in stale {
            // Heard from while we waited for the lock?
            let fresh = self
                .seen
                .lock()
                .get(&(g.clone(), t.clone(), u.clone()))
                .is_some_and(|at| Instant::now().duration_since(*at) < ttl);
            if !fresh && self.remove(&mut subs, &g, &t, &u, false).await {
                info!(message = "Webhook URL expired: no heartbeat.", url = %u, group = %g, topic = %t, ttl_ms = ttl.as_millis() as u64);
            }
        }
    }

    /// Every subscription of this node.
    pub async fn list(&self) -> Vec<SubscriptionInfo> {
        let subs = self.subs.lock().await;
        let mut out: Vec<SubscriptionInfo> = subs
            .values()
            .flat_map(|s| s.urls.values().cloned())
            .collect();
        out.sort_by(|a, b| {
            (&a.consumer_group, &a.topic, &a.url).cmp(&(&b.consumer_group, &b.topic, &b.url))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_items_parse_objects_and_names() {
        let v: Value = serde_json::json!([
            {"topic": "a", "mode": "broadcasting", "type": "SYNC"},
            {"Topic": "b"},
            "c"
        ]);
        let items = topic_items(&v, None).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].0.mode, SubscriptionMode::Broadcasting);
        assert_eq!(items[0].0.ty, SubscriptionType::Sync);
        assert_eq!(items[1].0.topic.name(), "b");
        assert_eq!(items[2].0.mode, SubscriptionMode::Clustering);
        let f = serde_json::json!([{"topic": "a", "filter": "type = 'x'"}, "b"]);
        let items = topic_items(&f, Some("source = '/s'")).unwrap();
        assert_eq!(items[0].1.as_deref(), Some("type = 'x'"));
        assert_eq!(items[1].1.as_deref(), Some("source = '/s'"));
        assert!(topic_items(&serde_json::json!([{"topic": "a", "mode": "x"}]), None).is_err());
        assert!(topic_items(&serde_json::json!("a"), None).is_err());
        assert!(topic_items(&serde_json::json!([]), None).is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("https://x/").is_ok());
        assert!(parse_url("not a url").is_err());
    }
}
