//! Cursor state records: where a cursor's out-of-order acks and delivery counts are kept when
//! the brokers do not keep commit metadata.
//!
//! The store writes a partition's state (see [`part`](crate) module docs) into the metadata of
//! its offset commits. Apache Kafka returns that metadata in `OffsetFetch`; some
//! Kafka-compatible brokers store it but answer without it (tansu 0.6), so a restart would lose
//! the acks above the committed offset and the delivery counts. With
//! [`CursorState::Topic`](crate::CursorState::Topic) (chosen by `auto` when a probe commit at
//! start-up comes back without its metadata) the store also writes each partition's state, before
//! the commit that carries it, as a record of a state topic of its own per cursor:
//!
//! * the topic `__<group_prefix>state.<enc group id>` (a 64-bit hash of the group id instead,
//!   when that name would be too long), with the data topic's partition count and
//!   `cleanup.policy=compact`; a partition's states go to the same partition, so its newest
//!   state is its last record;
//! * the record: key `<partition>`, value `<floor> <group id> <metadata>` (UTF-8);
//! * a state is written only when it differs from the last one written for the partition (a
//!   consumer acking in order writes none after an empty one);
//! * loading a partition uses the newest record only if it names the group and the floor that
//!   Kafka has committed; otherwise the commit's own metadata (at least once either way).
//!
//! A seek writes an empty state at the new position of every partition (so that an older state
//! at that floor is not applied); unsubscribing and deleting a topic delete the cursors' state
//! topics. Names starting with `__` are never mesh topics, so `list_topics` does not show them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use eventmesh_storage::StorageResult;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::cursor::Env;
use crate::names::{MAX_TOPIC_NAME, encode};
use crate::options::CursorState;

/// One partition's state as a state record holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) floor: u64,
    pub(crate) group: String,
    pub(crate) metadata: String,
}

impl Saved {
    fn encode(&self) -> String {
        format!("{} {} {}", self.floor, self.group, self.metadata)
    }

    fn decode(value: &[u8]) -> Option<Saved> {
        let s = std::str::from_utf8(value).ok()?;
        let (floor, rest) = s.split_once(' ')?;
        let (group, metadata) = rest.split_once(' ')?;
        Some(Saved {
            floor: floor.parse().ok()?,
            group: group.to_owned(),
            metadata: metadata.to_owned(),
        })
    }
}

/// The state topic of the cursor whose group id is `group`.
pub(crate) fn topic_name(group_prefix: &str, group: &str) -> String {
    let name = format!("__{group_prefix}state.{}", encode(group));
    if name.len() <= MAX_TOPIC_NAME {
        return name;
    }
    let hash = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("__{group_prefix}state.{hash:016x}")
}

/// The clients that read and write state records (one per store, made only when it needs them).
pub(crate) struct StateLog {
    group_prefix: String,
    replication: i32,
    producer: FutureProducer,
    /// The store's admin client.
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// Reads the last record of one partition at a time (assigned, never joins a group).
    reader: Arc<Mutex<BaseConsumer>>,
    /// State topics known to exist.
    known: Mutex<HashSet<String>>,
}

impl StateLog {
    /// The state log `mode` asks for: none with `metadata`; with `auto`, one only when the
    /// brokers drop commit metadata (a probe that fails keeps to the metadata, with a warning).
    pub(crate) async fn open(
        mode: CursorState,
        env: &Env,
        base: &ClientConfig,
        admin: &Arc<AdminClient<DefaultClientContext>>,
        group_prefix: &str,
        replication: u16,
        publish_timeout: Duration,
    ) -> StorageResult<Option<StateLog>> {
        let wanted = match mode {
            CursorState::Metadata => false,
            CursorState::Topic => true,
            CursorState::Auto => {
                match brokers_keep_metadata(env, base, admin, group_prefix, replication).await {
                    Ok(true) => false,
                    Ok(false) => {
                        warn!(
                            message = "The Kafka brokers do not give back offset commit \
                                       metadata; cursor state also goes to state topics.",
                            brokers = %env.brokers
                        );
                        true
                    }
                    // Without the right to create the probe topic (ACLs), for instance.
                    Err(error) => {
                        warn!(
                            message = "Could not probe whether the Kafka brokers keep commit \
                                       metadata; using it. Set storage.kafka.cursor_state to \
                                       \"topic\" for brokers that drop it.",
                            %error
                        );
                        false
                    }
                }
            }
        };
        if !wanted {
            return Ok(None);
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string();
        let producer: FutureProducer = base
            .clone()
            .set("acks", "all")
            .set("message.timeout.ms", ms(publish_timeout))
            .set("linger.ms", "0")
            .create()
            .map_err(|e| env.err("create the state producer", e))?;
        // librdkafka wants a group id even for assigned reading; this one never joins nor
        // commits.
        let reader: BaseConsumer = base
            .clone()
            .set("group.id", format!("__{group_prefix}state-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|e| env.err("create the state reader", e))?;
        Ok(Some(StateLog {
            group_prefix: group_prefix.to_owned(),
            replication: i32::from(replication),
            producer,
            admin: admin.clone(),
            reader: Arc::new(Mutex::new(reader)),
            known: Mutex::new(HashSet::new()),
        }))
    }

    /// Creates the state topic of `group` (with `partitions` partitions) if it is not known to
    /// exist.
    async fn ensure_topic(&self, env: &Env, group: &str, partitions: u32) -> StorageResult<String> {
        let name = topic_name(&self.group_prefix, group);
        if self.known.lock().contains(&name) {
            return Ok(name);
        }
        let new = NewTopic::new(
            &name,
            i32::try_from(partitions).unwrap_or(1),
            TopicReplication::Fixed(self.replication),
        )
        .set("cleanup.policy", "compact");
        let opts = AdminOptions::new().request_timeout(Some(env.request_timeout));
        let res = tokio::time::timeout(
            env.request_timeout + Duration::from_secs(1),
            self.admin.create_topics([&new], &opts),
        )
        .await
        .map_err(|_| env.timeout("create a state topic"))?
        .map_err(|e| env.err("create a state topic", e))?;
        match res.into_iter().next() {
            Some(Ok(_)) => {
                info!(message = "Created a Kafka cursor state topic.", topic = %name, group);
            }
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {}
            Some(Err((_, code))) => {
                return Err(env.err(
                    "create a state topic",
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
        self.known.lock().insert(name.clone());
        Ok(name)
    }

    /// Writes the states of some partitions of `group`'s cursor and waits until the brokers
    /// acknowledged every one.
    pub(crate) async fn write(
        &self,
        env: &Env,
        group: &str,
        partitions: u32,
        states: &[(i32, u64, String)],
    ) -> StorageResult<()> {
        if states.is_empty() {
            return Ok(());
        }
        let topic = self.ensure_topic(env, group, partitions).await?;
        // Usually one partition; in turn, each awaited (the brokers keep their order anyway).
        for (p, floor, metadata) in states {
            let value = Saved {
                floor: *floor,
                group: group.to_owned(),
                metadata: metadata.clone(),
            }
            .encode();
            self.producer
                .send(
                    FutureRecord::to(&topic)
                        .partition(*p)
                        .key(&p.to_string())
                        .payload(&value),
                    env.request_timeout,
                )
                .await
                .map_err(|(e, _)| env.err("write cursor state", e))?;
        }
        Ok(())
    }

    /// The newest state record of `partition` of `group`'s cursor; `None` when there is none
    /// (or no state topic).
    pub(crate) async fn read(
        &self,
        env: &Env,
        group: &str,
        partition: i32,
    ) -> StorageResult<Option<Saved>> {
        let topic = topic_name(&self.group_prefix, group);
        let reader = self.reader.clone();
        let timeout = env.request_timeout;
        let group = group.to_owned();
        env.blocking("read cursor state", move || {
            read_last(&reader.lock(), &topic, partition, timeout)
        })
        .await?
        .map(|found| found.filter(|s: &Saved| s.group == group))
        .map_err(|e| env.err("read cursor state", e))
    }

    /// Deletes the state topics of these groups; ones that do not exist are not an error.
    pub(crate) async fn delete(&self, env: &Env, groups: &[String]) {
        if groups.is_empty() {
            return;
        }
        let names: Vec<String> = groups
            .iter()
            .map(|g| topic_name(&self.group_prefix, g))
            .collect();
        {
            let mut known = self.known.lock();
            for n in &names {
                known.remove(n);
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().request_timeout(Some(env.request_timeout));
        match tokio::time::timeout(
            env.request_timeout + Duration::from_secs(1),
            self.admin.delete_topics(&refs, &opts),
        )
        .await
        {
            Ok(Ok(results)) => {
                for r in results {
                    match r {
                        Ok(t) => {
                            debug!(message = "Deleted a Kafka cursor state topic.", topic = %t)
                        }
                        Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                        Err((t, code)) => {
                            warn!(message = "Could not delete a Kafka cursor state topic.", topic = %t, %code);
                        }
                    }
                }
            }
            Ok(Err(error)) => {
                warn!(message = "Could not delete Kafka cursor state topics.", %error);
            }
            Err(_) => warn!(message = "Deleting Kafka cursor state topics timed out."),
        }
    }

    /// Whether `group`'s cursor has a state topic.
    pub(crate) async fn exists(&self, env: &Env, group: &str) -> StorageResult<bool> {
        let name = topic_name(&self.group_prefix, group);
        if self.known.lock().contains(&name) {
            return Ok(true);
        }
        let producer = self.producer.clone();
        let timeout = env.request_timeout;
        let topic = name.clone();
        let md = env
            .blocking("read state topic metadata", move || {
                producer.client().fetch_metadata(Some(&topic), timeout)
            })
            .await?
            .map_err(|e| env.err("read state topic metadata", e))?;
        let found = md
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
        if found {
            self.known.lock().insert(name);
        }
        Ok(found)
    }
}

/// Whether the brokers give back the metadata of an offset commit (Apache Kafka does; tansu 0.6
/// does not): a throwaway group commits offset 0 of the probe topic `__<group_prefix>probe`
/// (created when missing) with a random metadata string and reads it back; the group is deleted
/// afterwards.
async fn brokers_keep_metadata(
    env: &Env,
    base: &ClientConfig,
    admin: &AdminClient<DefaultClientContext>,
    group_prefix: &str,
    replication: u16,
) -> StorageResult<bool> {
    let topic = format!("__{group_prefix}probe");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(i32::from(replication)));
    let opts = AdminOptions::new().request_timeout(Some(env.request_timeout));
    let created = tokio::time::timeout(
        env.request_timeout + Duration::from_secs(1),
        admin.create_topics([&new], &opts),
    )
    .await
    .map_err(|_| env.timeout("create the probe topic"))?
    .map_err(|e| env.err("create the probe topic", e))?;
    if let Some(Err((_, code))) = created.into_iter().next()
        && code != RDKafkaErrorCode::TopicAlreadyExists
    {
        return Err(env.err(
            "create the probe topic",
            rdkafka::error::KafkaError::AdminOp(code),
        ));
    }
    let tag = format!("{:016x}", rand_u64());
    let group = format!("__{group_prefix}probe.{tag}");
    let client: BaseConsumer = base
        .clone()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| env.err("create the probe client", e))?;
    let metadata = format!("probe-{tag}");
    let timeout = env.request_timeout;
    let (t, m) = (topic.clone(), metadata.clone());
    let got = env
        .blocking("probe commit metadata", move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&t, 0, Offset::Offset(0))?;
            if let Some(mut e) = tpl.find_partition(&t, 0) {
                e.set_metadata(m);
            }
            // A topic just created may not be known to the group coordinator yet.
            let deadline = std::time::Instant::now() + timeout;
            loop {
                match client.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
                    Ok(()) => break,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => return Err(e),
                }
            }
            let mut ask = TopicPartitionList::new();
            ask.add_partition(&t, 0);
            let read = client.committed_offsets(ask, timeout)?;
            Ok(read
                .elements()
                .first()
                .map(|e| e.metadata().to_owned())
                .unwrap_or_default())
        })
        .await?
        .map_err(|e| env.err("probe commit metadata", e))?;
    let opts = AdminOptions::new().request_timeout(Some(env.request_timeout));
    // Best effort: a probe group left behind holds one offset of the probe topic.
    match tokio::time::timeout(
        env.request_timeout + Duration::from_secs(1),
        admin.delete_groups(&[group.as_str()], &opts),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            debug!(message = "Could not delete the Kafka probe group.", %group, %error);
        }
        Err(_) => debug!(message = "Deleting the Kafka probe group timed out.", %group),
    }
    Ok(got == metadata)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Reads the last record of a partition (blocking).
fn read_last(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<Saved>, rdkafka::error::KafkaError> {
    let (low, high) = match consumer.fetch_watermarks(topic, partition, timeout) {
        Ok(marks) => marks,
        Err(e)
            if matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic
                        | RDKafkaErrorCode::UnknownPartition
                )
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if high <= low {
        return Ok(None);
    }
    let last = high - 1;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(last))?;
    consumer.assign(&tpl)?;
    let found = poll_last(consumer, topic, partition, last, timeout);
    // The reader serves every cursor in turn: nothing of this partition stays assigned.
    consumer.unassign()?;
    found
}

fn poll_last(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    last: i64,
    timeout: Duration,
) -> Result<Option<Saved>, rdkafka::error::KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match consumer.poll(left.min(Duration::from_millis(200))) {
            Some(Ok(m))
                if m.topic() == topic && m.partition() == partition && m.offset() >= last =>
            {
                return Ok(m.payload().and_then(Saved::decode));
            }
            // A record of an earlier read still in the queue.
            Some(Ok(_)) | None => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Err(rdkafka::error::KafkaError::MessageConsumption(
        RDKafkaErrorCode::RequestTimedOut,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let s = Saved {
            floor: 42,
            group: "eventmesh.g+m@orders".to_owned(),
            metadata: "e1AAA".to_owned(),
        };
        assert_eq!(Saved::decode(s.encode().as_bytes()), Some(s));
        let empty = Saved {
            floor: 0,
            group: "g".to_owned(),
            metadata: String::new(),
        };
        assert_eq!(Saved::decode(empty.encode().as_bytes()), Some(empty));
        assert_eq!(Saved::decode(b"x g e1"), None);
        assert_eq!(Saved::decode(b"12"), None);
        assert_eq!(Saved::decode(&[0xff, b' ', b'g', b' ']), None);
    }

    #[test]
    fn state_topics_are_hidden_and_fit_kafka() {
        let t = topic_name("eventmesh.", "eventmesh.orders+m1@orders");
        assert!(t.starts_with("__eventmesh.state."), "{t}");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')),
            "{t}"
        );
        let long = "g".repeat(400);
        let t = topic_name("eventmesh.", &long);
        assert!(t.len() <= MAX_TOPIC_NAME, "{t}");
        assert_ne!(t, topic_name("eventmesh.", &"g".repeat(401)));
    }
}
