//! Attribute keys of the EventMesh gRPC protocol (`ProtocolKey` in Java), carried lower-case in
//! a [`CloudEvent`](crate::v1::CloudEvent)'s `attributes`.

// Client identity.
/// Environment.
pub const ENV: &str = "env";
/// Data centre.
pub const IDC: &str = "idc";
/// Sub-system.
pub const SYS: &str = "sys";
/// Process id (numeric).
pub const PID: &str = "pid";
/// Client IP.
pub const IP: &str = "ip";
/// User name.
pub const USERNAME: &str = "username";
/// Password (never stored with an event).
pub const PASSWD: &str = "passwd";
/// SDK language.
pub const LANGUAGE: &str = "language";

// Protocol.
/// `eventmeshmessage`, `cloudevents`, `openmessage`.
pub const PROTOCOL_TYPE: &str = "protocoltype";
/// The protocol version.
pub const PROTOCOL_VERSION: &str = "protocolversion";
/// The protocol description; gRPC clients send [`PROTOCOL_DESC_GRPC_CLOUD_EVENT`].
pub const PROTOCOL_DESC: &str = "protocoldesc";
/// The value of [`PROTOCOL_DESC`] sent by gRPC clients.
pub const PROTOCOL_DESC_GRPC_CLOUD_EVENT: &str = "grpc-cloud-event";

// Message.
/// Client sequence number.
pub const SEQ_NUM: &str = "seqnum";
/// Client message id.
pub const UNIQUE_ID: &str = "uniqueid";
/// Time to live in milliseconds (request-reply: how long the requester waits).
pub const TTL: &str = "ttl";
/// The publisher's group.
pub const PRODUCER_GROUP: &str = "producergroup";
/// The subscriber's group.
pub const CONSUMER_GROUP: &str = "consumergroup";
/// A tag.
pub const TAG: &str = "tag";
/// The content type (as an EventMesh key).
pub const CONTENT_TYPE: &str = "contenttype";
/// The cluster.
pub const CLUSTER: &str = "cluster";
/// A webhook subscriber's URL.
pub const URL: &str = "url";
/// On a subscribe or `subscribeStream` subscription (EventMesh-rs): a CloudEvents SQL
/// (CESQL 1.0) expression for every item of the message that has no `filter` of its own; only
/// events it matches are pushed, the others are done for the group without delivery.
pub const FILTER: &str = "filter";

// Heartbeat.
/// `ce_integer`: [`CLIENT_TYPE_PUB`] or [`CLIENT_TYPE_SUB`].
pub const CLIENT_TYPE: &str = "clienttype";
/// A publisher's heartbeat.
pub const CLIENT_TYPE_PUB: i32 = 1;
/// A subscriber's heartbeat.
pub const CLIENT_TYPE_SUB: i32 = 2;

// Responses.
/// The string status code of an answer (see [`crate::status::StatusCode`]).
pub const STATUS_CODE: &str = "statuscode";
/// The answer's message.
pub const RESPONSE_MESSAGE: &str = "responsemessage";
/// When the answer was made (`ce_timestamp`).
pub const TIME: &str = "time";

// Stream messages.
/// Marks what a message on the `subscribeStream` request stream is.
pub const SUB_MESSAGE_TYPE: &str = "submessagetype";
/// [`SUB_MESSAGE_TYPE`] of a SYNC subscriber's reply.
pub const SUB_MESSAGE_TYPE_REPLY: &str = "subscription_reply";
/// [`SUB_MESSAGE_TYPE`] of an acknowledgement (EventMesh-rs): the events named by [`ACK_ID`]
/// were handled.
pub const SUB_MESSAGE_TYPE_ACK: &str = "ack";
/// [`SUB_MESSAGE_TYPE`] of a refusal (EventMesh-rs): redeliver the events named by [`ACK_ID`].
pub const SUB_MESSAGE_TYPE_NACK: &str = "nack";
/// On a pushed event: the id to acknowledge it with. On an ack or nack: one id, or several
/// separated by commas.
pub const ACK_ID: &str = "ackid";
/// On a subscription sent on `subscribeStream`: `"explicit"` when the client acknowledges each
/// pushed event (EventMesh-rs); absent or anything else: the event counts as taken once the
/// server handed it to the HTTP/2 stream (Apache EventMesh clients).
pub const ACK_MODE: &str = "ackmode";
/// The [`ACK_MODE`] of clients that acknowledge.
pub const ACK_MODE_EXPLICIT: &str = "explicit";
/// On a subscription sent on `subscribeStream` with [`ACK_MODE_EXPLICIT`]: the window the client
/// asks for (un-acked events at most; capped by the server).
pub const UNACK: &str = "unack";

// CloudEvents context attributes sent as attributes.
/// The topic.
pub const SUBJECT: &str = "subject";
/// `datacontenttype`.
pub const DATA_CONTENT_TYPE: &str = "datacontenttype";
/// `dataschema`.
pub const DATA_SCHEMA: &str = "dataschema";
