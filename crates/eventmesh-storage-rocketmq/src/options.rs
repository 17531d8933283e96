//! Options of the RocketMQ store: where the name servers are and how topics and cursors are laid
//! out on the brokers.

use std::time::Duration;

use crate::error::RocketError;
use crate::names::valid_prefix;

/// How to reach RocketMQ and how to lay the mesh out on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocketOptions {
    /// The name servers: `rocketmq://h1:9876[,h2:9876…]`.
    pub url: String,
    /// The prefix of every topic and consumer group this store makes (`[A-Za-z0-9-]`, at most
    /// 32 bytes), so that several meshes can share one RocketMQ cluster.
    pub prefix: String,
    /// The cluster whose master broker holds new topics (`brokerClusterName`).
    pub cluster: String,
    /// The longest any call to a name server or broker may take before it fails with
    /// [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable).
    pub request_timeout: Duration,
    /// How many messages one pull reads from a queue at most.
    pub pull_batch: u32,
    /// The largest message the brokers take (`maxMessageSize`; 4 MiB by default); a larger
    /// event is refused with `Invalid` before anything is sent.
    pub max_message_bytes: usize,
    /// How often the store serving a cursor renews the broker's lock of the cursor's queue
    /// (the one store of all mesh nodes that serves a cursor holds it). Must stay well under the
    /// broker's `rocketmq.broker.rebalance.lockMaxLiveTime` (60 s by default), after which a
    /// lock not renewed, of a node that died, goes to another node.
    pub lock_renew: Duration,
    /// What a DeFiBus broker needs (see [`DefibusOptions`]).
    pub defibus: DefibusOptions,
}

/// Options for DeFiBus, WeBank's RocketMQ fork that was EventMesh's first event store.
///
/// **Untested:** no DeFiBus broker was available to test against; the store only writes the
/// message properties DeFiBus reads (EventMesh reference, section 2.7) and makes its reply topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefibusOptions {
    /// Whether to write the DeFiBus properties at all.
    pub enabled: bool,
    /// The DeFiBus cluster name: replies go to `<cluster>-rr-reply-topic`, which the store
    /// creates when it opens, and requests carry it as `CLUSTER`.
    pub cluster: String,
    /// The `TTL` (milliseconds) written on events that carry no `ttl` or `expiresat` of their
    /// own.
    pub default_ttl: Duration,
}

impl Default for DefibusOptions {
    fn default() -> Self {
        DefibusOptions {
            enabled: false,
            cluster: "DefaultCluster".to_owned(),
            default_ttl: Duration::from_secs(4 * 3600),
        }
    }
}

impl DefibusOptions {
    /// The reply topic of the DeFiBus cluster.
    pub fn reply_topic(&self) -> String {
        format!("{}-rr-reply-topic", self.cluster)
    }
}

impl Default for RocketOptions {
    fn default() -> Self {
        RocketOptions {
            url: "rocketmq://127.0.0.1:9876".to_owned(),
            prefix: "EVENTMESH".to_owned(),
            cluster: "DefaultCluster".to_owned(),
            request_timeout: Duration::from_secs(3),
            pull_batch: 256,
            max_message_bytes: 4 * 1024 * 1024,
            lock_renew: Duration::from_secs(15),
            defibus: DefibusOptions::default(),
        }
    }
}

impl RocketOptions {
    /// Options for `url` with every other value at its default.
    pub fn new(url: impl Into<String>) -> Self {
        RocketOptions {
            url: url.into(),
            ..RocketOptions::default()
        }
    }

    /// Checks the options and returns the name-server list as the client wants it
    /// (`h1:9876;h2:9876`).
    pub(crate) fn parse(&self) -> Result<String, RocketError> {
        if !valid_prefix(&self.prefix) {
            return Err(RocketError::Config(format!(
                "prefix `{}` is invalid: use 1 to 32 ASCII letters, digits or `-`",
                self.prefix
            )));
        }
        if self.cluster.is_empty()
            || !self
                .cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RocketError::Config(format!(
                "cluster `{}` is invalid: use ASCII letters, digits, `-` or `_`",
                self.cluster
            )));
        }
        if self.request_timeout < Duration::from_millis(100) {
            return Err(RocketError::Config(
                "request_timeout must be at least 100ms".to_owned(),
            ));
        }
        if !(1..=1024).contains(&self.pull_batch) {
            return Err(RocketError::Config(format!(
                "pull_batch is {}; use 1 to 1024",
                self.pull_batch
            )));
        }
        if self.lock_renew < Duration::from_millis(100) {
            return Err(RocketError::Config(
                "lock_renew must be at least 100ms".to_owned(),
            ));
        }
        if self.max_message_bytes == 0 {
            return Err(RocketError::Config(
                "max_message_bytes must be above zero".to_owned(),
            ));
        }
        parse_url(&self.url)
    }
}

/// `rocketmq://h1:9876,h2:9876` → `h1:9876;h2:9876`.
pub(crate) fn parse_url(url: &str) -> Result<String, RocketError> {
    let bad = |why: &str| RocketError::Config(format!("RocketMQ URL `{url}` {why}"));
    let Some(rest) = url.strip_prefix("rocketmq://") else {
        return Err(bad(
            "must start with rocketmq:// (e.g. rocketmq://127.0.0.1:9876,10.0.0.2:9876)",
        ));
    };
    let mut hosts = Vec::new();
    for part in rest.split(',') {
        let host = part.trim().trim_end_matches('/');
        let part_ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !part_ok || host.contains(['/', '@', ';']) || host.contains(char::is_whitespace) {
            return Err(bad("lists a name server that is not host:port"));
        }
        hosts.push(host.to_owned());
    }
    Ok(hosts.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_one_or_several_name_servers() {
        assert_eq!(
            parse_url("rocketmq://127.0.0.1:9876").ok().as_deref(),
            Some("127.0.0.1:9876")
        );
        assert_eq!(
            parse_url("rocketmq://h1:1, h2:2/").ok().as_deref(),
            Some("h1:1;h2:2")
        );
        for bad in [
            "h:9876",
            "nats://h:1",
            "rocketmq://",
            "rocketmq://h",
            "rocketmq://h:0",
            "rocketmq://h:x",
            "rocketmq://u@h:1",
            "rocketmq://h:1,,h2:2",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked() {
        let mut o = RocketOptions::default();
        assert!(o.parse().is_ok());
        o.prefix = "a_b".into();
        assert!(o.parse().is_err());
        o = RocketOptions::default();
        o.request_timeout = Duration::from_millis(10);
        assert!(o.parse().is_err());
        o = RocketOptions::default();
        o.pull_batch = 0;
        assert!(o.parse().is_err());
        o = RocketOptions::default();
        o.cluster = "a b".into();
        assert!(o.parse().is_err());
        assert_eq!(
            DefibusOptions::default().reply_topic(),
            "DefaultCluster-rr-reply-topic"
        );
    }
}
