//! BROADCASTING: every member gets every event published after its subscribe was answered.
//!
//! Each member has its own store cursor, keyed by its stable identity, and its own dispatcher
//! (the same machine as CLUSTERING, with its own window, retries and backoff), so a slow member
//! slows only itself. The cursor is created with `StartFrom::Latest` and *awaited* before
//! `subscribe` returns, so the position is recorded before the client hears "subscribed". A
//! member that reconnects with the same identity finds its cursor and resumes where it left off;
//! an explicit unsubscribe deletes the cursor. Cursors of members that never come back are the
//! store's to expire.
//!
//! Identity (delivery.md): the adapter puts it in `SessionMeta::client_identity`: a webhook's URL;
//! TCP: (group, host, pid, path) from its UserAgent, or a `clientid` property; gRPC: (group, ip,
//! pid, sys). The group is part of the cursor key already.

use eventmesh_core::SessionMeta;

/// The identity naming a BROADCASTING member's cursor: the session's `client_identity`, or, when
/// the adapter gave none, one unique to the session (which then cannot resume after a reconnect).
pub fn member_identity(meta: &SessionMeta) -> String {
    if meta.client_identity.is_empty() {
        format!("session-{}", meta.id.0)
    } else {
        meta.client_identity.clone()
    }
}
