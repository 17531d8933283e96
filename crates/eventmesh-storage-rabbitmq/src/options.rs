//! Options of the RabbitMQ store: where the broker is, how topology is made and how long things
//! may take.

use eventmesh_core::redact::mask_url;
use std::fmt;
use std::time::Duration;

use crate::error::RabbitError;

/// How to reach RabbitMQ and how to lay the mesh out on it.
#[derive(Clone, PartialEq, Eq)]
pub struct RabbitOptions {
    /// `amqp://user:pass@host:5672/vhost` (the vhost percent-encoded: `%2f` is `/`). Logs show
    /// the password masked. Only `amqp://` is accepted: this build has no TLS backend.
    pub url: String,
    /// The prefix of every exchange and queue name (letters, digits, `-`, `_`, `.`; 1 to 32
    /// bytes), so that several meshes can share one vhost.
    pub prefix: String,
    /// Stream deliveries each cursor reader may hold un-acknowledged (its `basic.qos`); stream
    /// consumers require one.
    pub prefetch: u16,
    /// How long a publish may wait for the broker's confirm (and for its offset) before it
    /// fails with [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable).
    pub confirm_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// The longest pause between two reconnection attempts (pauses grow up to it).
    pub max_reconnect_backoff: Duration,
    /// How long the cursor of a BROADCASTING member lives unused before the broker removes it
    /// (`x-expires` of its state queue).
    pub member_expiry: Duration,
    /// The same for the shared cursor of a CLUSTERING group (like Kafka's offsets retention).
    pub group_expiry: Duration,
    /// Retention of each topic stream by age (`x-max-age`, whole seconds); `None` keeps
    /// everything.
    pub max_age: Option<Duration>,
    /// Retention of each topic stream by size (`x-max-length-bytes`); `None`: no limit.
    pub max_bytes: Option<u64>,
    /// Events a cursor reads ahead of its fetches, at most.
    pub read_ahead: usize,
    /// A store that has not used a cursor for this long, and holds none of its events in
    /// flight, releases its lock so that another node's store can serve it.
    pub release_idle_after: Duration,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        RabbitOptions {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            prefix: "eventmesh".to_owned(),
            prefetch: 512,
            confirm_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_reconnect_backoff: Duration::from_secs(2),
            member_expiry: Duration::from_secs(24 * 3600),
            group_expiry: Duration::from_secs(7 * 24 * 3600),
            max_age: None,
            max_bytes: None,
            read_ahead: 2048,
            release_idle_after: Duration::from_secs(30),
        }
    }
}

impl RabbitOptions {
    /// Options for `url` with every other value at its default.
    pub fn new(url: impl Into<String>) -> Self {
        RabbitOptions {
            url: url.into(),
            ..RabbitOptions::default()
        }
    }

    /// Checks the options.
    pub(crate) fn validate(&self) -> Result<(), RabbitError> {
        if !self.url.starts_with("amqp://") {
            return Err(RabbitError::Config(format!(
                "url `{}` must start with amqp:// (amqps:// is not supported by this build)",
                mask_url(&self.url)
            )));
        }
        let prefix_ok = (1..=32).contains(&self.prefix.len())
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !self.prefix.starts_with("amq.");
        if !prefix_ok {
            return Err(RabbitError::Config(format!(
                "prefix `{}` is invalid: use 1 to 32 ASCII letters, digits, `-`, `_` or `.`, not starting with `amq.`",
                self.prefix
            )));
        }
        if self.prefetch == 0 || self.read_ahead == 0 {
            return Err(RabbitError::Config(
                "prefetch and read_ahead must be above zero".to_owned(),
            ));
        }
        for (name, d) in [
            ("confirm_timeout", self.confirm_timeout),
            ("connect_timeout", self.connect_timeout),
            ("max_reconnect_backoff", self.max_reconnect_backoff),
            ("member_expiry", self.member_expiry),
            ("group_expiry", self.group_expiry),
            ("release_idle_after", self.release_idle_after),
        ] {
            if d.is_zero() {
                return Err(RabbitError::Config(format!("{name} must be above zero")));
            }
        }
        if self.member_expiry.as_millis() > u128::from(u32::MAX)
            || self.group_expiry.as_millis() > u128::from(u32::MAX)
        {
            return Err(RabbitError::Config(
                "member_expiry and group_expiry must be under 49 days (x-expires is 32-bit milliseconds)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The URL with its password masked, for logs.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }
}

impl fmt::Debug for RabbitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitOptions")
            .field("url", &self.masked_url())
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_reconnect_backoff", &self.max_reconnect_backoff)
            .field("member_expiry", &self.member_expiry)
            .field("group_expiry", &self.group_expiry)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("read_ahead", &self.read_ahead)
            .field("release_idle_after", &self.release_idle_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_options() {
        assert!(RabbitOptions::new("amqps://h/").validate().is_err());
        assert!(RabbitOptions::new("redis://h/").validate().is_err());
        let mut o = RabbitOptions::new("amqp://h/");
        assert!(o.validate().is_ok());
        o.prefix = "amq.x".to_owned();
        assert!(o.validate().is_err());
        o.prefix = "em".to_owned();
        o.prefetch = 0;
        assert!(o.validate().is_err());
        let dbg = format!("{:?}", RabbitOptions::new("amqp://u:pw@h/"));
        assert!(!dbg.contains("pw@"), "{dbg}");
    }
}
