//! Events as RocketMQ messages: the body is the versioned
//! [`EventRecord`](eventmesh_core::EventRecord) encoding, the key is the mesh id, and, with the
//! DeFiBus option, the properties a DeFiBus broker reads (EventMesh reference, section 2.7).
//!
//! DeFiBus request-reply properties written when [`DefibusOptions::enabled`]:
//!
//! | property | value |
//! | --- | --- |
//! | `msgType` | `persistent` (a request: `request`; a reply: `reply`) |
//! | `TTL` | the event's `ttl` extension (ms), else the time left until its `expiresat`, else `default_ttl` |
//! | `REPLY_TO` | on a request (an event with `replyto`): the `replyto` value (the requesting node) |
//! | `RR_REQUEST_UNIQ_ID` | on a request or a reply: its `correlationid` |
//! | `CLUSTER` | on a request: the DeFiBus cluster, so the reply goes to `<cluster>-rr-reply-topic` |
//!
//! **Untested against a DeFiBus broker**: none was available. A RocketMQ broker ignores these
//! properties.

use bytes::Bytes;
use eventmesh_core::EventRecord;
use rocketmq_model::common::message::message_property::MessagePropertyKey;
use rocketmq_model::common::message::message_single::Message;

use crate::error::RocketError;
use crate::options::DefibusOptions;

const EXT_REPLY_TO: &str = "replyto";
const EXT_CORRELATION_ID: &str = "correlationid";
const EXT_EXPIRES_AT: &str = "expiresat";
const EXT_TTL: &str = "ttl";

/// The DeFiBus properties of an event (empty unless the option is on).
pub(crate) fn defibus_properties(
    record: &EventRecord,
    opts: &DefibusOptions,
    now_ms: i64,
) -> Vec<(&'static str, String)> {
    if !opts.enabled {
        return Vec::new();
    }
    let ext =
        |name: &str| -> Option<String> { record.event.extension(name).map(ToString::to_string) };
    let reply_to = ext(EXT_REPLY_TO);
    let correlation = ext(EXT_CORRELATION_ID);
    let ttl = ext(EXT_TTL)
        .and_then(|t| t.parse::<i64>().ok())
        .or_else(|| {
            ext(EXT_EXPIRES_AT)
                .and_then(|e| e.parse::<i64>().ok())
                .map(|e| (e - now_ms).max(0))
        })
        .unwrap_or_else(|| i64::try_from(opts.default_ttl.as_millis()).unwrap_or(i64::MAX));
    let mut props = vec![("TTL", ttl.to_string())];
    match (&reply_to, &correlation) {
        (Some(to), Some(id)) => {
            props.push(("msgType", "request".to_owned()));
            props.push(("REPLY_TO", to.clone()));
            props.push(("RR_REQUEST_UNIQ_ID", id.clone()));
            props.push(("CLUSTER", opts.cluster.clone()));
        }
        (None, Some(id)) => {
            props.push(("msgType", "reply".to_owned()));
            props.push(("RR_REQUEST_UNIQ_ID", id.clone()));
        }
        _ => props.push(("msgType", "persistent".to_owned())),
    }
    props
}

/// The message carrying `record` on the RocketMQ topic `topic`.
pub(crate) fn to_message(
    topic: &str,
    record: &EventRecord,
    body: Bytes,
    defibus: &DefibusOptions,
    now_ms: i64,
) -> Result<Message, RocketError> {
    let mut b = Message::builder()
        .topic(topic)
        .body(body)
        .keys(vec![record.id.to_string()]);
    for (key, value) in defibus_properties(record, defibus, now_ms) {
        b = match key {
            "TTL" => b.property(MessagePropertyKey::MessageTtl, value),
            "CLUSTER" => b.property(MessagePropertyKey::Cluster, value),
            _ => b
                .raw_property(key, value)
                .map_err(|e| RocketError::Config(format!("message property {key}: {e}")))?,
        };
    }
    b.build()
        .map_err(|e| RocketError::Config(format!("building a message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::{CloudEvent, ExtensionValue, Topic};

    fn record() -> EventRecord {
        EventRecord::new(
            Topic::new("t").expect("topic"),
            CloudEvent::new("1", "/s", "k"),
        )
    }

    #[test]
    fn no_properties_without_the_option() {
        assert!(defibus_properties(&record(), &DefibusOptions::default(), 0).is_empty());
    }

    #[test]
    fn requests_replies_and_plain_events() {
        let opts = DefibusOptions {
            enabled: true,
            ..DefibusOptions::default()
        };
        let plain = defibus_properties(&record(), &opts, 0);
        assert!(plain.contains(&("msgType", "persistent".to_owned())));
        assert!(plain.contains(&("TTL", "14400000".to_owned())));

        let mut req = record();
        req.event = req
            .event
            .with_extension("replyto", ExtensionValue::String("node-1".into()))
            .with_extension("correlationid", ExtensionValue::String("c-9".into()))
            .with_extension("expiresat", ExtensionValue::Integer(5_000));
        let p = defibus_properties(&req, &opts, 2_000);
        for want in [
            ("msgType", "request"),
            ("REPLY_TO", "node-1"),
            ("RR_REQUEST_UNIQ_ID", "c-9"),
            ("CLUSTER", "DefaultCluster"),
            ("TTL", "3000"),
        ] {
            assert!(
                p.contains(&(want.0, want.1.to_owned())),
                "{want:?} in {p:?}"
            );
        }

        let mut reply = record();
        reply.event = reply
            .event
            .with_extension("correlationid", ExtensionValue::String("c-9".into()));
        let p = defibus_properties(&reply, &opts, 0);
        assert!(p.contains(&("msgType", "reply".to_owned())));
        assert!(!p.iter().any(|(k, _)| *k == "REPLY_TO"));
        let m = to_message("T", &reply, Bytes::from_static(b"x"), &opts, 0);
        assert!(m.is_ok());
    }
}
