//! The storage conformance kit against a real RabbitMQ: a private node started by this test
//! binary (see `common`), and a fresh vhost per scenario.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_rabbitmq::{RabbitOptions, RabbitStore};

/// Opens stores on one vhost: a reopen finds what the previous store left.
struct RabbitFactory {
    url: String,
}

#[async_trait]
impl StoreFactory for RabbitFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        Ok(Arc::new(
            RabbitStore::open(RabbitOptions::new(&self.url)).await?,
        ))
    }

    fn durable(&self) -> bool {
        true
    }
}

fn factory() -> RabbitFactory {
    RabbitFactory {
        url: common::shared().vhost("kit"),
    }
}

eventmesh_storage::conformance_tests!(factory());
