//! The gRPC publisher.

use std::sync::Arc;
use std::time::Duration;

use eventmesh_core::CloudEvent;
use eventmesh_protocol_grpc::convert;
use eventmesh_protocol_grpc::keys;
use eventmesh_protocol_grpc::v1;
use eventmesh_protocol_grpc::v1::heartbeat_service_client::HeartbeatServiceClient;
use eventmesh_protocol_grpc::v1::publisher_service_client::PublisherServiceClient;
use tonic::transport::Channel;

use super::{GrpcConfig, GrpcError, check};

/// Publishes events over gRPC. Cheap to clone (clones share the channel).
#[derive(Clone, Debug)]
pub struct GrpcPublisher {
    client: PublisherServiceClient<Channel>,
    heartbeats: HeartbeatServiceClient<Channel>,
    config: Arc<GrpcConfig>,
}

impl GrpcPublisher {
    /// Connects to `config.endpoint`.
    pub async fn connect(config: GrpcConfig) -> Result<Self, GrpcError> {
        let channel = config.connect().await?;
        Ok(GrpcPublisher {
            client: PublisherServiceClient::new(channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            heartbeats: HeartbeatServiceClient::new(channel),
            config: Arc::new(config),
        })
    }

    /// The message of `event` published to `topic`: the event with the identity attributes,
    /// `producergroup`, `subject`, `uniqueid` (the event id unless set), `seqnum` and `ttl`.
    pub fn message(&self, topic: &str, event: &CloudEvent) -> v1::CloudEvent {
        let mut pb = convert::from_event(event);
        let c = &self.config;
        pb.attributes.extend(c.identity());
        use convert::string_value as s;
        pb.attributes
            .insert(keys::PRODUCER_GROUP.to_owned(), s(c.producer_group.clone()));
        pb.attributes.insert(keys::SUBJECT.to_owned(), s(topic));
        pb.attributes
            .entry(keys::UNIQUE_ID.to_owned())
            .or_insert_with(|| s(event.id.clone()));
        pb.attributes
            .entry(keys::SEQ_NUM.to_owned())
            .or_insert_with(|| s(event.id.clone()));
        pb.attributes
            .entry(keys::TTL.to_owned())
            .or_insert_with(|| s(c.ttl_ms.to_string()));
        pb
    }

    fn request<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(timeout);
        r
    }

    /// Publishes `event` to `topic`; returns once the server stored it.
    pub async fn publish(&self, topic: &str, event: CloudEvent) -> Result<(), GrpcError> {
        let msg = self.message(topic, &event);
        let answer = self
            .client
            .clone()
            .publish(self.request(msg, self.config.timeout))
            .await?
            .into_inner();
        check(&answer)
    }

    /// Publishes `event` to `topic` without hearing whether the server stored it.
    pub async fn publish_one_way(&self, topic: &str, event: CloudEvent) -> Result<(), GrpcError> {
        let msg = self.message(topic, &event);
        self.client
            .clone()
            .publish_one_way(self.request(msg, self.config.timeout))
            .await?;
        Ok(())
    }

    fn batch(&self, topic: &str, events: &[CloudEvent]) -> v1::CloudEventBatch {
        v1::CloudEventBatch {
            events: events.iter().map(|e| self.message(topic, e)).collect(),
        }
    }

    /// Publishes `events` to `topic`, all or nothing; returns once the server stored them.
    pub async fn publish_batch(&self, topic: &str, events: &[CloudEvent]) -> Result<(), GrpcError> {
        let batch = self.batch(topic, events);
        let answer = self
            .client
            .clone()
            .batch_publish(self.request(batch, self.config.timeout))
            .await?
            .into_inner();
        check(&answer)
    }

    /// Publishes `events` to `topic` without hearing whether the server stored them.
    pub async fn publish_batch_one_way(
        &self,
        topic: &str,
        events: &[CloudEvent],
    ) -> Result<(), GrpcError> {
        let batch = self.batch(topic, events);
        self.client
            .clone()
            .batch_publish_one_way(self.request(batch, self.config.timeout))
            .await?;
        Ok(())
    }

    /// Sends a request to `topic` and waits up to `ttl` for the reply.
    pub async fn request_reply(
        &self,
        topic: &str,
        event: CloudEvent,
        ttl: Duration,
    ) -> Result<CloudEvent, GrpcError> {
        let mut msg = self.message(topic, &event);
        msg.attributes.insert(
            keys::TTL.to_owned(),
            convert::string_value(ttl.as_millis().to_string()),
        );
        let reply = self
            .client
            .clone()
            .request_reply(self.request(msg, ttl + self.config.timeout))
            .await?
            .into_inner();
        if convert::response_status(&reply).is_some() {
            check(&reply)?;
        }
        convert::to_event(&reply).map_err(|e| GrpcError::Answer(e.to_string()))
    }

    /// Sends a publisher heartbeat.
    pub async fn heartbeat(&self) -> Result<(), GrpcError> {
        let c = &self.config;
        let mut attributes = c.identity();
        attributes.insert(
            keys::CLIENT_TYPE.to_owned(),
            convert::integer_value(keys::CLIENT_TYPE_PUB),
        );
        attributes.insert(
            keys::PRODUCER_GROUP.to_owned(),
            convert::string_value(c.producer_group.clone()),
        );
        let msg = v1::CloudEvent {
            id: crate::random_id(),
            source: "/eventmesh-sdk-rust".to_owned(),
            spec_version: "1.0".to_owned(),
            r#type: "eventmesh.heartbeat".to_owned(),
            attributes,
            data: Some(v1::cloud_event::Data::TextData("[]".to_owned())),
        };
        let answer = self
            .heartbeats
            .clone()
            .heartbeat(self.request(msg, c.timeout))
            .await?
            .into_inner();
        check(&answer)
    }
}
