//! A 3-node NATS JetStream cluster (streams with 3 replicas) on loopback with two mesh nodes in
//! front. Events are published continuously through both mesh nodes to a CLUSTERING group with a
//! member on each; mid-stream one NATS server and one mesh node are SIGKILLed. Every event whose
//! publish was acknowledged must reach the group at least once, within 60 s; the test prints how
//! long delivery took to resume (recorded in docs/benchmarks.md). Run it alone with
//! `cargo test -p eventmesh --test nats_cluster_failover -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mesh::MeshProcess;
use common::nats::NatsCluster;
use eventmesh_sdk::{
    Client, ClientConfig, ConnectionState, Delivery, Purpose, ReconnectPolicy, SubscriptionMode,
    SubscriptionType, text_event,
};

/// Acknowledged publishes wanted before the kills, and after them.
const BEFORE: usize = 300;
const AFTER: usize = 300;
/// The longest delivery may take to resume, and to complete, after the kills.
const RESUME_WITHIN: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Log {
    /// Acknowledged publishes: text → when the publish returned.
    acked: HashMap<String, Instant>,
    /// Deliveries: text → first delivery.
    delivered: HashMap<String, Instant>,
    /// Publish errors by node.
    errors: Vec<(String, String)>,
}

fn node_config(nats_url: &str) -> String {
    // Short leases so that what the killed node held comes back quickly.
    format!(
        "[storage]\ntype = \"nats\"\nurl = \"{nats_url}\"\n\n[storage.nats]\nreplicas = 3\nrequest_timeout = \"3s\"\n\n\
         [delivery]\nack_timeout = \"2s\"\ncrash_lease = \"4s\"\n"
    )
}

async fn member(node: &MeshProcess, topic: &str, log: Arc<Mutex<Log>>) -> Client {
    let client = Client::connect(
        ClientConfig::builder(node.tcp.clone(), "failover-group")
            .purpose(Purpose::Sub)
            .reconnect(ReconnectPolicy::disabled())
            .build()
            .expect("client config"),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to node {}: {e}", node.name));
    client
        .subscribe(
            topic,
            SubscriptionMode::Clustering,
            SubscriptionType::Async,
            move |d: Delivery| {
                let log = log.clone();
                async move {
                    let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                        .into_owned();
                    lock(&log)
                        .delivered
                        .entry(text)
                        .or_insert_with(Instant::now);
                    Ok(())
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("subscribe on node {}: {e}", node.name));
    client
}

/// Publishes one event at a time through `node` until `stop`, or until the node is gone.
fn publish_loop(
    node: &MeshProcess,
    topic: String,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (addr, name) = (node.tcp.clone(), node.name.clone());
    tokio::spawn(async move {
        let Ok(client) = Client::connect(
            ClientConfig::builder(addr, "failover-publishers")
                .reconnect(ReconnectPolicy::disabled())
                .build()
                .expect("client config"),
        )
        .await
        else {
            lock(&log).errors.push((name, "cannot connect".into()));
            return;
        };
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let text = format!("{name}-{n}");
            n += 1;
            match client.publish(&topic, text_event(text.clone())).await {
                Ok(()) => {
                    lock(&log).acked.insert(text, Instant::now());
                }
                Err(e) => {
                    lock(&log).errors.push((name.clone(), e.to_string()));
                    if matches!(client.state(), ConnectionState::Closed) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        client.close().await;
    })
}

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {} s waiting for {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[test]
fn acknowledged_events_survive_a_nats_server_and_a_mesh_node_killed() {
    let mut nats = NatsCluster::start(3);
    let config = node_config(&nats.url());
    let mut a = MeshProcess::start("A", &config);
    let b = MeshProcess::start("B", &config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let topic = format!("failover-{}", std::process::id());
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));

    let (member_a, member_b, pub_a, pub_b) = rt.block_on(async {
        let member_a = member(&a, &topic, log.clone()).await;
        let member_b = member(&b, &topic, log.clone()).await;
        let pub_a = publish_loop(&a, topic.clone(), log.clone(), stop.clone());
        let pub_b = publish_loop(&b, topic.clone(), log.clone(), stop.clone());
        wait_until(
            "acknowledged publishes before the kills",
            RESUME_WITHIN,
            || lock(&log).acked.len() >= BEFORE,
        )
        .await;
        (member_a, member_b, pub_a, pub_b)
    });

    // The kills: NATS server 0 (listed first, so most clients are connected to it) and mesh
    // node A with its member and publisher.
    let killed_at = Instant::now();
    nats.kill(0);
    a.kill();
    let acked_at_kill: HashSet<String> = lock(&log).acked.keys().cloned().collect();

    let report = rt.block_on(async {
        // Delivery resumes: an event acknowledged after the kills is delivered.
        let resumed = wait_until("delivery to resume after the kills", RESUME_WITHIN, || {
            let l = lock(&log);
            l.delivered.keys().any(|t| !acked_at_kill.contains(t) && l.acked.contains_key(t))
        })
        .await;
        wait_until("acknowledged publishes after the kills", RESUME_WITHIN, || {
            lock(&log).acked.len() >= acked_at_kill.len() + AFTER
        })
        .await;
        stop.store(true, Ordering::SeqCst);
        let _ = pub_a.await;
        pub_b.await.expect("the publisher on B");
        let acked: Vec<String> = lock(&log).acked.keys().cloned().collect();
        let all = tokio::time::timeout(
            RESUME_WITHIN,
            wait_until("every acknowledged event delivered", RESUME_WITHIN, || {
                let l = lock(&log);
                acked.iter().all(|t| l.delivered.contains_key(t))
            }),
        )
        .await;
        if all.is_err() {
            let l = lock(&log);
            let missing: Vec<&String> =
                acked.iter().filter(|t| !l.delivered.contains_key(*t)).take(10).collect();
            panic!(
                "{} of {} acknowledged events were never delivered (e.g. {missing:?}); node B log:\n{}",
                acked.iter().filter(|t| !l.delivered.contains_key(*t)).count(),
                acked.len(),
                b.log_tail()
            );
        }
        member_a.close().await;
        member_b.close().await;
        (resumed, killed_at.elapsed(), acked.len())
    });
    let l = lock(&log);
    eprintln!(
        "failover: {} events acknowledged ({} before the kills), all delivered; delivery resumed {} ms after \
         one NATS server and one mesh node were SIGKILLed; everything delivered {} ms after the kills; \
         {} publish errors (first: {:?})",
        report.2,
        acked_at_kill.len(),
        report.0.as_millis(),
        report.1.as_millis(),
        l.errors.len(),
        l.errors.first()
    );
}
