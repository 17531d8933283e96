//! `[server.http]`: the EventMesh HTTP protocol and CloudEvents over HTTP, with its TLS, auth and
//! webhook-push subtables.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server.http]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Whether the HTTP listener is started.
    pub enabled: bool,
    /// The socket address (`IP:PORT`) it listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (default 16 MiB). Bodies over it get 413.
    /// Values below `limits.max_event_bytes` are raised to it plus 64 KiB.
    pub max_body_bytes: u64,
    /// Events of one batch publish at most (codes 102, `/eventmesh/publish/batch`; default 100).
    pub max_batch_events: u32,
    /// The value of the `eventmeshcluster` response and push header.
    pub cluster: String,
    /// The value of the `eventmeshenv` response and push header.
    pub env: String,
    /// The value of the `eventmeshidc` response and push header.
    pub idc: String,
    /// `[server.http.tls]`.
    pub tls: HttpTlsConfig,
    /// `[server.http.auth]`.
    pub auth: HttpAuthConfig,
    /// `[server.http.webhook]`.
    pub webhook: WebhookConfig,
    /// `[server.http.bridge]`.
    pub bridge: HttpBridgeConfig,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 10105)),
            max_body_bytes: 16 * 1024 * 1024,
            max_batch_events: 100,
            cluster: "DefaultCluster".to_owned(),
            env: "PRD".to_owned(),
            idc: "DEFAULT".to_owned(),
            tls: HttpTlsConfig::default(),
            auth: HttpAuthConfig::default(),
            webhook: WebhookConfig::default(),
            bridge: HttpBridgeConfig::default(),
        }
    }
}

/// `[server.http.bridge]`: mesh-to-mesh bridging (`/eventmesh/subscribe/remote`): this mesh
/// subscribes on a remote mesh, which pushes the events to this node's
/// `/eventmesh/bridge/publish`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpBridgeConfig {
    /// The URL remote meshes push bridged events to. `""`: `http://` + the host of
    /// `node.advertise` (127.0.0.1 when unset) + the HTTP port + `/eventmesh/bridge/publish`.
    pub callback_url: String,
    /// The consumer group this mesh subscribes with on remote meshes; every node of one cluster
    /// should use the same, so that each event is bridged once. `""`: `server.http.cluster`
    /// followed by `-bridge`.
    pub group: String,
}

/// `[server.http.tls]`: HTTPS with rustls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Whether HTTPS is served.
    pub enabled: bool,
    /// `""`: the HTTP listener itself speaks TLS. An `IP:PORT`: a second listener speaks TLS
    /// there and `server.http.listen` stays plain HTTP.
    pub listen: String,
    /// PEM file with the certificate chain (leaf first).
    pub cert_file: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// How HTTP clients authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuthMode {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Basic` with `username` and `password`.
    Basic,
    /// `Authorization: Bearer` with `token`.
    Bearer,
}

/// `[server.http.auth]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuthConfig {
    /// `"none"`, `"basic"` or `"bearer"`.
    pub mode: HttpAuthMode,
    /// The user name of `basic`.
    pub username: String,
    /// The password of `basic` (masked in logs).
    pub password: String,
    /// The token of `bearer` (masked in logs).
    pub token: String,
}

/// `[server.http.webhook]`: pushes to subscribers' URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// How long one push may take (connect, send, answer) before it counts as failed (default
    /// 10 s). Lowered to 80% of `delivery.ack_timeout` when longer, so a slow push is never
    /// redelivered while it runs.
    #[serde(with = "humantime_serde")]
    pub push_timeout: Duration,
    /// Pushes of one subscription (per URL for BROADCASTING) in flight at once, when the
    /// subscriber asks for nothing else; also the most it may ask for (default 100).
    pub max_in_flight: u32,
    /// Pushes per second of one subscription (per URL for BROADCASTING), when the subscriber asks
    /// for nothing else. 0 = unlimited.
    pub push_rate: u32,
    /// A subscriber URL with no heartbeat (code 203) or subscribe for this long is removed
    /// (default 5 min). "0s" = never.
    #[serde(with = "humantime_serde")]
    pub url_ttl: Duration,
    /// Consecutive failed pushes after which a URL of a CLUSTERING subscription is skipped
    /// (while its group has a healthy one) for `unhealthy_for` (default 3).
    pub unhealthy_after: u32,
    /// How long a failing URL is skipped (default 10 s).
    #[serde(with = "humantime_serde")]
    pub unhealthy_for: Duration,
    /// Networks (CIDR) no push may connect to, checked on the resolved address of every
    /// connection. Default: link-local and cloud metadata addresses.
    pub deny_networks: Vec<String>,
    /// PEM file of extra CA certificates trusted for `https` subscriber URLs, besides the
    /// system's roots. `""`: none.
    pub ca_file: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            push_timeout: Duration::from_secs(10),
            max_in_flight: 100,
            push_rate: 0,
            url_ttl: Duration::from_secs(300),
            unhealthy_after: 3,
            unhealthy_for: Duration::from_secs(10),
            deny_networks: default_deny_networks(),
            ca_file: String::new(),
        }
    }
}

/// Link-local (IPv4 and IPv6, which hold the AWS/GCP/Azure metadata address 169.254.169.254),
/// Alibaba's metadata address and AWS's IPv6 metadata address.
pub fn default_deny_networks() -> Vec<String> {
    [
        "169.254.0.0/16",
        "fe80::/10",
        "100.100.100.200/32",
        "fd00:ec2::254/128",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Parses `IP/PREFIX` (or a bare IP, a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let s = s.trim();
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("`{s}` is not IP/PREFIX: `{ip}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{s}` is not IP/PREFIX: the prefix must be 0 to {max}"))?,
    };
    Ok((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse() {
        assert_eq!(
            parse_cidr("169.254.0.0/16"),
            Ok(("169.254.0.0".parse().unwrap(), 16))
        );
        assert_eq!(parse_cidr("::1"), Ok(("::1".parse().unwrap(), 128)));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope/8").is_err());
        for n in default_deny_networks() {
            parse_cidr(&n).unwrap();
        }
    }
}
