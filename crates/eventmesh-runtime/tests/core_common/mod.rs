//! Helpers shared by the delivery-core tests: a core on a memory store, sessions and in-process
//! member endpoints (tokio channels).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{
    CloudEvent, GroupName, SessionMeta, Subscription, SubscriptionMode, SubscriptionType, Topic,
    TopicPattern, Transport,
};
use eventmesh_runtime::core::{
    Core, CoreOptions, MemberEndpoint, NodeIdentity, Push, SessionHandle,
};
use eventmesh_runtime::meta::EmbeddedMeta;
use eventmesh_storage::{ConsumerRef, CursorInfo, EventStore};
use eventmesh_storage_memory::MemoryStore;
use tokio::sync::mpsc;

pub struct Node {
    pub core: Arc<Core>,
    pub store: MemoryStore,
    pub meta: EmbeddedMeta,
}

/// Options that keep paused-clock tests short: 5 s ack timeout, 100 ms first backoff.
pub fn fast_options() -> CoreOptions {
    CoreOptions {
        ack_timeout: Duration::from_secs(5),
        crash_lease: Duration::from_secs(20),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..CoreOptions::default()
    }
}

pub async fn node(options: CoreOptions) -> Node {
    node_on("node-a", MemoryStore::new(), EmbeddedMeta::new(), options).await
}

pub async fn node_on(
    id: &str,
    store: MemoryStore,
    meta: EmbeddedMeta,
    options: CoreOptions,
) -> Node {
    let core = core_on(id, Arc::new(store.clone()), meta.clone(), options).await;
    Node { core, store, meta }
}

/// A ready core named `id` on any store.
pub async fn core_on(
    id: &str,
    store: Arc<dyn EventStore>,
    meta: EmbeddedMeta,
    options: CoreOptions,
) -> Arc<Core> {
    let identity = NodeIdentity {
        node_id: id.to_owned(),
        advertise: format!("{id}.local:10000"),
    };
    let core = Core::start(store, Arc::new(meta), options, identity).expect("core starts");
    assert!(core.wait_ready().await, "core becomes ready");
    core
}

pub fn session(core: &Core, identity: &str) -> SessionHandle {
    let meta = SessionMeta {
        id: core.new_session_id(),
        transport: Transport::InProcess,
        peer: None,
        client_identity: identity.to_owned(),
        principal: None,
        traceparent: None,
    };
    core.open_session(meta).expect("session opens")
}

pub fn endpoint(window: usize) -> (MemberEndpoint, mpsc::Receiver<Push>) {
    let (tx, rx) = mpsc::channel(window.max(1));
    (MemberEndpoint::new(tx, window), rx)
}

pub fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

pub fn group(name: &str) -> GroupName {
    GroupName::new(name).expect("valid group")
}

pub fn sub(g: &str, t: &str, mode: SubscriptionMode, ty: SubscriptionType) -> Subscription {
    Subscription {
        group: group(g),
        topic: TopicPattern::Exact(topic(t)),
        mode,
        ty,
        filter: None,
    }
}

pub fn clustering(g: &str, t: &str) -> Subscription {
    sub(g, t, SubscriptionMode::Clustering, SubscriptionType::Async)
}

pub fn broadcasting(g: &str, t: &str) -> Subscription {
    sub(
        g,
        t,
        SubscriptionMode::Broadcasting,
        SubscriptionType::Async,
    )
}

pub fn ev(i: usize) -> CloudEvent {
    CloudEvent::new(format!("e{i}"), "/test", "test.event")
        .with_data("text/plain", format!("payload {i}"))
}

/// The next push, failing the test if none comes within a minute (of paused time).
pub async fn recv(rx: &mut mpsc::Receiver<Push>) -> Push {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a push within a minute")
        .expect("endpoint open")
}

/// Whether nothing is pushed within `d` (a closed endpoint counts as quiet).
pub async fn quiet(rx: &mut mpsc::Receiver<Push>, d: Duration) -> bool {
    !matches!(tokio::time::timeout(d, rx.recv()).await, Ok(Some(_)))
}

pub async fn cursor(store: &MemoryStore, t: &str, g: &str) -> CursorInfo {
    store
        .cursor_info(&ConsumerRef::clustering(topic(t), group(g)))
        .await
        .expect("cursor exists")
}

/// Polls `cond` until it holds; fails the test after ten seconds (of paused time).
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
