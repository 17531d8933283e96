//! A volatile in-memory event store (the upstream "standalone" mode).
//!
//! Everything lives in one process's memory and is lost when it exits: use it for tests, demos
//! and meshes whose events may be dropped on restart. It honours the whole [`EventStore`] contract
//! otherwise, and the storage conformance kit runs against it (except the restart scenario, which
//! it cannot pass by design and opts out of explicitly).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use eventmesh_core::{EventRecord, Topic};
use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, Delivery, EventStore, Offset, StartFrom, StorageError,
    StorageResult, TopicInfo,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A volatile in-memory event store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    published: Notify,
}

#[derive(Default)]
struct State {
    closed: bool,
    topics: HashMap<Topic, TopicLog>,
    cursors: HashMap<ConsumerRef, Cursor>,
    next_generation: u64,
}

#[derive(Default)]
struct TopicLog {
    /// Seq of `events[0]`.
    base: u64,
    events: Vec<EventRecord>,
    bytes: u64,
}

impl TopicLog {
    fn end(&self) -> u64 {
        self.base + self.events.len() as u64
    }

    fn get(&self, seq: u64) -> Option<&EventRecord> {
        seq.checked_sub(self.base)
            .and_then(|i| self.events.get(i as usize))
    }

    fn seq_at_time(&self, ms: i64) -> u64 {
        let i = self.events.partition_point(|r| r.ingest_time_ms < ms);
        self.base + i as u64
    }
}

struct Cursor {
    generation: u64,
    /// First seq not yet done.
    committed: u64,
    /// Next seq never fetched.
    next: u64,
    /// Seqs above `committed` that are done.
    acked: BTreeSet<u64>,
    /// Fetched and not done: seq -> (delivery count, redeliver at).
    in_flight: BTreeMap<u64, (u32, Instant)>,
}

impl Cursor {
    fn new(generation: u64, at: u64) -> Self {
        Cursor {
            generation,
            committed: at,
            next: at,
            acked: BTreeSet::new(),
            in_flight: BTreeMap::new(),
        }
    }

    fn mark_done(&mut self, seq: u64) {
        if seq < self.committed || seq >= self.next {
            return;
        }
        self.in_flight.remove(&seq);
        self.acked.insert(seq);
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
    }
}

fn encode_token(generation: u64, seq: u64) -> AckToken {
    let mut b = BytesMut::with_capacity(17);
    b.put_u8(b'm');
    b.put_u64(generation);
    b.put_u64(seq);
    AckToken(b.freeze())
}

fn decode_token(t: &AckToken) -> StorageResult<(u64, u64)> {
    let b: &[u8] = &t.0;
    if b.len() != 17 || b[0] != b'm' {
        return Err(StorageError::InvalidToken(format!(
            "{} bytes, not a memory-store token",
            b.len()
        )));
    }
    let mut g = [0u8; 8];
    let mut s = [0u8; 8];
    g.copy_from_slice(&b[1..9]);
    s.copy_from_slice(&b[9..17]);
    Ok((u64::from_be_bytes(g), u64::from_be_bytes(s)))
}

impl State {
    fn check_open(&self) -> StorageResult<()> {
        if self.closed {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    fn start_seq(&self, topic: &Topic, start: StartFrom) -> StorageResult<u64> {
        let log = self
            .topics
            .get(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        Ok(match start {
            StartFrom::Earliest => log.base,
            StartFrom::Latest => log.end(),
            StartFrom::Offset(s) => s.clamp(log.base, log.end()),
            StartFrom::Time(ms) => log.seq_at_time(ms),
        })
    }

    fn cursor_mut(&mut self, c: &ConsumerRef) -> StorageResult<&mut Cursor> {
        self.cursors
            .get_mut(c)
            .ok_or_else(|| StorageError::UnknownConsumer(c.to_string()))
    }

    /// Fetches what is available now, or nothing.
    fn take(
        &mut self,
        c: &ConsumerRef,
        max: usize,
        lease: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        self.check_open()?;
        let now = Instant::now();
        let State {
            topics, cursors, ..
        } = self;
        let log = topics
            .get(&c.topic)
            .ok_or_else(|| StorageError::UnknownTopic(c.topic.to_string()))?;
        let cur = cursors
            .get_mut(c)
            .ok_or_else(|| StorageError::UnknownConsumer(c.to_string()))?;
        // Retention may have moved the log start past the cursor.
        if cur.committed < log.base {
            cur.committed = log.base;
            cur.next = cur.next.max(log.base);
            cur.acked.retain(|s| *s >= log.base);
            cur.in_flight.retain(|s, _| *s >= log.base);
        }
        let mut out = Vec::new();
        let due: Vec<u64> = cur
            .in_flight
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(s, _)| *s)
            .take(max)
            .collect();
        for seq in due {
            if let (Some(rec), Some(entry)) = (log.get(seq), cur.in_flight.get_mut(&seq)) {
                entry.0 += 1;
                entry.1 = now + lease;
                out.push(Delivery {
                    token: encode_token(cur.generation, seq),
                    offset: Offset { partition: 0, seq },
                    delivery_count: entry.0,
                    record: rec.clone(),
                });
            }
        }
        while out.len() < max && cur.next < log.end() {
            let seq = cur.next;
            cur.next += 1;
            if let Some(rec) = log.get(seq) {
                cur.in_flight.insert(seq, (1, now + lease));
                out.push(Delivery {
                    token: encode_token(cur.generation, seq),
                    offset: Offset { partition: 0, seq },
                    delivery_count: 1,
                    record: rec.clone(),
                });
            }
        }
        Ok(out)
    }

    fn next_wakeup(&self, c: &ConsumerRef) -> Option<Instant> {
        self.cursors
            .get(c)
            .and_then(|cur| cur.in_flight.values().map(|(_, at)| *at).min())
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops events from the front of a topic so that at most `keep` remain (retention).
    pub fn truncate_front(&self, topic: &Topic, keep: usize) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        let log = st
            .topics
            .get_mut(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        if log.events.len() > keep {
            let drop = log.events.len() - keep;
            let freed: usize = log.events.drain(..drop).map(|r| r.encoded_len_hint()).sum();
            log.base += drop as u64;
            log.bytes = log.bytes.saturating_sub(freed as u64);
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create_topic(&self, topic: &Topic) -> StorageResult<bool> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        if st.topics.contains_key(topic) {
            return Ok(false);
        }
        st.topics.insert(topic.clone(), TopicLog::default());
        Ok(true)
    }

    async fn delete_topic(&self, topic: &Topic) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        if st.topics.remove(topic).is_none() {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        st.cursors.retain(|c, _| &c.topic != topic);
        Ok(())
    }

    async fn list_topics(&self) -> StorageResult<Vec<TopicInfo>> {
        let st = self.inner.state.lock();
        st.check_open()?;
        let mut v: Vec<TopicInfo> = st
            .topics
            .iter()
            .map(|(t, log)| TopicInfo {
                topic: t.clone(),
                partitions: 1,
                retained_events: log.events.len() as u64,
                retained_bytes: Some(log.bytes),
            })
            .collect();
        v.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(v)
    }

    async fn publish(&self, topic: &Topic, records: &[EventRecord]) -> StorageResult<Vec<Offset>> {
        if let Some(r) = records.iter().find(|r| &r.topic != topic) {
            return Err(StorageError::Invalid(format!(
                "record for topic `{}` in a batch for `{topic}`",
                r.topic
            )));
        }
        let offsets = {
            let mut st = self.inner.state.lock();
            st.check_open()?;
            let log = st
                .topics
                .get_mut(topic)
                .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
            let mut offsets = Vec::with_capacity(records.len());
            for r in records {
                offsets.push(Offset {
                    partition: 0,
                    seq: log.end(),
                });
                log.bytes += r.encoded_len_hint() as u64;
                log.events.push(r.clone());
            }
            offsets
        };
        self.inner.published.notify_waiters();
        Ok(offsets)
    }

    async fn subscribe(&self, consumer: &ConsumerRef, start: StartFrom) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        if st.cursors.contains_key(consumer) {
            return Ok(());
        }
        let at = st.start_seq(&consumer.topic, start)?;
        st.next_generation += 1;
        let generation = st.next_generation;
        st.cursors
            .insert(consumer.clone(), Cursor::new(generation, at));
        Ok(())
    }

    async fn unsubscribe(&self, consumer: &ConsumerRef) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        st.cursors
            .remove(consumer)
            .map(|_| ())
            .ok_or_else(|| StorageError::UnknownConsumer(consumer.to_string()))
    }

    async fn fetch(
        &self,
        consumer: &ConsumerRef,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> StorageResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.inner.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut st = self.inner.state.lock();
                let got = st.take(consumer, max, lease)?;
                // With `max == 0` nothing can ever be returned: answer at once.
                if max == 0 || !got.is_empty() || Instant::now() >= deadline {
                    return Ok(got);
                }
                st.next_wakeup(consumer)
                    .map_or(deadline, |w| w.min(deadline))
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, consumer: &ConsumerRef, tokens: &[AckToken]) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        let cur = st.cursor_mut(consumer)?;
        for t in tokens {
            let (generation, seq) = decode_token(t)?;
            if generation == cur.generation {
                cur.mark_done(seq);
            }
        }
        Ok(())
    }

    async fn nack(
        &self,
        consumer: &ConsumerRef,
        token: &AckToken,
        delay: Duration,
    ) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        let cur = st.cursor_mut(consumer)?;
        let (generation, seq) = decode_token(token)?;
        if generation == cur.generation
            && let Some(entry) = cur.in_flight.get_mut(&seq)
        {
            entry.1 = Instant::now() + delay;
        }
        drop(st);
        self.inner.published.notify_waiters();
        Ok(())
    }

    async fn extend_lease(
        &self,
        consumer: &ConsumerRef,
        tokens: &[AckToken],
        lease: Duration,
    ) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        let cur = st.cursor_mut(consumer)?;
        let until = Instant::now() + lease;
        for t in tokens {
            let (generation, seq) = decode_token(t)?;
            if generation == cur.generation
                && let Some(entry) = cur.in_flight.get_mut(&seq)
            {
                entry.1 = until;
            }
        }
        Ok(())
    }

    async fn seek(&self, consumer: &ConsumerRef, target: StartFrom) -> StorageResult<()> {
        let mut st = self.inner.state.lock();
        st.check_open()?;
        let at = st.start_seq(&consumer.topic, target)?;
        st.next_generation += 1;
        let generation = st.next_generation;
        let cur = st.cursor_mut(consumer)?;
        *cur = Cursor::new(generation, at);
        drop(st);
        self.inner.published.notify_waiters();
        Ok(())
    }

    async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        let st = self.inner.state.lock();
        st.check_open()?;
        let cur = st
            .cursors
            .get(consumer)
            .ok_or_else(|| StorageError::UnknownConsumer(consumer.to_string()))?;
        let end = st
            .topics
            .get(&consumer.topic)
            .map_or(cur.committed, TopicLog::end);
        Ok(CursorInfo {
            committed: vec![(0, cur.committed)],
            in_flight: cur.in_flight.len() as u64,
            backlog: Some(end.saturating_sub(cur.committed) - cur.acked.len() as u64),
        })
    }

    async fn health(&self) -> StorageResult<()> {
        self.inner.state.lock().check_open()
    }

    async fn close(&self) -> StorageResult<()> {
        self.inner.state.lock().closed = true;
        self.inner.published.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use eventmesh_core::{CloudEvent, GroupName};

    fn rec(topic: &Topic, i: u32) -> EventRecord {
        EventRecord::new(topic.clone(), CloudEvent::new(i.to_string(), "/t", "t"))
    }

    #[tokio::test]
    async fn ack_nack_and_lease() {
        let s = MemoryStore::new();
        let t = Topic::new("t").unwrap();
        s.create_topic(&t).await.unwrap();
        let c = ConsumerRef::clustering(t.clone(), GroupName::new("g").unwrap());
        s.subscribe(&c, StartFrom::Earliest).await.unwrap();
        s.publish(&t, &[rec(&t, 0), rec(&t, 1)]).await.unwrap();
        let d = s
            .fetch(&c, 10, Duration::from_millis(50), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(d.len(), 2);
        s.ack(&c, &[d[0].token.clone()]).await.unwrap();
        s.nack(&c, &d[1].token, Duration::ZERO).await.unwrap();
        let again = s
            .fetch(&c, 10, Duration::from_millis(20), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].offset.seq, 1);
        assert_eq!(again[0].delivery_count, 2);
        // Lease expiry brings it back a third time.
        let third = s
            .fetch(&c, 10, Duration::from_millis(20), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(third[0].delivery_count, 3);
        s.ack(&c, &[third[0].token.clone()]).await.unwrap();
        assert_eq!(s.cursor_info(&c).await.unwrap().committed, vec![(0, 2)]);
        assert!(matches!(
            s.ack(&c, &[AckToken(Bytes::from_static(b"x"))]).await,
            Err(StorageError::InvalidToken(_))
        ));
    }
}
