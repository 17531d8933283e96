//! The `HELLO_REQUEST` / `RECOMMEND_REQUEST` body (`UserAgent.java`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::json::{lenient_i32, lenient_opt_string};

/// What a client says about itself in `HELLO_REQUEST` and `RECOMMEND_REQUEST`.
///
/// Fields are written in the Java class's order, `null` ones left out; `pid`, `port` and `unack`
/// are always written (Java `int`s). On input numbers may arrive as strings, strings as numbers,
/// and unknown fields are ignored. The fields of older clients are kept: `dcn` (v1.0),
/// `producerGroup` / `consumerGroup` (v1.2–v1.3); [`UserAgent::effective_group`] resolves them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAgent {
    /// Environment, e.g. `"P"`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub env: Option<String>,
    /// Subsystem (application) id.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub subsystem: Option<String>,
    /// Program path.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub path: Option<String>,
    /// Process id.
    #[serde(default, deserialize_with = "lenient_i32")]
    pub pid: i32,
    /// Client host.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<String>,
    /// Client port.
    #[serde(default, deserialize_with = "lenient_i32")]
    pub port: i32,
    /// Client version; the server requires it.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    /// User name.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub username: Option<String>,
    /// Password (never shown by `Debug`).
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<String>,
    /// Access token, v1.9 and later (never shown by `Debug`).
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<String>,
    /// Data centre.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub idc: Option<String>,
    /// Client group (v1.4 and later); must not be blank.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub group: Option<String>,
    /// `"pub"` or `"sub"` (see [`Purpose`]).
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub purpose: Option<String>,
    /// The client's un-acked push window; 0 means "use the server's".
    #[serde(default, deserialize_with = "lenient_i32")]
    pub unack: i32,
    /// v1.0 only: the DCN; the v1.0 group was `subsystem-dcn`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub dcn: Option<String>,
    /// v1.2–v1.3 only: the producer group.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub producer_group: Option<String>,
    /// v1.2–v1.3 only: the consumer group.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub consumer_group: Option<String>,
}

/// What a client connects for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `"pub"`: publishes only.
    Pub,
    /// `"sub"`: subscribes (and may publish); only these may send `LISTEN_REQUEST`.
    Sub,
}

impl Purpose {
    /// The wire value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Purpose::Pub => "pub",
            Purpose::Sub => "sub",
        }
    }
}

impl UserAgent {
    /// The parsed `purpose`, if it is `pub` or `sub`.
    #[must_use]
    pub fn purpose(&self) -> Option<Purpose> {
        match self.purpose.as_deref() {
            Some("pub") => Some(Purpose::Pub),
            Some("sub") => Some(Purpose::Sub),
            _ => None,
        }
    }

    /// The client's group, whichever client generation sent it: `group` (v1.4+), else the
    /// consumer or producer group by purpose (v1.2–v1.3), else `subsystem-dcn` (v1.0).
    /// Blank values count as absent.
    #[must_use]
    pub fn effective_group(&self) -> Option<String> {
        let nonblank = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if let Some(g) = nonblank(&self.group) {
            return Some(g);
        }
        let (first, second) = if self.purpose() == Some(Purpose::Pub) {
            (&self.producer_group, &self.consumer_group)
        } else {
            (&self.consumer_group, &self.producer_group)
        };
        if let Some(g) = nonblank(first).or_else(|| nonblank(second)) {
            return Some(g);
        }
        match (nonblank(&self.subsystem), nonblank(&self.dcn)) {
            (Some(sys), Some(dcn)) => Some(format!("{sys}-{dcn}")),
            _ => None,
        }
    }
}

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("UserAgent")
            .field("env", &self.env)
            .field("subsystem", &self.subsystem)
            .field("path", &self.path)
            .field("pid", &self.pid)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .field("idc", &self.idc)
            .field("group", &self.group)
            .field("purpose", &self.purpose)
            .field("unack", &self.unack)
            .field("dcn", &self.dcn)
            .field("producer_group", &self.producer_group)
            .field("consumer_group", &self.consumer_group)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = r#"{"env":"P","subsystem":"5023","path":"/data/app/x","pid":32893,"host":"127.0.0.1","port":8362,"version":"2.0.11","username":"u","password":"p","idc":"FT","group":"EventmeshTest-consumerGroup","purpose":"sub","unack":0}"#;

    #[test]
    fn reference_example_round_trips_byte_for_byte() {
        let ua: UserAgent = serde_json::from_str(REFERENCE).unwrap();
        assert_eq!(ua.pid, 32893);
        assert_eq!(ua.purpose(), Some(Purpose::Sub));
        assert_eq!(
            ua.effective_group().as_deref(),
            Some("EventmeshTest-consumerGroup")
        );
        assert_eq!(serde_json::to_string(&ua).unwrap(), REFERENCE);
    }

    #[test]
    fn old_generations_resolve_a_group() {
        let v12: UserAgent = serde_json::from_str(
            r#"{"purpose":"pub","producerGroup":"pg","consumerGroup":"cg","pid":"7"}"#,
        )
        .unwrap();
        assert_eq!(v12.effective_group().as_deref(), Some("pg"));
        assert_eq!(v12.pid, 7);
        let v10: UserAgent =
            serde_json::from_str(r#"{"subsystem":"5023","dcn":"AC0","group":" "}"#).unwrap();
        assert_eq!(v10.effective_group().as_deref(), Some("5023-AC0"));
    }

    #[test]
    fn debug_hides_secrets() {
        let ua: UserAgent = serde_json::from_str(REFERENCE).unwrap();
        let s = format!("{ua:?}");
        assert!(!s.contains("\"p\""));
        assert!(s.contains("***"));
    }
}
