//! The kit's broker-restart scenario against a private redis-server (AOF, fsync per write):
//! SIGKILLed mid-stream and started again on the same port and directory; the store reconnects by
//! itself. Run it alone with `--nocapture` to see the measured outage and resume times.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventmesh_core::Topic;
use eventmesh_storage::EventStore;
use eventmesh_storage::testkit::{BrokerProcess, RestartOptions, broker_kill_restart};
use eventmesh_storage_redis::{RedisOptions, RedisStore};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

struct Redis(common::RedisServer);

#[async_trait]
impl BrokerProcess for Redis {
    async fn kill(&mut self) {
        self.0.kill();
    }

    async fn restart(&mut self) {
        self.0.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_publishes_survive_a_broker_kill() {
    let mut broker = Redis(common::RedisServer::start().await);
    let opts = RedisOptions::new(broker.0.url()).request_timeout(REQUEST_TIMEOUT);
    let store: Arc<dyn EventStore> = Arc::new(RedisStore::open(opts).await.expect("open"));
    let topic = Topic::new(&format!("restart-{:x}", rand::random::<u64>())).expect("topic");
    let mut kit = RestartOptions::new("redis");
    // A failing call returns within the request timeout, with some slack for a loaded machine.
    kit.fail_within = REQUEST_TIMEOUT + Duration::from_millis(500);
    kit.lease = Duration::from_secs(2);
    let report = broker_kill_restart(store.clone(), &mut broker, &topic, kit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report}");
    store.close().await.expect("close");
}
