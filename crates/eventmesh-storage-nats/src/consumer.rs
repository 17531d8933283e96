//! Pulling from a durable consumer, and the ack tokens of what was pulled.
//!
//! A fetch is made of explicit pull requests on `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`,
//! each on its own inbox, so that no request outlives the fetch that made it:
//!
//! 1. `{batch: max, no_wait: true}`: what is available now, at once;
//! 2. only when that was nothing and the caller may wait: `{batch: 1, expires: wait}`, which ends
//!    with the first event (or at the deadline);
//! 3. after such an event: `{batch: max - 1, no_wait: true}` for what arrived with it.
//!
//! A request that asked for more than the server had is closed by a `404`/`408` status, so a
//! fetch never leaves a request behind that could take events nobody reads (they would come back
//! only after the consumer's `AckWait`).

use std::time::Duration;

use async_nats::{Client, StatusCode};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use eventmesh_storage::{AckToken, StorageError};

use crate::error::NatsError;

/// The first byte of every token this store issues, then a version byte.
const TOKEN_MAGIC: [u8; 2] = [0xE7, 1];

/// One message pulled from a consumer.
pub(crate) struct Pulled {
    /// The `$JS.ACK.…` subject: where acks, naks and progress go.
    pub(crate) reply: String,
    pub(crate) ack: AckSubject,
    pub(crate) payload: Bytes,
}

/// How a pull request ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PullEnd {
    /// Batch full, or closed by the server (no more events, request expired).
    Done,
    /// Nobody serves the consumer's pull subject: the consumer (or stream) does not exist.
    NoConsumer,
    /// The consumer was deleted while the request waited (a seek or an unsubscribe).
    ConsumerDeleted,
    /// No answer from the server by the deadline (connection lost?).
    TimedOut,
}

/// What a `$JS.ACK.` subject says about one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AckSubject {
    pub(crate) stream: String,
    pub(crate) consumer: String,
    pub(crate) delivered: u64,
    pub(crate) stream_seq: u64,
}

/// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` and the newer
/// form with `<domain>.<account hash>.` after `$JS.ACK.` (and an optional trailing token).
pub(crate) fn parse_ack_subject(reply: &str) -> Option<AckSubject> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let t = match tokens.len() {
        7 => &tokens[..],
        9 | 10 => &tokens[2..],
        _ => return None,
    };
    let num = |s: &str| s.parse::<u64>().ok();
    // The timestamp and pending count must be numbers too.
    num(t[4])?;
    t[5].parse::<i64>().ok()?;
    num(t[6])?;
    Some(AckSubject {
        stream: t[0].to_owned(),
        consumer: t[1].to_owned(),
        delivered: num(t[2])?,
        stream_seq: num(t[3])?,
    })
}

/// The token of a delivery: a magic prefix and the ack subject.
pub(crate) fn token_for(reply: &str) -> AckToken {
    let mut b = BytesMut::with_capacity(TOKEN_MAGIC.len() + reply.len());
    b.put_slice(&TOKEN_MAGIC);
    b.put_slice(reply.as_bytes());
    AckToken(b.freeze())
}

/// Reads a token back; it must have been issued for this stream and consumer.
pub(crate) fn read_token<'a>(
    token: &'a AckToken,
    stream: &str,
    consumer: &str,
) -> Result<&'a str, StorageError> {
    let bad = |why: &str| StorageError::InvalidToken(why.to_owned());
    let rest = token
        .0
        .strip_prefix(&TOKEN_MAGIC[..])
        .ok_or_else(|| bad("not a token of the NATS store"))?;
    let reply = std::str::from_utf8(rest).map_err(|_| bad("not a token of the NATS store"))?;
    let ack = parse_ack_subject(reply).ok_or_else(|| bad("not a token of the NATS store"))?;
    if ack.stream != stream || ack.consumer != consumer {
        return Err(StorageError::InvalidToken(format!(
            "the token was issued for consumer {}/{}, not for this cursor ({stream}/{consumer})",
            ack.stream, ack.consumer
        )));
    }
    Ok(reply)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One pull request: up to `batch` messages, waiting up to `expires` (`None`: no wait). Gives up
/// `grace` after the request should have ended.
pub(crate) async fn pull(
    client: &Client,
    stream: &str,
    consumer: &str,
    batch: usize,
    expires: Option<Duration>,
    grace: Duration,
) -> Result<(Vec<Pulled>, PullEnd), NatsError> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| NatsError::Unavailable(format!("cannot subscribe a pull inbox: {e}")))?;
    let body = match expires {
        Some(w) => json!({ "batch": batch, "expires": nanos(w) }),
        None => json!({ "batch": batch, "no_wait": true }),
    };
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            Bytes::from(body.to_string()),
        )
        .await
        .map_err(|e| NatsError::Unavailable(format!("cannot send a pull request: {e}")))?;
    let deadline = Instant::now() + expires.unwrap_or(Duration::ZERO) + grace;
    let mut out = Vec::new();
    let end = loop {
        let msg = match tokio::time::timeout_at(deadline, sub.next()).await {
            Err(_) => break PullEnd::TimedOut,
            Ok(None) => break PullEnd::TimedOut,
            Ok(Some(m)) => m,
        };
        match msg.status {
            None => {
                let reply = msg
                    .reply
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let Some(ack) = parse_ack_subject(&reply) else {
                    return Err(NatsError::Protocol {
                        op: format!("pull from {stream}/{consumer}"),
                        reason: format!(
                            "a message came without a JetStream ack subject ({reply:?})"
                        ),
                    });
                };
                out.push(Pulled {
                    reply,
                    ack,
                    payload: msg.payload,
                });
                if out.len() >= batch {
                    break PullEnd::Done;
                }
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {}
            Some(StatusCode::NOT_FOUND) | Some(StatusCode::TIMEOUT) => break PullEnd::Done,
            Some(StatusCode::NO_RESPONDERS) => break PullEnd::NoConsumer,
            Some(StatusCode::REQUEST_TERMINATED) => {
                let d = msg.description.unwrap_or_default();
                if d.to_ascii_lowercase().contains("deleted") {
                    break PullEnd::ConsumerDeleted;
                }
                if out.is_empty() && d.to_ascii_lowercase().contains("maxwaiting") {
                    return Err(NatsError::Unavailable(format!(
                        "consumer {stream}/{consumer} has too many waiting pull requests: {d}"
                    )));
                }
                break PullEnd::Done;
            }
            Some(other) => {
                return Err(NatsError::Protocol {
                    op: format!("pull from {stream}/{consumer}"),
                    reason: format!(
                        "status {} {}",
                        other.as_u16(),
                        msg.description.unwrap_or_default()
                    ),
                });
            }
        }
    };
    // Dropping the subscription unsubscribes the inbox.
    drop(sub);
    Ok((out, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_in_both_forms() {
        let old = "$JS.ACK.S.C.3.42.17.1700000000000000000.5";
        let a = parse_ack_subject(old).unwrap();
        assert_eq!((a.stream.as_str(), a.consumer.as_str()), ("S", "C"));
        assert_eq!((a.delivered, a.stream_seq), (3, 42));
        let new = "$JS.ACK._.ACCHASH.S.C.1.7.7.1700000000000000000.0.tok";
        let a = parse_ack_subject(new).unwrap();
        assert_eq!((a.stream.as_str(), a.delivered, a.stream_seq), ("S", 1, 7));
        for bad in [
            "",
            "$JS.ACK.S.C.x.1.1.1.1",
            "$JS.API.S.C.1.1.1.1.1",
            "$JS.ACK.S.C.1",
        ] {
            assert_eq!(parse_ack_subject(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_consumer() {
        let reply = "$JS.ACK.S.C.1.2.3.4.5";
        let t = token_for(reply);
        assert_eq!(read_token(&t, "S", "C").unwrap(), reply);
        assert!(matches!(
            read_token(&t, "S", "D"),
            Err(StorageError::InvalidToken(_))
        ));
        let junk = AckToken(Bytes::from_static(b"\xff\x00 junk"));
        assert!(matches!(
            read_token(&junk, "S", "C"),
            Err(StorageError::InvalidToken(_))
        ));
    }
}
