//! Builds and runs a whole node from an [`eventmesh_config::Config`].
//!
//! [`Runtime::start`] brings a node up in this order, undoing what it did if a step fails:
//! 1. validates the configuration;
//! 2. installs the Prometheus recorder (process-wide, once), so every metric is recorded;
//! 3. opens the data directory (created when missing) and locks it (`eventmesh.lock`: one process
//!    per data directory);
//! 4. resolves the node id (configured, or generated once and kept in `<data_dir>/node_id`) and
//!    the advertise address;
//! 5. opens the event store (`storage.type`; the embedded one in `<data_dir>/events`) and the
//!    metadata store;
//! 6. starts the delivery core and binds the admin listener;
//! 7. serves the TCP protocol (`server.tcp`, bound before step 4 so that a derived advertise
//!    address names the real port) and the HTTP protocol (`server.http`, which restores the
//!    persisted webhook subscriptions), and records the other protocol listeners (not yet
//!    implemented in this build). The gRPC protocol (`server.grpc`) serves both of its
//!    packages on one port and hands webhook subscriptions to the HTTP server's push engine.
//!
//! [`RuntimeHandle::shutdown`] stops it in the opposite order within `shutdown.timeout`:
//! listeners and background tasks (TCP clients are told goodbye and may ack what they hold for
//! a moment), then the core (drain and flush), then the store (`close`).

use std::fs::{File, OpenOptions};
use std::future::Future as _;
use std::io::{ErrorKind, Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventmesh_config::{Config, ConfigError, StorageKind};
use eventmesh_storage::{EventStore, StorageError};
use eventmesh_storage_memory::MemoryStore;
use rand::Rng;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::admin::{self, AdminState};
use crate::core::{Core, CoreError, CoreOptions, NodeIdentity};
use crate::lifecycle::{ShutdownReason, ShutdownSignal, TaskRegistry};
use crate::meta::{EmbeddedMeta, MetaError, MetaStore};
use crate::server::grpc::{self as grpc_server, GrpcContext, GrpcOptions, GrpcServerError};
use crate::server::http::{self as http_server, HttpContext, HttpOptions, HttpServerError};
use crate::server::tcp::{self as tcp_server, Clients, TcpContext, TcpOptions};
use crate::telemetry::{self, TelemetryError};

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "eventmesh.lock";
/// The file keeping a generated node id.
pub const NODE_ID_FILE: &str = "node_id";
/// The metadata file of the embedded metadata store.
pub const META_FILE: &str = "meta.json";
/// The embedded event store's directory inside the data directory.
pub const EVENTS_DIR: &str = "events";

/// How often the background task checks the store's health (for metrics).
const STORE_HEALTH_PERIOD: Duration = Duration::from_secs(10);

/// Why a node could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be used.
    #[error("cannot {action} data directory {}: {source}", path.display())]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// What was being done (`create`, `read`, `lock`, …).
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("data directory {} is in use by another process{holder} (lock file {})", path.display(), lock_file.display())]
    DataDirInUse {
        /// The data directory.
        path: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
        /// ` (pid N)` when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The persisted node id is unusable.
    #[error("invalid node id in {}: {reason}", path.display())]
    NodeId {
        /// The `node_id` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The event store could not be opened.
    #[error("cannot open the {store} event store")]
    Storage {
        /// The store kind.
        store: &'static str,
        /// The error.
        #[source]
        source: StorageError,
    },
    /// The metadata store could not be opened.
    #[error("cannot open the metadata store")]
    Meta {
        /// The error.
        #[source]
        source: MetaError,
    },
    /// The delivery core could not start.
    #[error("cannot start the delivery core")]
    Core {
        /// The error.
        #[source]
        source: CoreError,
    },
    /// A listener could not be bound.
    #[error("cannot bind the {listener} listener on {addr}")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server could not start (a listener, its TLS certificate, its client).
    #[error("cannot start the HTTP server")]
    Http {
        /// The error.
        #[source]
        source: HttpServerError,
    },
    /// The gRPC server could not start (its TLS certificate).
    #[error("cannot start the gRPC server")]
    Grpc {
        /// The error.
        #[source]
        source: GrpcServerError,
    },
    /// Telemetry could not be set up.
    #[error("cannot set up telemetry")]
    Telemetry {
        /// The error.
        #[source]
        source: TelemetryError,
    },
}

/// What [`RuntimeHandle::shutdown`] did.
#[derive(Clone, Debug, Default)]
pub struct ShutdownReport {
    /// Why the node shut down.
    pub reason: Option<ShutdownReason>,
    /// Parts that did not stop before the deadline (tasks by name, `core`, `store`).
    pub stragglers: Vec<String>,
    /// Errors while stopping (a store that failed to close, …).
    pub errors: Vec<String>,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Whether everything stopped in time, without errors, and not because of a failure.
    pub fn is_clean(&self) -> bool {
        self.stragglers.is_empty()
            && self.errors.is_empty()
            && !self.reason.as_ref().is_some_and(ShutdownReason::is_failure)
    }
}

/// Starts nodes. See the [module docs](self).
pub struct Runtime;

impl Runtime {
    /// Starts a node from `config`.
    pub async fn start(config: Config) -> Result<RuntimeHandle, ServerError> {
        Runtime::builder(config).start().await
    }

    /// A builder, to start a node with a store made by the caller (tests, embedding).
    pub fn builder(config: Config) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            store: None,
        }
    }
}

/// Options of [`Runtime::start`] beyond the configuration.
pub struct RuntimeBuilder {
    config: Config,
    store: Option<Arc<dyn EventStore>>,
}

/// The exclusive lock on a data directory, held while the node runs.
#[derive(Debug)]
struct DataDirLock {
    _file: File,
}

/// Opens (creating when missing) and locks the data directory.
fn open_data_dir(path: &Path) -> Result<DataDirLock, ServerError> {
    fn err<'a>(
        action: &'static str,
        p: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
        move |source| ServerError::DataDir {
            path: p.to_path_buf(),
            action,
            source,
        }
    }
    std::fs::create_dir_all(path).map_err(err("create", path))?;
    let meta = std::fs::metadata(path).map_err(err("inspect", path))?;
    if !meta.is_dir() {
        return Err(ServerError::DataDir {
            path: path.to_path_buf(),
            action: "use",
            source: std::io::Error::new(
                ErrorKind::NotADirectory,
                "it exists and is not a directory",
            ),
        });
    }
    std::fs::read_dir(path).map_err(err("read", path))?;
    let lock_path = path.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(err("write to", path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            return Err(ServerError::DataDirInUse {
                path: path.to_path_buf(),
                lock_file: lock_path,
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(ServerError::DataDir {
                path: lock_path,
                action: "lock",
                source,
            });
        }
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_data()
    };
    write_pid(&mut file).map_err(err("write to", path))?;
    Ok(DataDirLock { _file: file })
}

/// The configured node id, or the one kept in `<data_dir>/node_id` (generated on first start).
fn resolve_node_id(configured: &str, data_dir: &Path) -> Result<String, ServerError> {
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if eventmesh_config::node::is_valid_node_id(id) {
                Ok(id.to_owned())
            } else {
                Err(ServerError::NodeId {
                    path,
                    reason: format!(
                        "`{id}` is not 1 to 64 of A-Z a-z 0-9 - _ . (delete the file to generate a new id)"
                    ),
                })
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let id = format!("node-{:016x}", rand::rng().random::<u64>());
            let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = File::create(&tmp)?;
                writeln!(f, "{id}")?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                File::open(data_dir)?.sync_all()
            };
            write().map_err(|source| ServerError::DataDir {
                path: path.clone(),
                action: "write the node id into",
                source,
            })?;
            info!(message = "Generated a node id.", node_id = %id, file = %path.display());
            Ok(id)
        }
        Err(source) => Err(ServerError::DataDir {
            path,
            action: "read the node id from",
            source,
        }),
    }
}

fn core_options(config: &Config) -> CoreOptions {
    let d = &config.delivery;
    CoreOptions {
        max_event_bytes: usize::try_from(config.limits.max_event_bytes).unwrap_or(usize::MAX),
        ack_timeout: d.ack_timeout,
        max_attempts: d.max_attempts,
        backoff_initial: d.backoff_initial,
        backoff_max: d.backoff_max,
        window: d.window as usize,
        prefetch: d.prefetch as usize,
        crash_lease: d.crash_lease,
        dead_letter_suffix: d.dead_letter_suffix.clone(),
        request_ttl: d.request_ttl,
        publish_rate: config.limits.publish_rate,
        session_publish_rate: config.limits.session_publish_rate,
        // The core gets three quarters of the shutdown budget; the store's close the rest.
        shutdown_timeout: config.shutdown.timeout.mul_f64(0.75),
        ..CoreOptions::default()
    }
}

/// The embedded store's options from `[storage.embedded]` and `[limits]`; its files go to
/// `<data_dir>/events`.
#[cfg(feature = "embedded")]
fn embedded_options(config: &Config) -> eventmesh_storage_embedded::EmbeddedOptions {
    use eventmesh_config::FsyncPolicy as Policy;
    use eventmesh_storage_embedded::{EmbeddedOptions, FsyncPolicy};
    let e = &config.storage.embedded;
    let defaults = EmbeddedOptions::default();
    let max_event_bytes = usize::try_from(config.limits.max_event_bytes).unwrap_or(usize::MAX);
    EmbeddedOptions {
        data_dir: config.node.data_dir.join(EVENTS_DIR),
        fsync: match e.fsync {
            Policy::Batch => FsyncPolicy::Batch,
            Policy::Interval => FsyncPolicy::Interval(e.fsync_interval),
            Policy::Never => FsyncPolicy::Never,
        },
        segment_bytes: e.segment_bytes,
        retention_bytes: (e.retention_bytes > 0).then_some(e.retention_bytes),
        retention_age: (!e.retention_age.is_zero()).then_some(e.retention_age),
        max_event_bytes,
        max_batch_bytes: defaults.max_batch_bytes.max(max_event_bytes),
        ..defaults
    }
}

async fn open_store(config: &Config) -> Result<Arc<dyn EventStore>, ServerError> {
    match config.storage.kind {
        StorageKind::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "embedded")]
        StorageKind::Embedded => {
            let options = embedded_options(config);
            let opened = tokio::task::spawn_blocking(move || {
                eventmesh_storage_embedded::EmbeddedStore::open(options)
            })
            .await
            .map_err(|e| StorageError::Backend(format!("the store's open task failed: {e}")))
            .and_then(|r| r);
            match opened {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "embedded",
                    source,
                }),
            }
        }
        #[cfg(feature = "nats")]
        StorageKind::Nats => {
            let n = &config.storage.nats;
            let mut options = eventmesh_storage_nats::NatsOptions::new(config.storage.url.clone());
            options.replicas = n.replicas;
            options.stream_prefix = n.stream_prefix.clone();
            options.request_timeout = n.request_timeout;
            options.max_reconnect_backoff = n.max_reconnect_backoff;
            options.member_expiry = n.member_expiry;
            // The consumers' AckWait is the crash lease the core fetches with.
            options.ack_wait = config.delivery.crash_lease;
            match eventmesh_storage_nats::NatsStore::connect(options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "nats",
                    source,
                }),
            }
        }
        #[cfg(feature = "redis")]
        StorageKind::Redis => {
            let r = &config.storage.redis;
            let mut options =
                eventmesh_storage_redis::RedisOptions::new(config.storage.url.clone())
                    .key_prefix(r.key_prefix.clone())
                    .request_timeout(r.request_timeout)
                    .fetch_block(r.fetch_block)
                    .member_expiry(r.member_expiry);
            // Leases and retry delays up to these must fit under the store's lease horizon.
            options.max_lease = options
                .max_lease
                .max(config.delivery.crash_lease)
                .max(config.delivery.backoff_max);
            match eventmesh_storage_redis::RedisStore::open(options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "redis",
                    source,
                }),
            }
        }
        #[cfg(feature = "rabbitmq")]
        StorageKind::Rabbitmq => {
            let q = &config.storage.rabbitmq;
            let mut options =
                eventmesh_storage_rabbitmq::RabbitOptions::new(config.storage.url.clone());
            options.prefix = q.prefix.clone();
            options.prefetch = q.prefetch;
            options.confirm_timeout = q.confirm_timeout;
            options.max_reconnect_backoff = q.max_reconnect_backoff;
            options.member_expiry = q.member_expiry;
            options.group_expiry = q.group_expiry;
            options.max_age = (!q.retention_age.is_zero()).then_some(q.retention_age);
            options.max_bytes = (q.retention_bytes > 0).then_some(q.retention_bytes);
            match eventmesh_storage_rabbitmq::RabbitStore::open(options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "rabbitmq",
                    source,
                }),
            }
        }
        #[cfg(feature = "kafka")]
        StorageKind::Kafka => {
            let k = &config.storage.kafka;
            let mut options =
                eventmesh_storage_kafka::KafkaOptions::new(config.storage.url.clone());
            options.topic_prefix = k.topic_prefix.clone();
            options.group_prefix = k.group_prefix.clone();
            options.partitions = k.partitions;
            options.replication_factor = k.replication_factor;
            options.publish_timeout = k.publish_timeout;
            options.request_timeout = k.request_timeout;
            options.session_timeout = k.session_timeout;
            options.idempotence = k.idempotence;
            options.metadata_max_bytes = k.metadata_max_bytes;
            options.cursor_state = match k.cursor_state {
                eventmesh_config::KafkaCursorState::Auto => {
                    eventmesh_storage_kafka::CursorState::Auto
                }
                eventmesh_config::KafkaCursorState::Metadata => {
                    eventmesh_storage_kafka::CursorState::Metadata
                }
                eventmesh_config::KafkaCursorState::Topic => {
                    eventmesh_storage_kafka::CursorState::Topic
                }
            };
            options.properties = k.property_pairs().into_iter().collect();
            match eventmesh_storage_kafka::KafkaStore::connect(options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "kafka",
                    source,
                }),
            }
        }
        #[cfg(feature = "rocketmq")]
        StorageKind::Rocketmq => {
            let m = &config.storage.rocketmq;
            let mut options =
                eventmesh_storage_rocketmq::RocketOptions::new(config.storage.url.clone());
            options.prefix = m.prefix.clone();
            options.cluster = m.cluster.clone();
            options.request_timeout = m.request_timeout;
            options.pull_batch = m.pull_batch;
            options.max_message_bytes = m.max_message_bytes;
            options.lock_renew = m.lock_renew;
            options.defibus = eventmesh_storage_rocketmq::DefibusOptions {
                enabled: m.defibus.enabled,
                cluster: m.defibus.cluster.clone(),
                default_ttl: m.defibus.default_ttl,
            };
            match eventmesh_storage_rocketmq::RocketStore::open(options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(source) => Err(ServerError::Storage {
                    store: "rocketmq",
                    source,
                }),
            }
        }
        other => Err(ServerError::Storage {
            store: other.as_str(),
            source: StorageError::Unavailable(
                "this store is not compiled into this build".to_owned(),
            ),
        }),
    }
}

fn open_meta(config: &Config) -> Result<Arc<dyn MetaStore>, ServerError> {
    match config.storage.kind {
        // A volatile event store gets volatile metadata: nothing of a memory node survives it.
        StorageKind::Memory => Ok(Arc::new(EmbeddedMeta::new())),
        // Broker-backed stores (nats, redis) keep the embedded meta store for now, until nodes share a
        // registry.
        _ => EmbeddedMeta::open(config.node.data_dir.join(META_FILE))
            .map(|m| Arc::new(m) as Arc<dyn MetaStore>)
            .map_err(|source| ServerError::Meta { source }),
    }
}

impl RuntimeBuilder {
    /// Uses `store` instead of opening the one `storage.type` names.
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Starts the node. See the [module docs](self).
    pub async fn start(self) -> Result<RuntimeHandle, ServerError> {
        let config = self.config;
        config.validate()?;
        let started = Instant::now();
        // First, so metric handles taken while the store and the core start are real ones.
        let metrics =
            telemetry::install_recorder().map_err(|source| ServerError::Telemetry { source })?;
        let data_dir = config.node.data_dir.clone();
        let mut lock = Some(open_data_dir(&data_dir)?);
        let node_id = resolve_node_id(&config.node.id, &data_dir)?;
        // Bound first, so that a derived advertise address names the real port (port 0).
        let tcp_listener = if config.server.tcp.enabled {
            let addr = config.server.tcp.listen;
            let bind_err = |source| ServerError::Bind {
                listener: "TCP",
                addr,
                source,
            };
            let listener = tcp_server::bind(addr).await.map_err(bind_err)?;
            let bound = listener.local_addr().map_err(bind_err)?;
            Some((listener, bound))
        } else {
            None
        };
        let advertise = if config.node.advertise.is_empty() {
            let tcp = tcp_listener
                .as_ref()
                .map_or(config.server.tcp.listen, |(_, bound)| *bound);
            if tcp.ip().is_unspecified() {
                warn!(message = "Advertise address derived from an unspecified listen address; set node.advertise.", addr = %tcp);
            }
            tcp.to_string()
        } else {
            config.node.advertise.clone()
        };
        let node = NodeIdentity {
            node_id: node_id.clone(),
            advertise,
        };

        let store = match self.store {
            Some(s) => s,
            None => open_store(&config).await?,
        };
        info!(message = "Event store opened.", store = store.kind(), data_dir = %data_dir.display());

        // From here on, a failure closes what was opened.
        let mut opened = Opened {
            store: store.clone(),
            core: None,
        };
        let result = async {
            let meta = open_meta(&config)?;
            let core = Core::start(store.clone(), meta.clone(), core_options(&config), node.clone())
                .map_err(|source| ServerError::Core { source })?;
            opened.core = Some(core.clone());
            // Subscribe to the core's readiness before its start-up task can finish: a
            // `watch::Sender::send` with no receiver does not store the value, so without a
            // subscriber at that moment the core would never report ready.
            let mut ready_wait = Box::pin({
                let core = core.clone();
                async move { core.wait_ready().await }
            });
            let early_ready = ready_wait.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));

            telemetry::node::NodeStarted { node_id: &node_id, store: store.kind() }.emit();

            let signal = ShutdownSignal::new();
            let listeners = TaskRegistry::new("listeners", signal.clone());
            let background = TaskRegistry::new("background", signal.clone());
            let draining = Arc::new(AtomicBool::new(false));

            let admin_listener = admin::bind(config.admin.listen).await.map_err(|source| ServerError::Bind {
                listener: "admin",
                addr: config.admin.listen,
                source,
            })?;
            let admin_addr = admin_listener.local_addr().map_err(|source| ServerError::Bind {
                listener: "admin",
                addr: config.admin.listen,
                source,
            })?;
            let readiness = {
                let core = core.clone();
                let draining = draining.clone();
                Arc::new(move || {
                    if draining.load(Ordering::Acquire) {
                        Err("shutting down".to_owned())
                    } else if !core.is_ready() {
                        Err("delivery core not ready".to_owned())
                    } else {
                        Ok(())
                    }
                })
            };
            let state = AdminState { node_id: node_id.clone(), store: store.clone(), readiness, metrics, started };
            listeners.spawn("admin-http", true, move |token| admin::serve(admin_listener, state, token));
            info!(message = "Admin API listening.", addr = %admin_addr);

            // One connection cap over all protocol listeners.
            let connection_slots = Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections as usize));
            let mut tcp = None;
            if let Some((listener, bound)) = tcp_listener {
                let ctx = TcpContext::new(core.clone(), TcpOptions::from_config(&config, &node.advertise), connection_slots.clone());
                let clients = ctx.clients().clone();
                listeners.spawn("tcp-server", true, move |token| tcp_server::run(listener, ctx, token));
                info!(message = "TCP server bound.", listener = "TCP", addr = %bound);
                tcp = Some((bound, clients));
            } else {
                debug!(message = "TCP server disabled.", listener = "TCP");
            }

            let mut webhooks = None;
            let mut http = None;
            if config.server.http.enabled {
                let bound = http_server::bind(&config).await.map_err(|source| ServerError::Http { source })?;
                let addrs = (bound.addr(), bound.tls_addr());
                let ip = node.advertise.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_owned();
                let tls_on_plain = config.server.http.tls.enabled && config.server.http.tls.listen.is_empty();
                let options = HttpOptions::from_config(&config, &ip).with_bound_port(addrs.0.port(), tls_on_plain);
                let ctx = HttpContext::new(core.clone(), store.clone(), meta.clone(), options, connection_slots.clone())
                    .map_err(|source| ServerError::Http { source })?;
                webhooks = Some(ctx.webhooks().clone());
                listeners.spawn("http-server", true, move |token| http_server::run(bound, ctx, token));
                info!(message = "HTTP server bound.", listener = "HTTP", addr = %addrs.0, tls_addr = ?addrs.1);
                http = Some(addrs);
            } else {
                debug!(message = "HTTP server disabled.", listener = "HTTP");
            }

            // gRPC: both packages on one port; webhook subscriptions go to the HTTP push engine.
            let mut grpc = None;
            if config.server.grpc.enabled {
                let addr = config.server.grpc.listen;
                let bind_err = |source| ServerError::Bind { listener: "gRPC", addr, source };
                let options = GrpcOptions::from_config(&config);
                grpc_server::check_tls(&options).map_err(|source| ServerError::Grpc { source })?;
                let listener = grpc_server::bind(addr).await.map_err(bind_err)?;
                let bound = listener.local_addr().map_err(bind_err)?;
                let ctx = GrpcContext::new(core.clone(), options, connection_slots.clone(), webhooks.clone());
                listeners.spawn("grpc-server", true, move |token| grpc_server::run(listener, ctx, token));
                info!(message = "gRPC server bound.", listener = "gRPC", addr = %bound);
                grpc = Some(bound);
            } else {
                debug!(message = "gRPC server disabled.", listener = "gRPC");
            }

            for (name, enabled, addr) in [
                ("MQTT", config.server.mqtt.enabled, config.server.mqtt.listen),
            ] {
                if enabled {
                    info!(message = format!("{name} server not yet implemented in this build; listen address recorded."), listener = name, addr = %addr);
                } else {
                    debug!(message = format!("{name} server disabled."), listener = name);
                }
            }

            let ready_node = node_id.clone();
            background.spawn("ready-announcer", false, move |token| async move {
                let ready = match early_ready {
                    std::task::Poll::Ready(ready) => ready,
                    std::task::Poll::Pending => tokio::select! {
                        () = token.cancelled() => false,
                        ready = ready_wait => ready,
                    },
                };
                if ready {
                    info!(message = "Node ready.", node_id = %ready_node);
                }
                Ok::<_, std::convert::Infallible>(())
            });

            let health_store = store.clone();
            background.spawn_periodic("store-health", false, STORE_HEALTH_PERIOD, move || {
                let store = health_store.clone();
                async move {
                    if let Err(reason) = admin::check_store(store.as_ref(), admin::HEALTH_CHECK_TIMEOUT).await {
                        warn!(message = "Event store health check failed.", error = %reason);
                    }
                    Ok::<_, std::convert::Infallible>(())
                }
            });

            info!(
                message = "Runtime started.",
                node_id = %node_id,
                advertise = %node.advertise,
                store = store.kind(),
                admin = %admin_addr,
                tcp = %tcp.as_ref().map(|(a, _)| a.to_string()).unwrap_or_else(|| "disabled".to_owned()),
                http = %http.map(|(a, _)| a.to_string()).unwrap_or_else(|| "disabled".to_owned()),
                grpc = %grpc.map(|a| a.to_string()).unwrap_or_else(|| "disabled".to_owned()),
                elapsed_ms = started.elapsed().as_millis() as u64,
            );
            Ok(RuntimeHandle {
                config: config.clone(),
                node: node.clone(),
                admin_addr,
                tcp,
                http,
                grpc,
                store: store.clone(),
                meta,
                core,
                signal,
                listeners,
                background,
                draining,
                _lock: lock.take(),
            })
        }
        .await;
        if result.is_err() {
            opened.close().await;
        }
        drop(lock);
        result
    }
}

/// What a failed start must undo.
struct Opened {
    store: Arc<dyn EventStore>,
    core: Option<Arc<Core>>,
}

impl Opened {
    async fn close(self) {
        if let Some(core) = self.core {
            core.shutdown().await;
        }
        if let Err(error) = self.store.close().await {
            warn!(message = "Failed to close the event store after a failed start.", %error);
        }
    }
}

/// A running node. Dropping it without [`RuntimeHandle::shutdown`] cancels its tasks but does not
/// drain the core or close the store.
pub struct RuntimeHandle {
    config: Config,
    node: NodeIdentity,
    admin_addr: SocketAddr,
    tcp: Option<(SocketAddr, Clients)>,
    /// The HTTP listener's bound address and the separate HTTPS one's.
    http: Option<(SocketAddr, Option<SocketAddr>)>,
    /// The gRPC listener's bound address.
    grpc: Option<SocketAddr>,
    store: Arc<dyn EventStore>,
    meta: Arc<dyn MetaStore>,
    core: Arc<Core>,
    signal: ShutdownSignal,
    listeners: TaskRegistry,
    background: TaskRegistry,
    draining: Arc<AtomicBool>,
    /// Released when the handle is dropped (after `shutdown` closed the store).
    _lock: Option<DataDirLock>,
}

impl RuntimeHandle {
    /// The bound admin address (the real port when the config said port 0).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound TCP protocol address (the real port when the config said port 0); `None` when
    /// `server.tcp.enabled` is false.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|(addr, _)| *addr)
    }

    /// The bound HTTP protocol address (the real port when the config said port 0; HTTPS when
    /// `server.http.tls` is on without its own `listen`); `None` when `server.http.enabled` is
    /// false.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.map(|(addr, _)| addr)
    }

    /// The bound gRPC protocol address (the real port when the config said port 0); `None` when
    /// `server.grpc.enabled` is false.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// The bound address of the separate HTTPS listener (`server.http.tls.listen`), if any.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.http.and_then(|(_, tls)| tls)
    }

    /// The clients connected to the TCP server (list, redirect, reject); `None` when TCP is
    /// disabled.
    pub fn tcp_clients(&self) -> Option<&Clients> {
        self.tcp.as_ref().map(|(_, clients)| clients)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.node_id
    }

    /// This node's identity.
    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The delivery core.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The node's shutdown signal: trigger it to ask for shutdown (then call
    /// [`RuntimeHandle::shutdown`]).
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.signal.clone()
    }

    /// Waits until the node is ready (the core's inbox and registration are in place); `false`
    /// if it shuts down first.
    pub async fn wait_ready(&self) -> bool {
        self.core.wait_ready().await
    }

    /// Waits until shutdown is requested (a critical task failed, or the signal was triggered).
    pub async fn wait(&self) -> ShutdownReason {
        self.signal.triggered().await
    }

    /// Stops the node within `shutdown.timeout`: listeners and background tasks, then the core
    /// (drain, flush), then the store (`close`). Parts that miss the deadline are abandoned and
    /// named in the report.
    pub async fn shutdown(self) -> ShutdownReport {
        let begin = Instant::now();
        let timeout = self.config.shutdown.timeout;
        let deadline = begin + timeout;
        self.signal
            .trigger(ShutdownReason::Requested("shutdown".to_owned()));
        let reason = self.signal.reason();
        self.draining.store(true, Ordering::Release);
        info!(
            message = "Shutting down.",
            reason = %reason.as_ref().map(ToString::to_string).unwrap_or_default(),
            timeout = %humantime::format_duration(timeout),
        );
        let mut report = ShutdownReport {
            reason,
            ..ShutdownReport::default()
        };

        // 1. Stop accepting: listeners, then background tasks.
        for registry in [&self.listeners, &self.background] {
            let r = registry.shutdown(deadline).await;
            debug!(
                message = "Tasks stopped.",
                registry = registry.name(),
                stopped = r.stopped,
                stragglers = r.stragglers.len()
            );
            report.stragglers.extend(r.stragglers);
        }

        // 2. Drain the core and flush its acks.
        if tokio::time::timeout_at(deadline, self.core.shutdown())
            .await
            .is_err()
        {
            warn!(
                message =
                    "Delivery core did not drain before the shutdown deadline; abandoning it.",
                task = "core"
            );
            report.stragglers.push("core".to_owned());
        }

        // 3. Close the store. It gets at least a moment even when the core used up the budget,
        // so a flush is attempted.
        let store_deadline = deadline.max(Instant::now() + Duration::from_millis(500));
        match tokio::time::timeout_at(store_deadline, self.store.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(message = "Failed to close the event store.", store = self.store.kind(), %error);
                report
                    .errors
                    .push(format!("closing the {} store: {error}", self.store.kind()));
            }
            Err(_) => {
                warn!(
                    message =
                        "Event store did not close before the shutdown deadline; abandoning it.",
                    task = "store"
                );
                report.stragglers.push("store".to_owned());
            }
        }

        report.elapsed = begin.elapsed();
        info!(
            message = "Shutdown complete.",
            elapsed_ms = report.elapsed.as_millis() as u64,
            stragglers = report.stragglers.len(),
            errors = report.errors.len(),
        );
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = resolve_node_id("", dir.path()).unwrap();
        let b = resolve_node_id("", dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(eventmesh_config::node::is_valid_node_id(&a));
        assert_eq!(
            resolve_node_id("configured", dir.path()).unwrap(),
            "configured"
        );
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id!\n").unwrap();
        let err = resolve_node_id("", dir.path()).unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
    }

    #[test]
    fn data_dir_is_created_and_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        let lock = open_data_dir(&path).unwrap();
        let err = open_data_dir(&path).unwrap_err();
        assert!(matches!(err, ServerError::DataDirInUse { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!(
                "in use by another process (pid {})",
                std::process::id()
            )),
            "{err}"
        );
        drop(lock);
        open_data_dir(&path).unwrap();
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let err = open_data_dir(&file).unwrap_err();
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        let err = open_data_dir(&file.join("sub")).unwrap_err();
        assert!(
            err.to_string().contains("cannot create data directory"),
            "{err}"
        );
    }

    #[cfg(feature = "embedded")]
    #[test]
    fn embedded_options_follow_the_config() {
        use eventmesh_storage_embedded::FsyncPolicy;
        let mut c = Config::default();
        c.node.data_dir = "/d".into();
        let o = embedded_options(&c);
        assert_eq!(o.data_dir, PathBuf::from("/d/events"));
        assert_eq!(o.fsync, FsyncPolicy::Batch);
        assert_eq!((o.retention_bytes, o.retention_age), (None, None));
        o.validate().unwrap();
        c.storage.embedded.fsync = eventmesh_config::FsyncPolicy::Interval;
        c.storage.embedded.retention_bytes = 1 << 30;
        c.storage.embedded.retention_age = Duration::from_secs(3600);
        c.limits.max_event_bytes = 100 << 20;
        let o = embedded_options(&c);
        assert_eq!(o.fsync, FsyncPolicy::Interval(Duration::from_millis(100)));
        assert_eq!(o.retention_bytes, Some(1 << 30));
        assert_eq!(o.retention_age, Some(Duration::from_secs(3600)));
        o.validate().unwrap();
    }

    #[test]
    fn core_options_follow_the_config() {
        let mut c = Config::default();
        c.delivery.window = 7;
        c.limits.publish_rate = 9;
        let o = core_options(&c);
        assert_eq!(o.window, 7);
        assert_eq!(o.publish_rate, 9);
        o.validate().unwrap();
        assert_eq!(
            core_options(&Config::default()).max_event_bytes,
            CoreOptions::default().max_event_bytes
        );
    }
}
