//! Group and offset operations that need no member of the group: reading and writing a
//! cursor's committed offsets, resolving a start position, deleting groups.

use std::time::Duration;

use eventmesh_storage::{StartFrom, StorageError, StorageResult};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::store::Inner;

pub(crate) struct Groups<'a> {
    pub(crate) inner: &'a Inner,
}

impl Groups<'_> {
    /// A consumer of `group` that does not join it: commits from it are "simple" commits,
    /// which Kafka accepts while the group has no active member.
    fn client(&self, group: &str) -> StorageResult<BaseConsumer> {
        let s = self.inner;
        s.base
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| s.env.err("create a group client", e))
    }

    fn tpl(kafka_topic: &str, partitions: u32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(kafka_topic, i32::try_from(p).unwrap_or(i32::MAX));
        }
        tpl
    }

    /// The committed offsets of the partitions that have one; empty: the cursor does not exist.
    pub(crate) async fn committed(
        &self,
        group: &str,
        kafka_topic: &str,
        partitions: u32,
    ) -> StorageResult<Vec<(i32, u64)>> {
        let s = self.inner;
        let client = self.client(group)?;
        let tpl = Self::tpl(kafka_topic, partitions);
        let timeout = s.opts.request_timeout;
        let got = s
            .env
            .blocking("read committed offsets", move || {
                client.committed_offsets(tpl, timeout)
            })
            .await?
            .map_err(|e| s.env.err("read committed offsets", e))?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some((e.partition(), u64::try_from(o).ok()?)),
                _ => None,
            })
            .collect())
    }

    /// (low, high) watermark of every partition.
    pub(crate) async fn watermarks(
        &self,
        kafka_topic: &str,
        partitions: u32,
    ) -> StorageResult<Vec<(u64, u64)>> {
        let s = self.inner;
        let producer = s.producer_handle();
        let kt = kafka_topic.to_owned();
        let timeout = s.opts.request_timeout;
        let got = s
            .env
            .blocking("read watermarks", move || {
                let deadline = std::time::Instant::now() + timeout;
                (0..partitions)
                    .map(|p| {
                        let p = i32::try_from(p).unwrap_or(i32::MAX);
                        loop {
                            match producer.client().fetch_watermarks(&kt, p, timeout) {
                                // The client's metadata cache may still hold the topic as
                                // unknown (deleted and created again a moment ago): refresh it.
                                Err(e)
                                    if matches!(
                                        e.rdkafka_error_code(),
                                        Some(
                                            RDKafkaErrorCode::UnknownPartition
                                                | RDKafkaErrorCode::UnknownTopicOrPartition
                                        )
                                    ) && std::time::Instant::now() < deadline =>
                                {
                                    let _ = producer.client().fetch_metadata(Some(&kt), timeout);
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                                other => return other,
                            }
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .map_err(|e| s.env.err("read watermarks", e))?;
        Ok(got
            .into_iter()
            .map(|(lo, hi)| {
                (
                    u64::try_from(lo).unwrap_or(0),
                    u64::try_from(hi).unwrap_or(0),
                )
            })
            .collect())
    }

    /// The offset of every partition where `start` points.
    pub(crate) async fn resolve(
        &self,
        kafka_topic: &str,
        partitions: u32,
        start: StartFrom,
    ) -> StorageResult<Vec<(i32, u64)>> {
        let marks = self.watermarks(kafka_topic, partitions).await?;
        let at = |f: &dyn Fn(u64, u64) -> u64| -> Vec<(i32, u64)> {
            marks
                .iter()
                .enumerate()
                .map(|(p, (lo, hi))| (i32::try_from(p).unwrap_or(i32::MAX), f(*lo, *hi)))
                .collect()
        };
        let ms = match start {
            StartFrom::Earliest => return Ok(at(&|lo, _| lo)),
            StartFrom::Latest => return Ok(at(&|_, hi| hi)),
            StartFrom::Offset(o) => return Ok(at(&|lo, hi| o.clamp(lo, hi))),
            StartFrom::Time(ms) => ms,
        };
        let s = self.inner;
        let client = self.client("eventmesh-offsets-for-times")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            tpl.add_partition_offset(kafka_topic, p, Offset::Offset(ms.max(0)))
                .map_err(|e| s.env.err("offsets for times", e))?;
        }
        let timeout = s.opts.request_timeout;
        let got = s
            .env
            .blocking("offsets for times", move || {
                client.offsets_for_times(tpl, timeout)
            })
            .await?
            .map_err(|e| s.env.err("offsets for times", e))?;
        let mut out = at(&|_, hi| hi);
        for e in got.elements() {
            if let (Offset::Offset(o), Some(slot)) = (
                e.offset(),
                out.iter_mut().find(|(p, _)| *p == e.partition()),
            ) && o >= 0
            {
                slot.1 = u64::try_from(o).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Commits `targets` for `group` without joining it.
    pub(crate) async fn commit(
        &self,
        group: &str,
        kafka_topic: &str,
        targets: &[(i32, u64)],
    ) -> StorageResult<()> {
        let s = self.inner;
        let client = self.client(group)?;
        let mut tpl = TopicPartitionList::new();
        for (p, o) in targets {
            tpl.add_partition_offset(
                kafka_topic,
                *p,
                Offset::Offset(i64::try_from(*o).unwrap_or(i64::MAX)),
            )
            .map_err(|e| s.env.err("commit", e))?;
        }
        let r = s
            .env
            .blocking("commit", move || client.commit(&tpl, CommitMode::Sync))
            .await?;
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnknownMemberId
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::RebalanceInProgress
                    )
                ) =>
            {
                Err(StorageError::Backend(format!(
                    "Kafka at {}: group `{group}` has members on other nodes; its position can \
                     be moved only while none consumes ({e})",
                    s.env.brokers
                )))
            }
            Err(e) => Err(s.env.err("commit", e)),
        }
    }

    /// Deletes groups; a group that does not exist is not an error.
    pub(crate) async fn delete(&self, groups: &[String]) -> StorageResult<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let s = self.inner;
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().request_timeout(Some(s.opts.request_timeout));
        let res = tokio::time::timeout(
            s.opts.request_timeout + Duration::from_secs(1),
            s.admin_handle().delete_groups(&names, &opts),
        )
        .await
        .map_err(|_| s.env.timeout("delete groups"))?
        .map_err(|e| s.env.err("delete groups", e))?;
        for r in res {
            match r {
                Ok(g) => info!(message = "Deleted Kafka consumer group.", group = %g),
                Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((g, code)) => {
                    return Err(StorageError::Backend(format!(
                        "Kafka at {}: deleting group `{g}` failed: {code}",
                        s.env.brokers
                    )));
                }
            }
        }
        Ok(())
    }

    /// Deletes every group of this mesh on `kafka_topic`. Failures are logged: Kafka drops the
    /// offsets of a deleted topic by itself.
    pub(crate) async fn delete_of_topic(&self, kafka_topic: &str) -> StorageResult<()> {
        let s = self.inner;
        let producer = s.producer_handle();
        let timeout = s.opts.request_timeout;
        let listed = s
            .env
            .blocking("list groups", move || {
                producer
                    .client()
                    .fetch_group_list(None, timeout)
                    .map(|list| {
                        list.groups()
                            .iter()
                            .map(|g| g.name().to_owned())
                            .collect::<Vec<_>>()
                    })
            })
            .await?;
        let groups: Vec<String> = match listed {
            Ok(list) => list
                .into_iter()
                .filter(|g| s.names.is_group_of(g, kafka_topic))
                .collect(),
            Err(error) => {
                warn!(message = "Could not list Kafka consumer groups.", %error, kafka_topic);
                return Ok(());
            }
        };
        if let Err(error) = self.delete(&groups).await {
            warn!(message = "Could not delete the consumer groups of a deleted topic.", %error, kafka_topic);
        }
        if let Some(log) = s.env.state.get() {
            log.delete(&s.env, &groups).await;
        }
        Ok(())
    }
}
