//! Core pushes to frames: the command by subscription (BROADCASTING →
//! `BROADCAST_MESSAGE_TO_CLIENT`, SYNC → `REQUEST_TO_CLIENT`, else `ASYNC_MESSAGE_TO_CLIENT`), a
//! server-global `seq`, and the body in the *subscriber's* protocol type: the `protocoltype` its
//! SUBSCRIBE (for that topic) or its HELLO named, else the publisher's (the event's
//! `protocoltype` extension), else `cloudevents`. An event whose data cannot be an
//! `eventmeshmessage` body (not UTF-8) goes as `cloudevents`.

use eventmesh_core::{CloudEvent, ExtensionValue, SubscriptionMode};
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::convert::event_package;
use eventmesh_protocol::tcp::{Command, Header, PROTOCOL_TYPE, Package, ProtocolType};

use crate::core::{Push, PushKind};

/// The command a push is sent with.
pub(super) fn command_of(push: &Push) -> Command {
    match (push.mode, &push.kind) {
        (SubscriptionMode::Broadcasting, _) => Command::BroadcastMessageToClient,
        (_, PushKind::Request { .. }) => Command::RequestToClient,
        (_, PushKind::Async) => Command::AsyncMessageToClient,
    }
}

/// The publisher's protocol type, from the event's `protocoltype` extension.
pub(super) fn publisher_protocol(event: &CloudEvent) -> Option<ProtocolType> {
    event
        .extension_str(PROTOCOL_TYPE)
        .and_then(ProtocolType::parse)
        .filter(|p| *p != ProtocolType::OpenMessage)
}

/// Encodes `event` under `header` in `protocol`, falling back to `cloudevents` when the event
/// cannot be an `eventmeshmessage`. The event's `protocoltype` extension is set to the type used.
pub(super) fn event_frame(
    header: Header,
    event: &CloudEvent,
    protocol: ProtocolType,
) -> Result<Package, ProtocolError> {
    let encode = |protocol: ProtocolType| {
        match event.extension_str(PROTOCOL_TYPE) {
            // The common case: no copy of the event.
            None => event_package(header.clone(), event, protocol),
            Some(p) if p == protocol.as_str() => event_package(header.clone(), event, protocol),
            Some(_) => {
                let mut event = event.clone();
                event.extensions.insert(
                    PROTOCOL_TYPE.to_owned(),
                    ExtensionValue::String(protocol.as_str().to_owned()),
                );
                event_package(header.clone(), &event, protocol)
            }
        }
    };
    match encode(protocol) {
        Err(ProtocolError::InvalidEvent(_)) if protocol != ProtocolType::CloudEvents => {
            encode(ProtocolType::CloudEvents)
        }
        other => other,
    }
}

/// The frame of `push` with server seq `seq`, in the subscriber's `chosen` protocol type when it
/// named one.
pub(super) fn push_frame(
    push: &Push,
    seq: String,
    chosen: Option<ProtocolType>,
) -> Result<Package, ProtocolError> {
    let event = &push.record.event;
    let protocol = chosen
        .or_else(|| publisher_protocol(event))
        .unwrap_or(ProtocolType::CloudEvents);
    event_frame(Header::new(command_of(push), Some(seq)), event, protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_data_falls_back_to_cloudevents() {
        let e = CloudEvent::new("1", "/", "t").with_data("application/octet-stream", vec![0xff]);
        let p = event_frame(
            Header::new(Command::AsyncMessageToClient, Some("1".into())),
            &e,
            ProtocolType::EventMeshMessage,
        )
        .unwrap();
        assert_eq!(
            p.header.property_string(PROTOCOL_TYPE).as_deref(),
            Some("cloudevents")
        );
    }

    #[test]
    fn the_protocoltype_extension_follows_the_push() {
        let mut e = CloudEvent::new("1", "/", "t").with_data("text/plain", "hi");
        e.extensions.insert(
            PROTOCOL_TYPE.into(),
            ExtensionValue::String("eventmeshmessage".into()),
        );
        assert_eq!(publisher_protocol(&e), Some(ProtocolType::EventMeshMessage));
        let p = event_frame(
            Header::new(Command::AsyncMessageToClient, Some("1".into())),
            &e,
            ProtocolType::CloudEvents,
        )
        .unwrap();
        let body = p.raw_body().unwrap();
        let text = std::str::from_utf8(body).unwrap();
        assert!(text.contains(r#""protocoltype":"cloudevents""#), "{text}");
    }
}
