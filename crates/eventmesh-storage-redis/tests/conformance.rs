//! The storage conformance kit against a real Redis: every scenario gets its own `redis-server`
//! (free port, own directory, AOF with an fsync per write). The restart scenario's reopen kills
//! that server with SIGKILL and starts it again on the same port and directory, so what the
//! reopened store sees is exactly what Redis had made durable.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use eventmesh_storage::testkit::StoreFactory;
use eventmesh_storage::{EventStore, StorageResult};
use eventmesh_storage_redis::{RedisOptions, RedisStore};
use tokio::sync::Mutex;

use common::RedisServer;

struct RedisFactory {
    server: Mutex<Option<RedisServer>>,
}

impl RedisFactory {
    fn new() -> Self {
        RedisFactory {
            server: Mutex::new(None),
        }
    }
}

#[async_trait]
impl StoreFactory for RedisFactory {
    async fn open(&self) -> StorageResult<Arc<dyn EventStore>> {
        let mut server = self.server.lock().await;
        let url = match &mut *server {
            Some(s) => {
                s.restart().await;
                s.url()
            }
            None => {
                let s = RedisServer::start().await;
                let url = s.url();
                *server = Some(s);
                url
            }
        };
        let store = RedisStore::open(RedisOptions::new(url)).await?;
        Ok(Arc::new(store))
    }

    fn durable(&self) -> bool {
        true
    }
}

eventmesh_storage::conformance_tests!(RedisFactory::new());
