//! Publishing: async publish, broadcast publish and request-reply.

use std::time::Duration;

use eventmesh_core::{CloudEvent, ExtensionValue, Topic};
use eventmesh_protocol::convert;
use eventmesh_protocol::tcp::{Command as Wire, Header, Package};

use super::client::Client;
use super::session::event_of;
use crate::config::Protocol;
use crate::error::Error;

/// The event extension carrying a request's time-to-live in milliseconds.
pub const TTL_EXTENSION: &str = "ttl";

/// The message package for `event` on `topic`: the topic becomes the event's `subject` (and
/// the `eventmeshmessage` topic).
pub(crate) fn message_package(
    command: Wire,
    topic: &str,
    mut event: CloudEvent,
    protocol: Protocol,
) -> Result<Package, Error> {
    Topic::new(topic).map_err(|e| Error::InvalidArgument(format!("topic {topic:?}: {e}")))?;
    event.subject = Some(topic.to_owned());
    event
        .validate()
        .map_err(|e| Error::InvalidArgument(format!("event: {e}")))?;
    Ok(convert::event_package(
        Header::new(command, None),
        &event,
        protocol.wire(),
    )?)
}

impl Client {
    /// Publishes `event` to `topic` and waits until the server has stored it
    /// (`ASYNC_MESSAGE_TO_SERVER`, answered by its ack). Subscribers of the topic get it by
    /// their subscription mode: one member per CLUSTERING group, every member of a
    /// BROADCASTING group.
    ///
    /// With the `eventmeshmessage` protocol the event's data must be UTF-8 and the server
    /// assigns the event id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad topic or event, [`Error::RateLimited`] or
    /// [`Error::Server`] if the server refuses, [`Error::Timeout`], [`Error::Disconnected`].
    pub async fn publish(&self, topic: &str, event: CloudEvent) -> Result<(), Error> {
        self.send_event(Wire::AsyncMessageToServer, topic, event)
            .await
    }

    /// Publishes `event` with `BROADCAST_MESSAGE_TO_SERVER`. The runtime delivers by the
    /// subscribers' modes either way; this is the command the Java SDK's `broadcast` sends.
    ///
    /// # Errors
    /// As [`Client::publish`].
    pub async fn broadcast(&self, topic: &str, event: CloudEvent) -> Result<(), Error> {
        self.send_event(Wire::BroadcastMessageToServer, topic, event)
            .await
    }

    async fn send_event(&self, command: Wire, topic: &str, event: CloudEvent) -> Result<(), Error> {
        let package = message_package(command, topic, event, self.config().protocol)?;
        self.request_package(package, self.config().request_timeout)
            .await
            .map(drop)
    }

    /// Sends `event` to `topic` as a request (`REQUEST_TO_SERVER`) and waits up to `timeout`
    /// for the reply of a SYNC subscriber, which is returned. The request carries
    /// `ttl` = `timeout` in milliseconds, so the runtime gives up at the same time.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no reply comes in time, [`Error::Server`] if the server answers
    /// with an error (for example no reply within the ttl), and as [`Client::publish`].
    pub async fn request(
        &self,
        topic: &str,
        event: CloudEvent,
        timeout: Duration,
    ) -> Result<CloudEvent, Error> {
        if timeout.is_zero() {
            return Err(Error::InvalidArgument("the request timeout is zero".into()));
        }
        let ttl = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let event = event.with_extension(TTL_EXTENSION, ExtensionValue::String(ttl.to_string()));
        let package = message_package(Wire::RequestToServer, topic, event, self.config().protocol)?;
        let answer = self.request_package(package, timeout).await?;
        event_of(&answer, self.config().protocol)
    }
}

#[cfg(test)]
mod tests {
    use eventmesh_protocol::tcp::{PROTOCOL_TYPE, ProtocolType};

    use super::*;

    #[test]
    fn packages_carry_the_topic_and_protocol() {
        let event = CloudEvent::new("1", "/s", "t").with_data("text/plain", "hi");
        let p = message_package(
            Wire::AsyncMessageToServer,
            "T",
            event.clone(),
            Protocol::EventMeshMessage,
        )
        .unwrap();
        assert_eq!(
            p.header.property_string(PROTOCOL_TYPE).as_deref(),
            Some(ProtocolType::EventMeshMessage.as_str())
        );
        let body = p.raw_body().unwrap();
        let msg = eventmesh_protocol::tcp::EventMeshMessage::from_json(body).unwrap();
        assert_eq!(msg.topic.as_deref(), Some("T"));
        assert_eq!(msg.body.as_deref(), Some("hi"));

        let p = message_package(Wire::RequestToServer, "T", event, Protocol::CloudEvents).unwrap();
        let back = eventmesh_protocol::cloudevents::decode_event(p.raw_body().unwrap()).unwrap();
        assert_eq!(back.subject.as_deref(), Some("T"));
        assert_eq!(back.id, "1");
    }

    #[test]
    fn bad_topics_and_events_are_refused() {
        let event = CloudEvent::new("1", "/s", "t");
        assert!(matches!(
            message_package(Wire::AsyncMessageToServer, "", event, Protocol::CloudEvents),
            Err(Error::InvalidArgument(_))
        ));
        let bad = CloudEvent::new("", "/s", "t");
        assert!(matches!(
            message_package(Wire::AsyncMessageToServer, "T", bad, Protocol::CloudEvents),
            Err(Error::InvalidArgument(_))
        ));
    }
}
