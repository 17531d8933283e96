//! Subscribe and unsubscribe: bindings, cursors and dispatcher membership.
//!
//! A *binding* is what a consumer group has said about a topic: its mode and its filter. It
//! belongs to the (group, topic), not to a member: a subscribe with a different filter or mode for
//! the same group and topic is refused with `SubscriptionConflict`. Each node announces its
//! bindings in the meta store (`bindings/<group>/<topic>/<node_id>`, on the node's lease) and
//! checks the other nodes' before accepting a new one. The filter is a CESQL expression
//! (see `filter`): compiled here, refused when invalid, compared in its canonical form, and
//! evaluated by the dispatcher.

use std::sync::Arc;

use bytes::Bytes;
use eventmesh_core::{
    ErrorCode, EventMeshError, GroupName, Subscription, SubscriptionMode, SubscriptionType, Topic,
};
use eventmesh_storage::{ConsumerRef, StartFrom};
use serde::{Deserialize, Serialize};

use super::broadcast::member_identity;
use super::dispatcher::{self, Dispatcher};
use super::endpoint::MemberEndpoint;
use super::filter;
use super::inflight::Member;
use super::request_reply::INBOX_TOPIC_PREFIX;
use super::session::{Membership, SessionHandle};
use super::{ConsumerKey, Core};
use crate::meta::escape_key_part;

/// A group's binding to a topic on this node, counted by memberships.
pub(crate) struct Binding {
    mode: SubscriptionMode,
    filter: Option<String>,
    members: usize,
}

#[derive(Serialize, Deserialize)]
struct BindingRecord {
    mode: String,
    filter: Option<String>,
}

fn binding_prefix(group: &GroupName, topic: &Topic) -> String {
    format!(
        "bindings/{}/{}/",
        escape_key_part(group.as_str()),
        escape_key_part(&topic.to_string())
    )
}

fn conflict(group: &GroupName, topic: &Topic, mode: &str, filter: Option<&str>) -> EventMeshError {
    EventMeshError::new(
        ErrorCode::SubscriptionConflict,
        format!(
            "group `{group}` already subscribes topic `{topic}` as {mode} with filter {}; a subscription of the same group and topic must use the same mode and filter",
            filter.map_or_else(|| "none".to_owned(), |f| format!("`{f}`"))
        ),
    )
}

impl Core {
    /// Subscribes the session to `sub.topic` as a member of `sub.group`, receiving pushes on
    /// `endpoint`. Returns once the store position is recorded (for a new BROADCASTING member:
    /// at the latest event; for a new CLUSTERING group: at the latest event, an existing group
    /// keeps its position). Subscribing again to the same group and topic is a no-op.
    pub async fn subscribe(
        &self,
        session: &SessionHandle,
        sub: Subscription,
        endpoint: MemberEndpoint,
    ) -> Result<(), EventMeshError> {
        self.check_running()?;
        session.check_open()?;
        let topic = sub.topic.exact().cloned().ok_or_else(|| {
            EventMeshError::new(
                ErrorCode::BadRequest,
                format!("topic pattern `{}` is not supported yet", sub.topic),
            )
        })?;
        if topic.name().starts_with(INBOX_TOPIC_PREFIX) {
            return Err(EventMeshError::new(
                ErrorCode::Forbidden,
                format!("topic `{topic}` is a reply inbox reserved for the mesh"),
            ));
        }
        let consumer = match sub.mode {
            SubscriptionMode::Clustering => {
                ConsumerRef::clustering(topic.clone(), sub.group.clone())
            }
            SubscriptionMode::Broadcasting => ConsumerRef::broadcasting(
                topic.clone(),
                sub.group.clone(),
                member_identity(session.meta()),
            ),
        };
        let filter = filter::compile(sub.filter.as_deref())?;
        let canonical = filter.as_ref().map(|f| f.canonical.as_str());
        self.bind(&sub.group, &topic, sub.mode, canonical).await?;
        let result = async {
            self.shared.ensure_topic(&topic).await?;
            self.shared
                .store
                .subscribe(&consumer, StartFrom::Latest)
                .await?;
            let key = ConsumerKey {
                group: sub.group.clone(),
                topic: topic.clone(),
                mode: sub.mode,
            };
            let expression = filter.as_ref().map(|f| f.expression.clone());
            self.attach(session, consumer.clone(), key, endpoint, sub.ty, expression)
        }
        .await;
        match result {
            Ok(true) => {
                tracing::info!(
                    message = "Member subscribed.",
                    session = %session.id(),
                    client_id = %session.meta().client_identity,
                    consumer = %consumer,
                    mode = sub.mode.as_str(),
                    r#type = sub.ty.as_str(),
                    filter = canonical.unwrap_or(""),
                );
                Ok(())
            }
            Ok(false) => {
                // Already a member: the reservation made by `bind` is not needed.
                self.unbind(&sub.group, &topic);
                Ok(())
            }
            Err(e) => {
                self.unbind(&sub.group, &topic);
                Err(e)
            }
        }
    }

    /// Removes the session's membership of `group` on `topic`. In-flight deliveries go to other
    /// members; a BROADCASTING member's cursor is deleted (a later subscribe starts afresh).
    pub async fn unsubscribe(
        &self,
        session: &SessionHandle,
        group: &GroupName,
        topic: &Topic,
    ) -> Result<(), EventMeshError> {
        session.check_open()?;
        let removed: Vec<Membership> = {
            let mut sessions = self.sessions.lock();
            let Some(entry) = sessions.get_mut(&session.id()) else {
                return Err(not_subscribed(group, topic));
            };
            let (mine, rest) = std::mem::take(&mut entry.memberships)
                .into_iter()
                .partition(|m| m.binding.0 == *group && m.binding.1 == *topic);
            entry.memberships = rest;
            mine
        };
        if removed.is_empty() {
            return Err(not_subscribed(group, topic));
        }
        for m in removed {
            let consumer = m.consumer.clone();
            self.leave(m);
            let still_here = self.consumers.lock().contains_key(&consumer);
            if consumer.member.is_some()
                && !still_here
                && let Err(error) = self.shared.store.unsubscribe(&consumer).await
            {
                tracing::warn!(message = "Failed to delete a broadcasting cursor.", %error, consumer = %consumer);
            }
            tracing::info!(message = "Member unsubscribed.", session = %session.id(), consumer = %consumer);
        }
        Ok(())
    }

    /// Checks the binding against this node's and the other nodes', and counts one more member.
    async fn bind(
        &self,
        group: &GroupName,
        topic: &Topic,
        mode: SubscriptionMode,
        filter: Option<&str>,
    ) -> Result<(), EventMeshError> {
        let key = (group.clone(), topic.clone());
        let first = {
            let mut bindings = self.bindings.lock();
            match bindings.get_mut(&key) {
                Some(b) if b.mode != mode || b.filter.as_deref() != filter => {
                    return Err(conflict(group, topic, b.mode.as_str(), b.filter.as_deref()));
                }
                Some(b) => {
                    b.members += 1;
                    false
                }
                None => {
                    bindings.insert(
                        key,
                        Binding {
                            mode,
                            filter: filter.map(str::to_owned),
                            members: 1,
                        },
                    );
                    true
                }
            }
        };
        if !first {
            return Ok(());
        }
        let own_key = self.binding_key(group, topic);
        match self.shared.meta.list(&binding_prefix(group, topic)).await {
            Ok(entries) => {
                for (k, v) in entries {
                    if k == own_key {
                        continue;
                    }
                    let Ok(other) = serde_json::from_slice::<BindingRecord>(&v) else {
                        continue;
                    };
                    if other.mode != mode.as_str() || other.filter.as_deref() != filter {
                        self.unbind(group, topic);
                        return Err(conflict(group, topic, &other.mode, other.filter.as_deref()));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(message = "Failed to read other nodes' bindings; checking this node only.", %error, group = %group, topic = %topic);
            }
        }
        let lease = *self.node_lease.lock();
        if let Some(lease) = lease {
            let value = binding_value(mode, filter);
            if let Err(error) = self.shared.meta.put(&own_key, value, Some(lease)).await {
                tracing::warn!(message = "Failed to announce a binding.", %error, group = %group, topic = %topic);
            }
        }
        Ok(())
    }

    /// Counts one member less; the last one removes the binding here and in the meta store.
    pub(crate) fn unbind(&self, group: &GroupName, topic: &Topic) {
        let key = (group.clone(), topic.clone());
        let gone = {
            let mut bindings = self.bindings.lock();
            match bindings.get_mut(&key) {
                Some(b) if b.members > 1 => {
                    b.members -= 1;
                    false
                }
                Some(_) => {
                    bindings.remove(&key);
                    true
                }
                None => false,
            }
        };
        if gone && let Some(core) = self.me.upgrade() {
            let meta_key = self.binding_key(group, topic);
            let cancel = self.root.child_token();
            self.tasks.spawn(format!("unbind {meta_key}"), async move {
                if cancel.is_cancelled() || core.bindings.lock().contains_key(&key) {
                    return;
                }
                if let Err(error) = core.shared.meta.delete(&meta_key).await {
                    tracing::warn!(message = "Failed to remove a binding.", %error, key = %meta_key);
                }
            });
        }
    }

    /// This node's bindings as meta keys and values, for (re-)announcing them on a new lease.
    pub(crate) fn binding_entries(&self) -> Vec<(String, Bytes)> {
        self.bindings
            .lock()
            .iter()
            .map(|((g, t), b)| {
                (
                    self.binding_key(g, t),
                    binding_value(b.mode, b.filter.as_deref()),
                )
            })
            .collect()
    }

    fn binding_key(&self, group: &GroupName, topic: &Topic) -> String {
        format!(
            "{}{}",
            binding_prefix(group, topic),
            escape_key_part(&self.shared.node.node_id)
        )
    }

    /// Adds the session as a member of the consumer's dispatcher (created and spawned when
    /// missing). `Ok(false)`: the session already was a member.
    fn attach(
        &self,
        session: &SessionHandle,
        consumer: ConsumerRef,
        key: ConsumerKey,
        endpoint: MemberEndpoint,
        ty: SubscriptionType,
        filter: Option<Arc<eventmesh_cesql::Expression>>,
    ) -> Result<bool, EventMeshError> {
        self.check_running()?;
        let mut sessions = self.sessions.lock();
        let entry = sessions.get_mut(&session.id()).ok_or_else(|| {
            EventMeshError::new(
                ErrorCode::BadRequest,
                format!("session {} is closed", session.id()),
            )
        })?;
        if entry.memberships.iter().any(|m| m.consumer == consumer) {
            return Ok(false);
        }
        let mut consumers = self.consumers.lock();
        let d = match consumers.get(&consumer) {
            Some(d) => d.clone(),
            None => {
                let id = self
                    .next_dispatcher
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = Arc::new(Dispatcher::new(
                    id,
                    consumer.clone(),
                    key.clone(),
                    &self.shared,
                    filter,
                ));
                consumers.insert(consumer.clone(), d.clone());
                self.by_id.write().insert(id, d.clone());
                self.tasks.spawn(
                    format!("dispatcher {consumer}"),
                    dispatcher::run(d.clone(), self.shared.clone(), self.root.child_token()),
                );
                d
            }
        };
        let member = self
            .next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        endpoint.register(&d.notify);
        d.state
            .lock()
            .add_member(Member::new(member, session.id(), endpoint, ty));
        d.notify.notify_one();
        entry.memberships.push(Membership {
            consumer,
            dispatcher: d,
            member,
            binding: (key.group, key.topic),
        });
        Ok(true)
    }

    /// Removes one membership; the dispatcher stops when its last member leaves.
    pub(crate) fn leave(&self, m: Membership) {
        {
            let mut consumers = self.consumers.lock();
            let d = &m.dispatcher;
            let empty = {
                let mut st = d.state.lock();
                if let Some(member) = st.remove_member(m.member) {
                    member.endpoint.unregister(&d.notify);
                }
                st.member_count() == 0
            };
            if empty
                && consumers
                    .get(&m.consumer)
                    .is_some_and(|x| Arc::ptr_eq(x, d))
            {
                consumers.remove(&m.consumer);
                self.by_id.write().remove(&d.id);
                d.stop();
            } else {
                d.notify.notify_one();
            }
        }
        self.unbind(&m.binding.0, &m.binding.1);
    }
}

fn binding_value(mode: SubscriptionMode, filter: Option<&str>) -> Bytes {
    let record = BindingRecord {
        mode: mode.as_str().to_owned(),
        filter: filter.map(str::to_owned),
    };
    Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
}

fn not_subscribed(group: &GroupName, topic: &Topic) -> EventMeshError {
    EventMeshError::new(
        ErrorCode::NotSubscribed,
        format!("the session is not subscribed to `{topic}` in group `{group}`"),
    )
}
