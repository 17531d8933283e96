//! The one table that decides what a subscriber's answer means.
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx, body `retCode` 0 (REMOTE_OK) or 1 (OK), or no `retCode` (empty or non-JSON body) | done: ack |
//! | 2xx, `retCode` 2 (RETRY) or 5 (NOLISTEN) | retry after the backoff |
//! | 2xx, `retCode` 3 (FAIL) | dead-letter now |
//! | 429 | retry after `Retry-After` (seconds, RFC 9110), else the backoff |
//! | 410, 415, any other 4xx | dead-letter now |
//! | 5xx, 1xx, 3xx | retry after the backoff |
//! | no answer (connection refused or reset, timeout, denied address) | retry after the backoff |
//!
//! Retries go through the core (`nack_after`): it counts the attempt and dead-letters the event
//! once it has used `delivery.max_attempts`. An event is committed only when done or written to
//! the dead-letter topic.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::RETRY_AFTER;
use serde_json::Value;

use super::client::Answer;

/// What to do with a delivery after a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The subscriber took it: ack.
    Done,
    /// Try again, after this delay when the subscriber said (else the backoff).
    Retry(Option<Duration>),
    /// Retrying cannot help: dead-letter it.
    DeadLetter,
}

/// The `retCode` of a 2xx answer body, when it has one.
fn ret_code(body: &[u8]) -> Option<i64> {
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(m) => {
            let v = m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retcode"))
                .map(|(_, v)| v)?;
            match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `Retry-After` in delta-seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Classifies an answer, with a short reason for logs and metrics.
pub(crate) fn classify(a: &Answer) -> (Outcome, &'static str) {
    let status = a.status.as_u16();
    match status {
        200..=299 => match ret_code(&a.body) {
            None | Some(0) | Some(1) => (Outcome::Done, "ok"),
            Some(2) => (Outcome::Retry(None), "retcode_retry"),
            Some(5) => (Outcome::Retry(None), "retcode_nolisten"),
            Some(3) => (Outcome::DeadLetter, "retcode_fail"),
            Some(_) => (Outcome::Done, "ok"),
        },
        429 => (Outcome::Retry(retry_after(&a.headers)), "too_many_requests"),
        400..=499 => (Outcome::DeadLetter, "client_error"),
        500..=599 => (Outcome::Retry(None), "server_error"),
        _ => (Outcome::Retry(None), "unexpected_status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use bytes::Bytes;

    fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_table() {
        let o = |s, b: &str, h: &[(&str, &str)]| classify(&answer(s, b, h)).0;
        assert_eq!(o(200, "", &[]), Outcome::Done);
        assert_eq!(o(204, "", &[]), Outcome::Done);
        assert_eq!(o(200, "not json", &[]), Outcome::Done);
        assert_eq!(o(200, r#"{"retCode":0}"#, &[]), Outcome::Done);
        assert_eq!(o(202, r#"{"retcode":"1"}"#, &[]), Outcome::Done);
        assert_eq!(o(200, r#"{"retCode":2}"#, &[]), Outcome::Retry(None));
        assert_eq!(o(200, r#"{"retCode":5}"#, &[]), Outcome::Retry(None));
        assert_eq!(o(200, r#"{"retCode":3}"#, &[]), Outcome::DeadLetter);
        assert_eq!(
            o(429, "", &[("retry-after", "2")]),
            Outcome::Retry(Some(Duration::from_secs(2)))
        );
        assert_eq!(o(429, "", &[]), Outcome::Retry(None));
        assert_eq!(o(410, "", &[]), Outcome::DeadLetter);
        assert_eq!(o(415, "", &[]), Outcome::DeadLetter);
        assert_eq!(o(404, "", &[]), Outcome::DeadLetter);
        assert_eq!(o(500, "", &[]), Outcome::Retry(None));
        assert_eq!(o(503, "", &[]), Outcome::Retry(None));
        assert_eq!(o(302, "", &[]), Outcome::Retry(None));
    }
}
