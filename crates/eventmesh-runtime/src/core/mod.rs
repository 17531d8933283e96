//! The transport-neutral delivery core (the rules are in `shared/design/delivery.md`).
//!
//! (Skeleton: the public API is fixed; the machinery is being filled in.)

mod options;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventmesh_storage::EventStore;
use tokio_util::sync::CancellationToken;

use crate::meta::MetaStore;

pub use options::{CoreOptions, NodeIdentity};

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The options are inconsistent.
    #[error("invalid core options: {0}")]
    InvalidOptions(String),
    /// The node id cannot name an inbox topic.
    #[error("invalid node id `{0}`: use 1 to 200 ASCII letters, digits, `-`, `_` or `.`")]
    InvalidNodeId(String),
    /// `Core::start` was called outside a Tokio runtime.
    #[error("the delivery core must be started inside a Tokio runtime")]
    NoRuntime,
}

/// The delivery core of one runtime node.
pub struct Core {
    #[allow(dead_code)]
    store: Arc<dyn EventStore>,
    #[allow(dead_code)]
    meta: Arc<dyn MetaStore>,
    options: CoreOptions,
    node: NodeIdentity,
    ready: AtomicBool,
    shutdown: CancellationToken,
}

impl Core {
    /// Starts the core: validates the options, then (in the background) creates this node's
    /// reply inbox, registers the node in the metadata store and becomes ready.
    pub fn start(
        store: Arc<dyn EventStore>,
        meta: Arc<dyn MetaStore>,
        options: CoreOptions,
        node: NodeIdentity,
    ) -> Result<Arc<Core>, CoreError> {
        options.validate()?;
        node.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| CoreError::NoRuntime)?;
        Ok(Arc::new(Core {
            store,
            meta,
            options,
            node,
            ready: AtomicBool::new(true),
            shutdown: CancellationToken::new(),
        }))
    }

    /// Whether the core serves requests (started and not shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutdown.is_cancelled()
    }

    /// Stops dispatching, returns un-acked deliveries to the store and flushes acks, within
    /// `options.shutdown_timeout`.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.ready.store(false, Ordering::Release);
    }

    /// The options the core runs with.
    pub fn options(&self) -> &CoreOptions {
        &self.options
    }

    /// This node's identity.
    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }
}
