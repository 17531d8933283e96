//! Task registry and shutdown coordination.
//!
//! * [`ShutdownSignal`]: the one "please shut down" flag of a node, with the first reason given
//!   (a signal, a request, or a critical task that failed). Triggering it cancels nothing by
//!   itself: the runtime then stops its parts in order (listeners, core, store).
//! * [`TaskRegistry`]: the only way the runtime spawns long-lived tasks. Each task has a name,
//!   a `critical` flag and its own child [`CancellationToken`]; a critical task that fails,
//!   panics or ends before it was asked to triggers the node's [`ShutdownSignal`].
//!   [`TaskRegistry::shutdown`] cancels every task and awaits them until a deadline, then aborts
//!   and names each straggler.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

mod registry;
mod signal;

pub use registry::{RegistryReport, TaskRegistry};
pub use signal::{ShutdownReason, ShutdownSignal};
