//! The kit's broker-restart scenario against a private RocketMQ broker: SIGKILLed while events
//! are published and consumed, started again on the same ports and store directory (the name
//! server stays up). Run it alone with `--nocapture` to see the measured outage and resume times.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::Topic;
use eventmesh_storage::EventStore;
use eventmesh_storage::testkit::{BrokerProcess, RestartOptions, broker_kill_restart};

struct Rocket(common::RocketBroker);

#[async_trait]
impl BrokerProcess for Rocket {
    async fn kill(&mut self) {
        self.0.kill_broker();
    }

    async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.0.restart_broker());
    }

    fn log_tail(&self) -> String {
        self.0.log_tail()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_kill() {
    let mut broker = Rocket(common::RocketBroker::start());
    let mut opts = common::test_options(&broker.0.url());
    opts.request_timeout = Duration::from_secs(2);
    let store: Arc<dyn EventStore> = Arc::new(
        common::open_store(opts)
            .await
            .unwrap_or_else(|e| panic!("open: {e}\n{}", broker.0.log_tail())),
    );
    let topic = Topic::new(&format!("restart.{}", std::process::id())).expect("topic");
    let report = broker_kill_restart(
        store.clone(),
        &mut broker,
        &topic,
        RestartOptions::new("RocketMQ"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report}");
    store.close().await.expect("close");
}
