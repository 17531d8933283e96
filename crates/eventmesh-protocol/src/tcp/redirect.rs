//! The `REDIRECT_TO_CLIENT` body (`RedirectInfo.java`).

use serde::{Deserialize, Serialize};

use crate::json::{lenient_i32, lenient_opt_string};

/// Where the server tells a client to reconnect: `{"ip":"10.0.0.2","port":10000}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectInfo {
    /// The runtime's address.
    #[serde(
        default,
        deserialize_with = "lenient_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<String>,
    /// The runtime's TCP port.
    #[serde(default, deserialize_with = "lenient_i32")]
    pub port: i32,
}

impl RedirectInfo {
    /// A redirect to `ip:port`.
    #[must_use]
    pub fn new(ip: impl Into<String>, port: u16) -> Self {
        RedirectInfo {
            ip: Some(ip.into()),
            port: i32::from(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shape() {
        let r = RedirectInfo::new("10.0.0.2", 10000);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"ip":"10.0.0.2","port":10000}"#);
        assert_eq!(serde_json::from_str::<RedirectInfo>(&json).unwrap(), r);
    }
}
