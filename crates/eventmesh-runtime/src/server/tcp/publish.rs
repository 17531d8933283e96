//! Publishing over TCP: `ASYNC_MESSAGE_TO_SERVER`, `BROADCAST_MESSAGE_TO_SERVER`,
//! `REQUEST_TO_SERVER` (request-reply with `ttl`) and `RESPONSE_TO_SERVER` (a SYNC subscriber's
//! reply). Each becomes one future that the connection runs alongside its other work (at most
//! `max_pending` at once) and whose [`Outcome`] it writes back.
//!
//! * Publishes are answered with their `*_ACK` once the store holds the event (code 0), or with
//!   the error's code (3 `tpsOverload` over a rate limit, 2 `aclFail`, else 1) and a `desc`. The
//!   ack echoes the published body, as the Java runtime does.
//! * A request waits for its reply up to its `ttl` property (milliseconds; else
//!   `delivery.request_ttl`) and is answered with `RESPONSE_TO_CLIENT` under the request's `seq`:
//!   the reply event in the requester's protocol type, or code 1 and a `desc` (timeout
//!   included; the Java runtime sent nothing and left the client to time out).
//! * A reply is not answered (as in Java); failures are logged.

use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::{CloudEvent, EventMeshError, ExtensionValue, Topic};
use eventmesh_protocol::convert::{KeyPolicy, event_from_package};
use eventmesh_protocol::tcp::{Command, Header, OpStatus, Package, ProtocolType};
use tracing::debug;

use super::push::event_frame;
use crate::core::{Core, EXT_CORRELATION_ID, EXT_EXPIRES_AT, EXT_REPLY_TO, SessionHandle};

/// The property carrying a request's time-to-live in milliseconds.
pub(super) const TTL_PROPERTY: &str = "ttl";

/// What a finished operation asks the connection to send.
pub(super) enum Outcome {
    /// Send this frame.
    Reply(Package),
    /// Send nothing.
    Nothing,
}

/// A request pushed to this connection (`REQUEST_TO_CLIENT`), remembered so a reply that does
/// not echo the request's properties can still be matched (see [`reply`]).
#[derive(Clone, Debug)]
pub(super) struct PushedRequest {
    pub(super) seq: String,
    pub(super) reply_to: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) expires_at_ms: Option<i64>,
}

/// Maps a core error to the TCP status code (`OPStatus`).
pub(super) fn status_of(e: &EventMeshError) -> OpStatus {
    OpStatus::from_code(e.code.tcp_code()).unwrap_or(OpStatus::Fail)
}

/// The answer to `request` with a status and a description (no body).
pub(super) fn fail(request: &Header, status: OpStatus, desc: impl Into<String>) -> Package {
    Package::header_only(request.reply(status, Some(desc.into())))
}

/// The event a message command carries and the topic it goes to (its `subject`).
pub(super) fn event_and_topic(package: &Package) -> Result<(CloudEvent, Topic), String> {
    let event = event_from_package(package, KeyPolicy::Normalize).map_err(|e| e.to_string())?;
    let subject = event
        .subject
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            "the event names no topic (EventMeshMessage `topic`, CloudEvent `subject`)".to_owned()
        })?;
    let topic = Topic::new(subject).map_err(|e| format!("invalid topic `{subject}`: {e}"))?;
    Ok((event, topic))
}

/// `ASYNC_MESSAGE_TO_SERVER` / `BROADCAST_MESSAGE_TO_SERVER`.
pub(super) async fn publish(
    core: Arc<Core>,
    session: Arc<SessionHandle>,
    package: Package,
) -> Outcome {
    {
        let header = &package.header;
        let (event, topic) = match event_and_topic(&package) {
            Ok(x) => x,
            Err(desc) => return Outcome::Reply(fail(header, OpStatus::Fail, desc)),
        };
        let reply = match core.publish(&session, &topic, vec![event]).await {
            Ok(_) => header.reply(OpStatus::Success, Some(OpStatus::Success.desc().to_owned())),
            Err(e) => header.reply(status_of(&e), Some(e.message)),
        };
        Outcome::Reply(Package::new(reply, package.body))
    }
}

/// The request's `ttl` in milliseconds, when it gives a positive one.
fn ttl_of(event: &CloudEvent) -> Option<Duration> {
    let ms = match event.extension(TTL_PROPERTY)? {
        ExtensionValue::Integer(i) => u64::try_from(*i).ok()?,
        ExtensionValue::String(s) => s.trim().parse::<u64>().ok()?,
        ExtensionValue::Boolean(_) => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// `REQUEST_TO_SERVER`: answered by `RESPONSE_TO_CLIENT` with the request's seq.
pub(super) async fn request(
    core: Arc<Core>,
    session: Arc<SessionHandle>,
    package: Package,
    fallback: ProtocolType,
) -> Outcome {
    {
        let header = &package.header;
        let (event, topic) = match event_and_topic(&package) {
            Ok(x) => x,
            Err(desc) => return Outcome::Reply(fail(header, OpStatus::Fail, desc)),
        };
        let protocol = match header.protocol_type() {
            Some(Ok(p)) => p,
            _ => fallback,
        };
        let ttl = ttl_of(&event);
        match core.request(&session, &topic, event, ttl).await {
            Ok(reply) => {
                let h = Header::new(Command::ResponseToClient, header.seq.clone());
                match event_frame(h, &reply, protocol) {
                    Ok(p) => Outcome::Reply(p),
                    Err(e) => Outcome::Reply(fail(
                        header,
                        OpStatus::Fail,
                        format!("the reply cannot be encoded: {e}"),
                    )),
                }
            }
            Err(e) => Outcome::Reply(fail(header, status_of(&e), e.message)),
        }
    }
}

/// Completes a reply that does not echo `replyto` / `correlationid` with the request it answers.
pub(super) fn complete_reply(event: &mut CloudEvent, request: &PushedRequest) {
    let ext = &mut event.extensions;
    if let Some(r) = &request.reply_to {
        ext.entry(EXT_REPLY_TO.to_owned())
            .or_insert_with(|| ExtensionValue::String(r.clone()));
    }
    if let Some(c) = &request.correlation_id {
        ext.insert(
            EXT_CORRELATION_ID.to_owned(),
            ExtensionValue::String(c.clone()),
        );
    }
    if let Some(x) = request.expires_at_ms {
        ext.entry(EXT_EXPIRES_AT.to_owned())
            .or_insert_with(|| ExtensionValue::String(x.to_string()));
    }
}

/// `RESPONSE_TO_SERVER`: hands the reply to the core. Not answered.
pub(super) async fn reply(
    core: Arc<Core>,
    session: Arc<SessionHandle>,
    event: CloudEvent,
) -> Outcome {
    {
        let correlation_id = event
            .extension_str(EXT_CORRELATION_ID)
            .unwrap_or_default()
            .to_owned();
        if let Err(error) = core.reply(&session, event).await {
            debug!(message = "Reply refused.", %error, correlation_id = %correlation_id);
        }
        Outcome::Nothing
    }
}
