//! Test harness: a private RocketMQ name server and broker per test
//! ([`eventmesh_storage_rocketmq::test_broker`], feature `test-broker`, which this crate's
//! dev-dependency on itself turns on) and the conformance kit's factory over it.
//!
//! The tests need `rocketmq-namesrv-rust` and `rocketmq-broker-rust` in `~/.cargo/bin` or on
//! `PATH` (`scripts/install-brokers` installs them). Without them the tests fail, loudly: they
//! never skip.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::Arc;

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageError, StorageResult};
use eventmesh_storage_rocketmq::RocketOptions;
pub use eventmesh_storage_rocketmq::test_broker::{
    LOCK_MAX_LIVE, RocketBroker, binary, open_store, test_options,
};

/// The conformance kit's factory: one private broker, a store per open on the same prefix.
pub struct RocketFactory {
    pub broker: RocketBroker,
    pub opts: RocketOptions,
}

impl RocketFactory {
    pub fn start() -> Self {
        let broker = RocketBroker::start();
        let opts = test_options(&broker.url());
        RocketFactory { broker, opts }
    }
}

#[async_trait]
impl StoreFactory for RocketFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        match open_store(self.opts.clone()).await {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => Err(StorageError::Backend(format!(
                "{e}\n{}",
                self.broker.log_tail()
            ))),
        }
    }

    fn durable(&self) -> bool {
        true
    }
}
