//! Metric names of the delivery core and the handles each dispatcher keeps.
//!
//! Names are stable (dashboards depend on them). Labels: `topic`, `group`, and `reason` where a
//! counter has several causes. Emitted through the `metrics` facade; the recorder is installed by
//! `telemetry`.

use eventmesh_core::Topic;
use metrics::{Counter, Gauge, counter, gauge};

use super::ConsumerKey;

/// Events accepted by publish (label `topic`).
pub const EVENTS_PUBLISHED: &str = "eventmesh_events_published_total";
/// Publishes refused (label `reason`: `overloaded`, `too_large`, `invalid`, `storage`).
pub const PUBLISH_REJECTED: &str = "eventmesh_publish_rejected_total";
/// Pushes handed to members (labels `group`, `topic`).
pub const EVENTS_DELIVERED: &str = "eventmesh_events_delivered_total";
/// Pushes acked by members (labels `group`, `topic`).
pub const EVENTS_ACKED: &str = "eventmesh_events_acked_total";
/// Deliveries that will be retried (labels `group`, `topic`, `reason`: `nack`, `timeout`, `member_gone`).
pub const REDELIVERIES: &str = "eventmesh_redeliveries_total";
/// Events a subscription's filter did not match, acked for the group without delivery (labels
/// `group`, `topic`).
pub const EVENTS_FILTERED: &str = "eventmesh_events_filtered_total";
/// Events written to a dead-letter topic (labels `group`, `topic`).
pub const DEAD_LETTERED: &str = "eventmesh_dead_lettered_total";
/// Pushes currently un-acked (labels `group`, `topic`).
pub const INFLIGHT: &str = "eventmesh_inflight";
/// Sessions open on this node.
pub const SESSIONS: &str = "eventmesh_sessions";
/// Request events dropped because their requester stopped waiting (labels `group`, `topic`).
pub const REQUESTS_EXPIRED: &str = "eventmesh_requests_expired_total";
/// Request-reply outcomes seen by requesters (label `outcome`: `replied`, `timeout`).
pub const REQUESTS: &str = "eventmesh_requests_total";
/// Replies that arrived after their requester stopped waiting.
pub const LATE_REPLIES: &str = "eventmesh_late_replies_total";

/// The counters and gauges of one dispatcher.
pub(crate) struct DispatchMetrics {
    pub(crate) delivered: Counter,
    pub(crate) acked: Counter,
    pub(crate) redelivered_nack: Counter,
    pub(crate) redelivered_timeout: Counter,
    pub(crate) redelivered_member_gone: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) filtered: Counter,
    pub(crate) expired_requests: Counter,
    pub(crate) inflight: Gauge,
}

impl DispatchMetrics {
    pub(crate) fn new(key: &ConsumerKey) -> Self {
        let group = key.group.to_string();
        let topic = key.topic.to_string();
        let redelivered = |reason: &'static str| counter!(REDELIVERIES, "group" => group.clone(), "topic" => topic.clone(), "reason" => reason);
        DispatchMetrics {
            delivered: counter!(EVENTS_DELIVERED, "group" => group.clone(), "topic" => topic.clone()),
            acked: counter!(EVENTS_ACKED, "group" => group.clone(), "topic" => topic.clone()),
            redelivered_nack: redelivered("nack"),
            redelivered_timeout: redelivered("timeout"),
            redelivered_member_gone: redelivered("member_gone"),
            dead_lettered: counter!(DEAD_LETTERED, "group" => group.clone(), "topic" => topic.clone()),
            filtered: counter!(EVENTS_FILTERED, "group" => group.clone(), "topic" => topic.clone()),
            expired_requests: counter!(REQUESTS_EXPIRED, "group" => group.clone(), "topic" => topic.clone()),
            inflight: gauge!(INFLIGHT, "group" => group, "topic" => topic),
        }
    }
}

pub(crate) fn published(topic: &Topic, n: usize) {
    counter!(EVENTS_PUBLISHED, "topic" => topic.to_string()).increment(n as u64);
}

pub(crate) fn rejected(reason: &'static str) {
    counter!(PUBLISH_REJECTED, "reason" => reason).increment(1);
}
