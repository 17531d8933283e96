//! Crash points for the crash tests (Cargo feature `failpoints`).
//!
//! With the feature on, `EVENTMESH_FAILPOINT=name:N` makes the N-th hit (1-based) of the point
//! called `name` abort the process (`std::process::abort`, no unwinding, no flushing). Without the
//! feature every function here is an empty inline function.
//!
//! Points (in the order a publish passes them): `publish_mid_write` (half the batch is written,
//! then abort: a torn tail), `publish_after_write`, `publish_after_fsync`, `publish_after_index`;
//! for cursors: `journal_after_write`, `journal_after_fsync`, `ack_after_cursor_update`;
//! `atomic_write_before_rename` (snapshots and metadata); `segment_after_roll`.

/// Every failpoint name, for tests that iterate over them.
pub const ALL: &[&str] = &[
    "publish_mid_write",
    "publish_after_write",
    "publish_after_fsync",
    "publish_after_index",
    "journal_after_write",
    "journal_after_fsync",
    "ack_after_cursor_update",
    "atomic_write_before_rename",
    "segment_after_roll",
];

#[cfg(feature = "failpoints")]
mod imp {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Armed {
        name: String,
        at: u64,
        hits: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var("EVENTMESH_FAILPOINT").ok()?;
                let (name, n) = spec.rsplit_once(':').unwrap_or((spec.as_str(), "1"));
                let at = n.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
                Some(Armed {
                    name: name.trim().to_owned(),
                    at,
                    hits: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    /// Whether this hit of `name` is the one that must crash.
    pub(crate) fn triggered(name: &str) -> bool {
        match armed() {
            Some(a) if a.name == name => a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.at,
            _ => false,
        }
    }

    pub(crate) fn crash(name: &str) -> ! {
        eprintln!("failpoint {name} hit: aborting");
        std::process::abort()
    }
}

/// Aborts the process if the failpoint `name` is armed for this hit.
#[inline]
pub(crate) fn hit(name: &'static str) {
    #[cfg(feature = "failpoints")]
    if imp::triggered(name) {
        imp::crash(name);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// For points that must do something before crashing (write half a batch): returns `true` if the
/// caller must do it and then call [`crash`].
#[inline]
pub(crate) fn armed_now(name: &'static str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        imp::triggered(name)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// Aborts the process (after [`armed_now`] returned `true`).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn crash(name: &'static str) {
    #[cfg(feature = "failpoints")]
    imp::crash(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
