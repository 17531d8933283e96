//! The catalog: a stream listing topics and cursors, since AMQP cannot list queues.
//!
//! Entries are JSON messages appended with publisher confirms: a topic created or deleted, a
//! cursor's state queue created (so deleting a topic can delete its cursors, wherever they were
//! made). Reading it means consuming from `first` up to a marker the reader itself appended, so
//! a read sees every entry confirmed before it began. Entries are tiny and written only on
//! administrative changes (topics, new cursors), never per event.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};

use crate::conn::Conn;
use crate::error::RabbitError;
use crate::stream::{MARKER_TYPE, consume, is_marker, new_key};

/// One catalog entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// A topic was created.
    Topic { topic: String },
    /// A topic was deleted.
    Untopic { topic: String },
    /// A cursor's state queue was created.
    Cursor { topic: String, queue: String },
}

/// What the catalog says about one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopicEntry {
    /// State queues of the topic's cursors made since it was (last) created.
    pub(crate) cursors: Vec<String>,
}

/// The catalog stream of one deployment.
pub(crate) struct Catalog {
    pub(crate) queue: String,
}

impl Catalog {
    /// Appends an entry.
    pub(crate) async fn append(&self, conn: &Conn, entry: &Entry) -> Result<(), RabbitError> {
        let body = serde_json::to_vec(entry).map_err(|e| RabbitError::Protocol {
            queue: self.queue.clone(),
            reason: e.to_string(),
        })?;
        let props = BasicProperties::default().with_content_type("application/json".into());
        if conn
            .publish_confirmed("", &self.queue, &body, props)
            .await?
        {
            Ok(())
        } else {
            Err(RabbitError::Unavailable(format!(
                "the catalog stream `{}` is missing",
                self.queue
            )))
        }
    }

    /// Reads every entry and folds them: the live topics, by name.
    pub(crate) async fn read(
        &self,
        conn: &Conn,
    ) -> Result<BTreeMap<String, TopicEntry>, RabbitError> {
        let key = new_key();
        let props = BasicProperties::default()
            .with_type(MARKER_TYPE.into())
            .with_correlation_id(key.clone().into());
        if !conn.publish_confirmed("", &self.queue, b"", props).await? {
            return Err(RabbitError::Unavailable(format!(
                "the catalog stream `{}` is missing",
                self.queue
            )));
        }
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("first".into()),
        );
        let (_, ch, mut consumer) = consume(conn, &self.queue, 2048, args).await?;
        let mut topics: BTreeMap<String, TopicEntry> = BTreeMap::new();
        let result = loop {
            let next = conn
                .bounded("catalog read", async { consumer.next().await.transpose() })
                .await;
            let d = match next {
                Ok(d) => d,
                Err(e) => break Err(e),
            };
            let Some(d) = d else {
                break Err(RabbitError::Unavailable(
                    "the catalog read ended early".to_owned(),
                ));
            };
            let _ = d.ack(BasicAckOptions::default()).await;
            if is_marker(&d) {
                if d.properties
                    .correlation_id()
                    .as_ref()
                    .is_some_and(|k| k.as_str() == key)
                {
                    break Ok(());
                }
                continue;
            }
            match serde_json::from_slice::<Entry>(&d.data) {
                Ok(Entry::Topic { topic }) => {
                    topics.insert(topic, TopicEntry::default());
                }
                Ok(Entry::Untopic { topic }) => {
                    topics.remove(&topic);
                }
                Ok(Entry::Cursor { topic, queue }) => {
                    if let Some(t) = topics.get_mut(&topic) {
                        t.cursors.push(queue);
                    }
                }
                Err(error) => {
                    tracing::warn!(message = "Skipping an unreadable catalog entry.", %error);
                }
            }
        };
        let _ = ch.close(200, "catalog read".into()).await;
        result.map(|()| topics)
    }
}
