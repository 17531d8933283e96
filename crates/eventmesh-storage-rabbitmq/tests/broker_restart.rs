//! The kit's broker-restart scenario against a private RabbitMQ node: its Erlang VM SIGKILLed
//! mid-stream and started again with the same data, ports and name; the store reconnects by
//! itself. Run it alone with `--nocapture` to see the measured outage and resume times.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventmesh_core::Topic;
use eventmesh_storage::EventStore;
use eventmesh_storage::testkit::{BrokerProcess, RestartOptions, broker_kill_restart};
use eventmesh_storage_rabbitmq::{RabbitOptions, RabbitStore};

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

struct Rabbit(Arc<common::Broker>);

impl Rabbit {
    async fn blocking(&self, f: impl FnOnce(&common::Broker) + Send + 'static) {
        let b = self.0.clone();
        tokio::task::spawn_blocking(move || f(&b))
            .await
            .expect("broker control");
    }
}

#[async_trait]
impl BrokerProcess for Rabbit {
    async fn kill(&mut self) {
        self.blocking(|b| b.kill()).await;
    }

    async fn restart(&mut self) {
        self.blocking(|b| b.spawn()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_kill() {
    let mut broker = Rabbit(Arc::new(common::Broker::start("restart")));
    let url = broker.0.vhost("restart");
    let mut opts = RabbitOptions::new(&url);
    opts.confirm_timeout = CONFIRM_TIMEOUT;
    opts.max_reconnect_backoff = Duration::from_millis(500);
    let store: Arc<dyn EventStore> = Arc::new(RabbitStore::open(opts).await.expect("open"));
    let topic = Topic::new("restart-topic").expect("topic");
    assert!(store.create_topic(&topic).await.expect("create topic"));

    // RabbitMQ 3.10 persists the registration of its stream coordinator lazily: a node killed
    // within minutes of its first stream declaration may come back with every stream `down`
    // for good. A production broker has long since written it; a clean restart does it here
    // (and shows the store riding out a clean restart too).
    broker
        .blocking(|b| {
            b.stop();
            b.spawn();
        })
        .await;
    let reconnect_deadline = Instant::now() + Duration::from_secs(30);
    while store.health().await.is_err() {
        assert!(
            Instant::now() < reconnect_deadline,
            "the store did not reconnect within 30 s of a clean broker restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut kit = RestartOptions::new("RabbitMQ");
    kit.before = 300;
    kit.after = 300;
    kit.batch = 1;
    kit.lease = Duration::from_secs(2);
    kit.fail_within = CONFIRM_TIMEOUT + Duration::from_millis(1500);
    let report = broker_kill_restart(store.clone(), &mut broker, &topic, kit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report}");
    store.close().await.expect("close");
    broker.0.stop();
}
