//! Stateless mesh nodes: two `eventmesh serve` processes on one NATS JetStream form one mesh for
//! their clients. A CLUSTERING group with a member on each node shares the events, a BROADCASTING
//! group reaches its members on both nodes, and request-reply works with the requester on one node
//! and the responder on the other. Clients are the Rust SDK over TCP.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::PATIENCE;
use common::mesh::MeshProcess;
use common::nats::NatsCluster;
use eventmesh_sdk::{
    Client, ClientConfig, Delivery, Purpose, SubscriptionMode, SubscriptionType, text_event,
};

/// Events published in the CLUSTERING and BROADCASTING parts.
const EVENTS: usize = 200;

fn node_config(nats_url: &str) -> String {
    format!(
        "[storage]\ntype = \"nats\"\nurl = \"{nats_url}\"\n\n[delivery]\nack_timeout = \"3s\"\ncrash_lease = \"6s\"\n"
    )
}

/// Event text → the nodes (by name) it was delivered through, in order.
type Seen = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn subscriber(
    node: &MeshProcess,
    group: &str,
    topic: &str,
    mode: SubscriptionMode,
    seen: Seen,
) -> Client {
    let client = Client::connect(
        ClientConfig::builder(node.tcp.clone(), group)
            .purpose(Purpose::Sub)
            .build()
            .expect("client config"),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to node {}: {e}", node.name));
    let name = node.name.clone();
    client
        .subscribe(topic, mode, SubscriptionType::Async, move |d: Delivery| {
            let (seen, name) = (seen.clone(), name.clone());
            async move {
                let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                    .into_owned();
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(text)
                    .or_default()
                    .push(name);
                Ok(())
            }
        })
        .await
        .unwrap_or_else(|e| panic!("subscribe on node {}: {e}", node.name));
    client
}

async fn publisher(node: &MeshProcess) -> Client {
    Client::connect(
        ClientConfig::builder(node.tcp.clone(), "mesh-test-publishers")
            .build()
            .expect("client config"),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to node {}: {e}", node.name))
}

/// Waits until `cond` holds on what was seen.
async fn wait_seen(what: &str, seen: &Seen, cond: impl Fn(&HashMap<String, Vec<String>>) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if cond(&seen.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn two_nodes_on_one_nats_form_one_mesh() {
    let nats = NatsCluster::start(1);
    let config = node_config(&nats.url());
    let a = MeshProcess::start("A", &config);
    let b = MeshProcess::start("B", &config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let suffix = std::process::id();

        // CLUSTERING: one member on each node; events published on both nodes.
        let topic = format!("mesh-work-{suffix}");
        let seen: Seen = Arc::default();
        let sub_a = subscriber(
            &a,
            "workers",
            &topic,
            SubscriptionMode::Clustering,
            seen.clone(),
        )
        .await;
        let sub_b = subscriber(
            &b,
            "workers",
            &topic,
            SubscriptionMode::Clustering,
            seen.clone(),
        )
        .await;
        let (pub_a, pub_b) = (publisher(&a).await, publisher(&b).await);
        for i in 0..EVENTS {
            let via = if i % 2 == 0 { &pub_a } else { &pub_b };
            via.publish(&topic, text_event(format!("work-{i}")))
                .await
                .expect("publish");
        }
        wait_seen("every CLUSTERING event delivered", &seen, |s| {
            s.len() == EVENTS
        })
        .await;
        let per_node = |s: &HashMap<String, Vec<String>>, n: &str| {
            s.values().filter(|v| v.iter().any(|x| x == n)).count()
        };
        let (on_a, on_b) = {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            (per_node(&s, "A"), per_node(&s, "B"))
        };
        eprintln!(
            "CLUSTERING: {EVENTS} events, {on_a} delivered through node A, {on_b} through node B"
        );
        assert!(
            on_a > 0 && on_b > 0,
            "the group's load is not shared: A {on_a}, B {on_b}"
        );

        // BROADCASTING: a member on each node gets every event.
        let topic = format!("mesh-audit-{suffix}");
        let seen: Seen = Arc::default();
        let audit_a = subscriber(
            &a,
            "auditors",
            &topic,
            SubscriptionMode::Broadcasting,
            seen.clone(),
        )
        .await;
        let audit_b = subscriber(
            &b,
            "auditors",
            &topic,
            SubscriptionMode::Broadcasting,
            seen.clone(),
        )
        .await;
        for i in 0..EVENTS {
            pub_a
                .publish(&topic, text_event(format!("audit-{i}")))
                .await
                .expect("publish");
        }
        wait_seen("every BROADCASTING event on both nodes", &seen, |s| {
            s.len() == EVENTS
                && s.values()
                    .all(|v| v.iter().any(|x| x == "A") && v.iter().any(|x| x == "B"))
        })
        .await;

        // Request-reply: the responder on node B, the requester on node A.
        let topic = format!("mesh-rpc-{suffix}");
        let responder = Client::connect(
            ClientConfig::builder(b.tcp.clone(), "responders")
                .purpose(Purpose::Sub)
                .build()
                .expect("client config"),
        )
        .await
        .expect("connect the responder");
        responder
            .subscribe(
                &topic,
                SubscriptionMode::Clustering,
                SubscriptionType::Sync,
                |d: Delivery| async move {
                    let text = String::from_utf8_lossy(d.event.data.as_deref().unwrap_or_default())
                        .to_uppercase();
                    Ok(text_event(format!("{text} via B")))
                },
            )
            .await
            .expect("subscribe the responder");
        for i in 0..5 {
            let reply = pub_a
                .request(
                    &topic,
                    text_event(format!("ping-{i}")),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_or_else(|e| {
                    panic!("request {i} from node A to a responder on node B: {e}")
                });
            assert_eq!(
                reply.data.as_deref().unwrap_or_default(),
                format!("PING-{i} via B").as_bytes()
            );
        }

        for c in [sub_a, sub_b, audit_a, audit_b, responder, pub_a, pub_b] {
            c.close().await;
        }
    });
}
