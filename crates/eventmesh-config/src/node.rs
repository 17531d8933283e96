//! `[node]`: the identity of this runtime and where it keeps its files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The stable node id. `""` (the default): generated on first start and persisted in
    /// `<data_dir>/node_id`, then reused. Otherwise 1 to 64 of `A-Z a-z 0-9 - _ .`.
    pub id: String,
    /// The `host:port` other nodes and clients use to reach this node. `""` (the default):
    /// derived from `server.tcp.listen`.
    pub advertise: String,
    /// The data directory (event store, metadata, `node_id`); created when missing.
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(),
            advertise: String::new(),
            data_dir: PathBuf::from("./data"),
        }
    }
}

/// Whether `id` is a valid explicit node id (1 to 64 of `A-Z a-z 0-9 - _ .`).
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
