//! Options of the NATS JetStream store: where the servers are and how streams and consumers are
//! made.

use eventmesh_core::redact::mask_url;
use std::fmt;
use std::time::Duration;

use crate::error::NatsError;
use crate::names::valid_prefix;

/// How to reach NATS and how to lay the mesh out on JetStream.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The servers, `nats://h1:4222,h2:4222`; credentials may be given once, on the first host:
    /// `nats://user:pass@h1:4222,h2:4222` or `nats://token@h1:4222`. Logs show them masked.
    pub url: String,
    /// Replicas of every stream (and its consumers): 1, or 3 or 5 on a JetStream cluster.
    pub replicas: usize,
    /// The prefix of every stream name and subject (`[A-Za-z0-9-]`, at most 32 bytes), so that
    /// several meshes can share one NATS system.
    pub stream_prefix: String,
    /// The longest pause between two reconnection attempts (the pauses grow up to it).
    pub max_reconnect_backoff: Duration,
    /// How long a JetStream API call or a publish acknowledgement may take before the call fails
    /// with [`StorageError::Unavailable`](eventmesh_storage::StorageError::Unavailable).
    pub request_timeout: Duration,
    /// How long the first connection may take.
    pub connect_timeout: Duration,
    /// The consumers' `AckWait`: the crash lease, after which the server hands an event held by
    /// a node that died to another fetch. A live store enforces each fetch's own lease itself
    /// (see the crate docs); set this to the runtime's crash lease.
    pub ack_wait: Duration,
    /// How long the consumer of a BROADCASTING member lives unused (its `inactive_threshold`)
    /// before the server removes it.
    pub member_expiry: Duration,
    /// The streams' duplicate window: a publish retried within it with the same events is
    /// stored once (each event carries its mesh id as `Nats-Msg-Id`).
    pub duplicate_window: Duration,
    /// The consumers' `max_ack_pending` (events fetched and not yet acked, per cursor); `-1`: no
    /// limit (the runtime core bounds what it holds).
    pub max_ack_pending: i64,
}

impl NatsOptions {
    /// Options for `url` with every other value at its default.
    pub fn new(url: impl Into<String>) -> Self {
        NatsOptions {
            url: url.into(),
            ..NatsOptions::default()
        }
    }

    /// Checks the options and splits the URL into server addresses and credentials.
    pub(crate) fn parse(&self) -> Result<ParsedUrl, NatsError> {
        if !valid_prefix(&self.stream_prefix) {
            return Err(NatsError::Config(format!(
                "stream_prefix `{}` is invalid: use 1 to 32 ASCII letters, digits or `-`",
                self.stream_prefix
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(NatsError::Config(format!(
                "replicas is {}; JetStream allows 1 to 5",
                self.replicas
            )));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("ack_wait", self.ack_wait),
            ("member_expiry", self.member_expiry),
            ("max_reconnect_backoff", self.max_reconnect_backoff),
        ] {
            if d.is_zero() {
                return Err(NatsError::Config(format!("{name} must be above zero")));
            }
        }
        parse_url(&self.url)
    }

    /// The URL with its credentials masked, for logs.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            url: "nats://127.0.0.1:4222".to_owned(),
            replicas: 1,
            stream_prefix: "EVENTMESH".to_owned(),
            max_reconnect_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            ack_wait: Duration::from_secs(120),
            member_expiry: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            max_ack_pending: -1,
        }
    }
}

impl fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &self.masked_url())
            .field("replicas", &self.replicas)
            .field("stream_prefix", &self.stream_prefix)
            .field("max_reconnect_backoff", &self.max_reconnect_backoff)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_wait", &self.ack_wait)
            .field("member_expiry", &self.member_expiry)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_ack_pending", &self.max_ack_pending)
            .finish()
    }
}

/// Credentials found in the URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    None,
    UserPassword(String, String),
    Token(String),
}

/// A URL split into server addresses (without credentials) and credentials.
pub(crate) struct ParsedUrl {
    pub(crate) servers: Vec<String>,
    pub(crate) credentials: Credentials,
}

const SCHEMES: [&str; 2] = ["nats://", "tls://"];

fn parse_url(url: &str) -> Result<ParsedUrl, NatsError> {
    let bad = |why: &str| NatsError::Config(format!("NATS URL `{}` {why}", mask_url(url)));
    let Some(scheme) = SCHEMES.iter().find(|s| url.starts_with(*s)) else {
        return Err(bad(
            "must start with nats:// or tls:// (e.g. nats://h1:4222,h2:4222)",
        ));
    };
    let mut servers = Vec::new();
    let mut credentials = Credentials::None;
    for (i, part) in url[scheme.len()..].split(',').enumerate() {
        let part = part.trim();
        let part = SCHEMES
            .iter()
            .find_map(|s| part.strip_prefix(s))
            .unwrap_or(part);
        let host = match part.rsplit_once('@') {
            Some((userinfo, host)) => {
                if i > 0 {
                    return Err(bad("gives credentials on a host other than the first"));
                }
                credentials = match userinfo.split_once(':') {
                    Some((u, p)) => Credentials::UserPassword(u.to_owned(), p.to_owned()),
                    None => Credentials::Token(userinfo.to_owned()),
                };
                host
            }
            None => part,
        };
        let host = host.trim_end_matches('/');
        if host.is_empty()
            || host.contains('/')
            || host.contains(char::is_whitespace)
            || !host.contains(':')
        {
            return Err(bad("lists a host that is not host:port"));
        }
        servers.push(format!("{scheme}{host}"));
    }
    Ok(ParsedUrl {
        servers,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_several_hosts_and_credentials() {
        let p = parse_url("nats://u:p@w@h1:4222,h2:4223").unwrap();
        assert_eq!(p.servers, ["nats://h1:4222", "nats://h2:4223"]);
        assert!(p.credentials == Credentials::UserPassword("u".into(), "p@w".into()));
        let p = parse_url("nats://s3cret@h:4222").unwrap();
        assert!(p.credentials == Credentials::Token("s3cret".into()));
        assert_eq!(p.servers, ["nats://h:4222"]);
        let p = parse_url("nats://h1:1,nats://h2:2").unwrap();
        assert_eq!(p.servers, ["nats://h1:1", "nats://h2:2"]);
    }

    #[test]
    fn bad_urls_are_refused_with_masked_credentials() {
        for bad in [
            "h:4222",
            "redis://h:1",
            "nats://",
            "nats://h",
            "nats://h:1,u:secret@h2:2",
        ] {
            let err = parse_url(bad).err().unwrap().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn masking_hides_passwords_and_tokens() {
        assert_eq!(
            mask_url("nats://u:pw@h1:4222,h2:4222"),
            "nats://u:***@h1:4222,h2:4222"
        );
        assert_eq!(mask_url("nats://tok@h:1"), "nats://***@h:1");
        assert_eq!(mask_url("nats://h:1"), "nats://h:1");
        let o = NatsOptions::new("nats://u:pw@h:1");
        assert!(!format!("{o:?}").contains("pw"));
    }

    #[test]
    fn options_are_checked() {
        let mut o = NatsOptions::default();
        assert!(o.parse().is_ok());
        o.stream_prefix = "a.b".into();
        assert!(o.parse().is_err());
        o = NatsOptions::default();
        o.replicas = 0;
        assert!(o.parse().is_err());
        o = NatsOptions::default();
        o.ack_wait = Duration::ZERO;
        assert!(o.parse().is_err());
    }
}
