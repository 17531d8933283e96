//! The store's options and URL handling (with the password masked wherever the URL is shown).

use eventmesh_core::redact::mask_url;
use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// How to reach Redis and how the store uses it.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]` (default port 6379). One host: a Redis primary
    /// (not Redis Cluster). Never logged with its password.
    pub url: String,
    /// Prefix of every key the store writes (default `eventmesh`), so several meshes can share
    /// one Redis database.
    pub key_prefix: String,
    /// The longest one blocking read (`XREAD BLOCK`) of a fetch lasts (default 250 ms). A fetch
    /// waits in slices of at most this long, so that a redelivery that fell due because of a nack
    /// or lease set on *another* node is found within this bound (those set on this node wake the
    /// fetch at once).
    pub fetch_block: Duration,
    /// The bound on every request to Redis (default 5 s): past it the call fails with
    /// `StorageError::Unavailable`, which is also what publishes get while Redis is down.
    pub request_timeout: Duration,
    /// The longest lease or nack delay the store keeps (default 24 h); longer ones are cut to it.
    /// Leases are kept in the pending-entry list as "delivered at now + lease − max_lease", and
    /// entries idle for `max_lease` are due (see the crate docs).
    pub max_lease: Duration,
    /// BROADCASTING member cursors unused (no subscribe, fetch, ack or seek) for this long are
    /// deleted (default 1 h; zero keeps them forever).
    pub member_expiry: Duration,
    /// When set, each topic's stream is capped near this many entries (`XADD MAXLEN ~`): older
    /// events are dropped even when a cursor has not consumed them. Default: no cap.
    pub max_len: Option<u64>,
}

impl RedisOptions {
    /// Options with defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            key_prefix: "eventmesh".to_owned(),
            fetch_block: Duration::from_millis(250),
            request_timeout: Duration::from_secs(5),
            max_lease: Duration::from_secs(24 * 3600),
            member_expiry: Duration::from_secs(3600),
            max_len: None,
        }
    }

    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the longest single blocking read of a fetch.
    pub fn fetch_block(mut self, d: Duration) -> Self {
        self.fetch_block = d;
        self
    }

    /// Sets the bound on every request.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the longest lease or nack delay (the lease horizon).
    pub fn max_lease(mut self, d: Duration) -> Self {
        self.max_lease = d;
        self
    }

    /// Sets the expiry of unused BROADCASTING member cursors.
    pub fn member_expiry(mut self, d: Duration) -> Self {
        self.member_expiry = d;
        self
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }

    /// Checks the options; every problem is reported at once.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        let scheme = self.url.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("redis") => {}
            Some("rediss") => problems.push(
                "TLS (`rediss://`) is not compiled into this build; use `redis://`".to_owned(),
            ),
            _ => problems.push(format!(
                "url `{}` must start with `redis://`",
                self.masked_url()
            )),
        }
        if self.url.contains(',') {
            problems.push(
                "the redis store talks to one Redis primary; a list of hosts is not supported"
                    .to_owned(),
            );
        }
        if self.key_prefix.is_empty() {
            problems.push("key_prefix must not be empty".to_owned());
        }
        if self.fetch_block.is_zero() {
            problems.push("fetch_block must be > 0".to_owned());
        }
        if self.request_timeout.is_zero() {
            problems.push("request_timeout must be > 0".to_owned());
        }
        if self.max_lease < Duration::from_secs(1) {
            problems.push("max_lease must be at least 1 s".to_owned());
        }
        if self.max_len == Some(0) {
            problems.push("max_len must be > 0 when set".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Options(problems.join("; ")))
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &self.masked_url())
            .field("key_prefix", &self.key_prefix)
            .field("fetch_block", &self.fetch_block)
            .field("request_timeout", &self.request_timeout)
            .field("max_lease", &self.max_lease)
            .field("member_expiry", &self.member_expiry)
            .field("max_len", &self.max_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let mut o = RedisOptions::new("nats://:pw@h:4222,h2:4222").key_prefix("");
        o.fetch_block = Duration::ZERO;
        let Err(Error::Options(msg)) = o.validate() else {
            panic!("expected an options error");
        };
        assert!(msg.contains("must start with `redis://`"), "{msg}");
        assert!(msg.contains("list of hosts"), "{msg}");
        assert!(msg.contains("key_prefix"), "{msg}");
        assert!(msg.contains("fetch_block"), "{msg}");
        assert!(!msg.contains(":pw@"), "{msg}");
        assert!(
            RedisOptions::new("redis://127.0.0.1:6379")
                .validate()
                .is_ok()
        );
    }
}
