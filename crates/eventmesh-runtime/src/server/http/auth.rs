//! Optional HTTP authentication: `Authorization: Basic` (user name and password) or
//! `Authorization: Bearer` (a token), compared in constant time against `[server.http.auth]`.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventmesh_config::server::http::{HttpAuthConfig, HttpAuthMode};

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No `Authorization` header, or one of the wrong scheme.
    #[error("missing `Authorization: {0}` credentials")]
    Missing(&'static str),
    /// The credentials do not match.
    #[error("invalid credentials")]
    Invalid,
}

impl AuthError {
    /// The `WWW-Authenticate` challenge to answer with.
    pub(crate) fn challenge(mode: HttpAuthMode) -> &'static str {
        match mode {
            HttpAuthMode::Bearer => "Bearer realm=\"eventmesh\"",
            _ => "Basic realm=\"eventmesh\"",
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the request's credentials against `config`.
pub(crate) fn check(config: &HttpAuthConfig, headers: &HeaderMap) -> Result<(), AuthError> {
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match config.mode {
        HttpAuthMode::None => Ok(()),
        HttpAuthMode::Basic => {
            let Some(encoded) = value.and_then(|v| strip_scheme(v, "basic")) else {
                return Err(AuthError::Missing("Basic"));
            };
            let decoded = STANDARD
                .decode(encoded.trim())
                .map_err(|_| AuthError::Invalid)?;
            let expected = format!("{}:{}", config.username, config.password);
            if ct_eq(&decoded, expected.as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::Invalid)
            }
        }
        HttpAuthMode::Bearer => {
            let Some(token) = value.and_then(|v| strip_scheme(v, "bearer")) else {
                return Err(AuthError::Missing("Bearer"));
            };
            if ct_eq(token.trim().as_bytes(), config.token.as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::Invalid)
            }
        }
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn basic_and_bearer() {
        let basic = HttpAuthConfig {
            mode: HttpAuthMode::Basic,
            username: "u".into(),
            password: "p".into(),
            token: String::new(),
        };
        let ok = format!("Basic {}", STANDARD.encode("u:p"));
        assert_eq!(check(&basic, &headers(&ok)), Ok(()));
        let bad = format!("basic {}", STANDARD.encode("u:x"));
        assert_eq!(check(&basic, &headers(&bad)), Err(AuthError::Invalid));
        assert_eq!(
            check(&basic, &HeaderMap::new()),
            Err(AuthError::Missing("Basic"))
        );
        let bearer = HttpAuthConfig {
            mode: HttpAuthMode::Bearer,
            token: "t0k".into(),
            ..HttpAuthConfig::default()
        };
        assert_eq!(check(&bearer, &headers("Bearer t0k")), Ok(()));
        assert_eq!(
            check(&bearer, &headers("Bearer nope")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            check(&bearer, &headers(&ok)),
            Err(AuthError::Missing("Bearer"))
        );
    }
}
