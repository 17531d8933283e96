//! Semantic validation: the checks types cannot express (ranges, relations between keys,
//! address clashes). Every check runs; all findings are returned.

use std::net::SocketAddr;
use std::time::Duration;

use crate::node::is_valid_node_id;
use crate::storage::{FsyncPolicy, MIN_SEGMENT_BYTES, StorageKind};
use crate::{Config, log};

/// The largest accepted `limits.max_event_bytes` (1 GiB).
pub const MAX_EVENT_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;

/// One finding: the key it is about, a related key (for relations), and what is wrong.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) key: &'static str,
    pub(crate) related: Option<&'static str>,
    pub(crate) message: String,
}

fn issue(key: &'static str, message: impl Into<String>) -> Issue {
    Issue {
        key,
        related: None,
        message: message.into(),
    }
}

fn relation(key: &'static str, related: &'static str, message: impl Into<String>) -> Issue {
    Issue {
        key,
        related: Some(related),
        message: message.into(),
    }
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Whether `s` is `HOST:PORT` with a non-empty host (IPv6 in brackets) and a port 1..=65535.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    port_ok && host_ok
}

pub(crate) fn check(c: &Config) -> Vec<Issue> {
    let mut out = Vec::new();

    // [node]
    if !c.node.id.is_empty() && !is_valid_node_id(&c.node.id) {
        out.push(issue(
            "node.id",
            format!("`{}` is not a valid node id: use 1 to 64 of A-Z a-z 0-9 - _ . (or \"\" to generate one)", c.node.id),
        ));
    }
    if !c.node.advertise.is_empty() && !is_host_port(&c.node.advertise) {
        out.push(issue(
            "node.advertise",
            format!(
                "`{}` is not HOST:PORT (IPv6 in brackets, port 1-65535); use \"\" to derive it from server.tcp.listen",
                c.node.advertise
            ),
        ));
    }
    if c.node.data_dir.as_os_str().is_empty() {
        out.push(issue("node.data_dir", "must not be empty"));
    }

    // Listener clashes: two enabled listeners on one address (port 0 never clashes).
    let mut listeners: Vec<(&'static str, SocketAddr)> = vec![("admin.listen", c.admin.listen)];
    for (key, enabled, addr) in [
        (
            "server.tcp.listen",
            c.server.tcp.enabled,
            c.server.tcp.listen,
        ),
        (
            "server.http.listen",
            c.server.http.enabled,
            c.server.http.listen,
        ),
        (
            "server.grpc.listen",
            c.server.grpc.enabled,
            c.server.grpc.listen,
        ),
        (
            "server.mqtt.listen",
            c.server.mqtt.enabled,
            c.server.mqtt.listen,
        ),
    ] {
        if enabled {
            listeners.push((key, addr));
        }
    }
    for (i, (key, addr)) in listeners.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr) {
            out.push(relation(
                key,
                other,
                format!("{addr} is already used by `{other}`"),
            ));
        }
    }

    // [server.tcp]
    let t = &c.server.tcp;
    if t.max_frame_bytes < 1024 {
        out.push(issue("server.tcp.max_frame_bytes", "must be at least 1024"));
    }
    if t.idle_timeout.is_zero() {
        out.push(issue("server.tcp.idle_timeout", "must be above 0"));
    }
    if t.max_unack == 0 {
        out.push(issue("server.tcp.max_unack", "must be at least 1"));
    }
    if t.max_pending == 0 {
        out.push(issue("server.tcp.max_pending", "must be at least 1"));
    }

    // [server.grpc]
    let g = &c.server.grpc;
    if g.max_batch_events == 0 {
        out.push(issue("server.grpc.max_batch_events", "must be at least 1"));
    }
    if g.max_concurrent_streams == 0 {
        out.push(issue(
            "server.grpc.max_concurrent_streams",
            "must be at least 1",
        ));
    }
    if g.max_unack == 0 {
        out.push(issue("server.grpc.max_unack", "must be at least 1"));
    }
    if g.tls.enabled {
        for (key, file) in [
            ("server.grpc.tls.cert_file", &g.tls.cert_file),
            ("server.grpc.tls.key_file", &g.tls.key_file),
        ] {
            if file.is_empty() {
                out.push(issue(key, "must name a PEM file when tls.enabled = true"));
            }
        }
    }

    // [server.http]
    let h = &c.server.http;
    if h.max_batch_events == 0 {
        out.push(issue("server.http.max_batch_events", "must be at least 1"));
    }
    let cb = &h.bridge.callback_url;
    let host = cb
        .strip_prefix("http://")
        .or_else(|| cb.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or(""));
    if !cb.is_empty()
        && (host.is_none_or(str::is_empty)
            || cb.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        out.push(issue(
            "server.http.bridge.callback_url",
            format!("`{cb}` is not an http:// or https:// URL; use \"\" to derive it"),
        ));
    }
    if h.bridge
        .group
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        out.push(issue(
            "server.http.bridge.group",
            "must not hold spaces or control characters",
        ));
    }
    if h.tls.enabled {
        if h.tls.cert_file.is_empty() {
            out.push(issue(
                "server.http.tls.cert_file",
                "must name a PEM file when tls.enabled = true",
            ));
        }
        if h.tls.key_file.is_empty() {
            out.push(issue(
                "server.http.tls.key_file",
                "must name a PEM file when tls.enabled = true",
            ));
        }
        if !h.tls.listen.is_empty() && h.tls.listen.parse::<SocketAddr>().is_err() {
            out.push(issue(
                "server.http.tls.listen",
                format!(
                    "`{}` is not IP:PORT; use \"\" to serve TLS on server.http.listen",
                    h.tls.listen
                ),
            ));
        }
    }
    match h.auth.mode {
        crate::server::http::HttpAuthMode::None => {}
        crate::server::http::HttpAuthMode::Basic => {
            if h.auth.username.is_empty() || h.auth.password.is_empty() {
                out.push(issue(
                    "server.http.auth.username",
                    "basic auth needs a username and a password",
                ));
            }
        }
        crate::server::http::HttpAuthMode::Bearer => {
            if h.auth.token.is_empty() {
                out.push(issue("server.http.auth.token", "bearer auth needs a token"));
            }
        }
    }
    let w = &h.webhook;
    if w.push_timeout.is_zero() {
        out.push(issue("server.http.webhook.push_timeout", "must be above 0"));
    }
    if w.max_in_flight == 0 {
        out.push(issue(
            "server.http.webhook.max_in_flight",
            "must be at least 1",
        ));
    }
    if w.unhealthy_after == 0 {
        out.push(issue(
            "server.http.webhook.unhealthy_after",
            "must be at least 1",
        ));
    }
    for n in &w.deny_networks {
        if let Err(why) = crate::server::http::parse_cidr(n) {
            out.push(issue("server.http.webhook.deny_networks", why));
        }
    }

    // [limits]
    if c.limits.max_event_bytes == 0 {
        out.push(issue("limits.max_event_bytes", "must be at least 1"));
    } else if c.limits.max_event_bytes > MAX_EVENT_BYTES_LIMIT {
        out.push(issue(
            "limits.max_event_bytes",
            format!("must be at most {MAX_EVENT_BYTES_LIMIT} (1 GiB)"),
        ));
    }
    if c.limits.max_connections == 0 {
        out.push(issue("limits.max_connections", "must be at least 1"));
    }

    // [storage]
    let e = &c.storage.embedded;
    if e.segment_bytes < MIN_SEGMENT_BYTES {
        out.push(issue(
            "storage.embedded.segment_bytes",
            format!("must be at least {MIN_SEGMENT_BYTES}"),
        ));
    }
    if e.fsync == FsyncPolicy::Interval && e.fsync_interval.is_zero() {
        out.push(relation(
            "storage.embedded.fsync_interval",
            "storage.embedded.fsync",
            "must be above 0 when fsync = \"interval\"",
        ));
    }
    let n = &c.storage.nats;
    if c.storage.kind == StorageKind::Nats
        && !["nats://", "tls://"]
            .iter()
            .any(|s| c.storage.url.starts_with(s))
    {
        out.push(relation(
            "storage.url",
            "storage.type",
            "must be a nats:// or tls:// URL when type = \"nats\", e.g. \"nats://h1:4222,h2:4222\"",
        ));
    }
    if !(1..=5).contains(&n.replicas) {
        out.push(issue("storage.nats.replicas", "must be 1 to 5"));
    }
    let prefix_ok = !n.stream_prefix.is_empty()
        && n.stream_prefix.len() <= 32
        && n.stream_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !prefix_ok {
        out.push(issue(
            "storage.nats.stream_prefix",
            "use 1 to 32 ASCII letters, digits or `-`",
        ));
    }
    for (key, d) in [
        ("storage.nats.request_timeout", n.request_timeout),
        (
            "storage.nats.max_reconnect_backoff",
            n.max_reconnect_backoff,
        ),
        ("storage.nats.member_expiry", n.member_expiry),
    ] {
        if d.is_zero() {
            out.push(issue(key, "must be above 0"));
        }
    }

    let r = &c.storage.redis;
    if c.storage.kind == StorageKind::Redis && !c.storage.url.starts_with("redis://") {
        out.push(relation(
            "storage.url",
            "storage.type",
            "must be a redis:// URL when type = \"redis\", e.g. \"redis://127.0.0.1:6379\"",
        ));
    }
    if r.key_prefix.is_empty() {
        out.push(issue("storage.redis.key_prefix", "must not be empty"));
    }
    for (key, d) in [
        ("storage.redis.request_timeout", r.request_timeout),
        ("storage.redis.fetch_block", r.fetch_block),
        ("storage.redis.member_expiry", r.member_expiry),
    ] {
        if d.is_zero() {
            out.push(issue(key, "must be above 0"));
        }
    }

    let k = &c.storage.kafka;
    if c.storage.kind == StorageKind::Kafka && !c.storage.url.starts_with("kafka://") {
        out.push(relation(
            "storage.url",
            "storage.type",
            "must be a kafka:// URL when type = \"kafka\", e.g. \"kafka://h1:9092,h2:9092\"",
        ));
    }
    for (key, p) in [
        ("storage.kafka.topic_prefix", &k.topic_prefix),
        ("storage.kafka.group_prefix", &k.group_prefix),
    ] {
        let ok = p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            out.push(issue(
                key,
                "use at most 64 ASCII letters, digits, `.`, `_` or `-`",
            ));
        }
    }
    if !(1..=10_000).contains(&k.partitions) {
        out.push(issue("storage.kafka.partitions", "must be 1 to 10000"));
    }
    if k.replication_factor == 0 {
        out.push(issue(
            "storage.kafka.replication_factor",
            "must be at least 1",
        ));
    }
    for (key, d) in [
        ("storage.kafka.publish_timeout", k.publish_timeout),
        ("storage.kafka.request_timeout", k.request_timeout),
        ("storage.kafka.session_timeout", k.session_timeout),
    ] {
        if d < Duration::from_millis(100) {
            out.push(issue(key, "must be at least 100ms"));
        }
    }
    if k.metadata_max_bytes < 64 {
        out.push(issue(
            "storage.kafka.metadata_max_bytes",
            "must be at least 64",
        ));
    }
    for (i, p) in k.properties.iter().enumerate() {
        match p.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() => {}
            // The entry itself is not shown: it may hold a secret.
            _ => out.push(issue(
                "storage.kafka.properties",
                format!("entry {} is not \"key=value\"", i + 1),
            )),
        }
    }

    let q = &c.storage.rabbitmq;
    if c.storage.kind == StorageKind::Rabbitmq && !c.storage.url.starts_with("amqp://") {
        out.push(relation(
            "storage.url",
            "storage.type",
            "must be an amqp:// URL when type = \"rabbitmq\", e.g. \"amqp://guest:guest@127.0.0.1:5672/%2f\"",
        ));
    }
    let prefix_ok = (1..=32).contains(&q.prefix.len())
        && q.prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !q.prefix.starts_with("amq.");
    if !prefix_ok {
        out.push(issue(
            "storage.rabbitmq.prefix",
            "must be 1 to 32 ASCII letters, digits, `-`, `_` or `.`, not starting with `amq.`",
        ));
    }
    if q.prefetch == 0 {
        out.push(issue("storage.rabbitmq.prefetch", "must be at least 1"));
    }
    for (key, d) in [
        ("storage.rabbitmq.confirm_timeout", q.confirm_timeout),
        (
            "storage.rabbitmq.max_reconnect_backoff",
            q.max_reconnect_backoff,
        ),
        ("storage.rabbitmq.member_expiry", q.member_expiry),
        ("storage.rabbitmq.group_expiry", q.group_expiry),
    ] {
        if d.is_zero() {
            out.push(issue(key, "must be above 0"));
        } else if d.as_millis() > u128::from(u32::MAX) {
            out.push(issue(
                key,
                "must be under 49 days (RabbitMQ's x-expires limit)",
            ));
        }
    }

    let m = &c.storage.rocketmq;
    if c.storage.kind == StorageKind::Rocketmq && !c.storage.url.starts_with("rocketmq://") {
        out.push(relation(
            "storage.url",
            "storage.type",
            "must be a rocketmq:// URL of the name servers when type = \"rocketmq\", e.g. \"rocketmq://127.0.0.1:9876\"",
        ));
    }
    let name_ok = |s: &str, extra: &[u8]| {
        (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || extra.contains(&b))
    };
    if !name_ok(&m.prefix, b"") {
        out.push(issue(
            "storage.rocketmq.prefix",
            "must be 1 to 32 ASCII letters, digits or `-`",
        ));
    }
    if !name_ok(&m.cluster, b"_") {
        out.push(issue(
            "storage.rocketmq.cluster",
            "must be 1 to 32 ASCII letters, digits, `-` or `_`",
        ));
    }
    if !name_ok(&m.defibus.cluster, b"_") {
        out.push(issue(
            "storage.rocketmq.defibus.cluster",
            "must be 1 to 32 ASCII letters, digits, `-` or `_`",
        ));
    }
    if m.request_timeout < Duration::from_millis(100) {
        out.push(issue(
            "storage.rocketmq.request_timeout",
            "must be at least 100ms",
        ));
    }
    if m.lock_renew < Duration::from_millis(100) {
        out.push(issue(
            "storage.rocketmq.lock_renew",
            "must be at least 100ms",
        ));
    }
    if !(1..=1024).contains(&m.pull_batch) {
        out.push(issue("storage.rocketmq.pull_batch", "must be 1 to 1024"));
    }
    if m.max_message_bytes == 0 {
        out.push(issue(
            "storage.rocketmq.max_message_bytes",
            "must be above 0",
        ));
    }

    // [delivery]
    let d = &c.delivery;
    if d.ack_timeout.is_zero() {
        out.push(issue("delivery.ack_timeout", "must be above 0"));
    }
    if d.max_attempts == 0 {
        out.push(issue("delivery.max_attempts", "must be at least 1"));
    }
    if d.backoff_initial > d.backoff_max {
        out.push(relation(
            "delivery.backoff_initial",
            "delivery.backoff_max",
            format!(
                "is {}; it must not exceed `delivery.backoff_max` ({})",
                fmt_dur(d.backoff_initial),
                fmt_dur(d.backoff_max)
            ),
        ));
    }
    if d.window == 0 {
        out.push(issue("delivery.window", "must be at least 1"));
    }
    if d.prefetch == 0 {
        out.push(issue("delivery.prefetch", "must be at least 1"));
    }
    if d.crash_lease <= d.ack_timeout {
        out.push(relation(
            "delivery.crash_lease",
            "delivery.ack_timeout",
            format!(
                "is {}; it must be longer than `delivery.ack_timeout` ({}), or the store would redeliver events the core still tracks",
                fmt_dur(d.crash_lease),
                fmt_dur(d.ack_timeout)
            ),
        ));
    }
    if d.dead_letter_suffix.is_empty() || d.dead_letter_suffix.chars().any(char::is_whitespace) {
        out.push(issue(
            "delivery.dead_letter_suffix",
            "must be non-empty and contain no whitespace",
        ));
    }
    if d.request_ttl.is_zero() {
        out.push(issue("delivery.request_ttl", "must be above 0"));
    }

    // [log]
    if let Err(why) = log::check_level_filter(&c.log.level) {
        out.push(issue("log.level", why));
    }

    // [shutdown]
    if c.shutdown.timeout.is_zero() {
        out.push(issue("shutdown.timeout", "must be above 0"));
    }

    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        for ok in [
            "mesh-1.example:10000",
            "10.0.0.1:1",
            "[::1]:10000",
            "localhost:65535",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":10000",
            "host:0",
            "host:99999",
            "::1:10000",
            "[zz]:1",
            "a b:1",
            "host:",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_have_no_issues() {
        assert!(check(&Config::default()).is_empty());
    }
}
