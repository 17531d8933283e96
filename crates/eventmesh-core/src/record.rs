//! The one versioned stored-record format.
//!
//! Every event store keeps events as [`EventRecord`]s encoded by [`EventRecord::encode`]. The
//! encoding is compact and self-describing enough to be read back by any later version:
//!
//! ```text
//! u8  version (= 1)
//! u16 flags, little endian (which optional fields follow)
//! [16] mesh event id (big endian)
//! i64 ingest time, Unix milliseconds, little endian
//! str topic (canonical form)        str = varint length + UTF-8 bytes
//! str? partition key                ? = present only when its flag bit is set
//! str id  str source  u8 specversion  str type
//! str? subject  (i64 secs, u32 nanos)? time  str? datacontenttype  str? dataschema
//! bytes? data                       bytes = varint length + bytes
//! varint extension count, then per extension: str name, u8 kind, value
//!   kind 0 = string (str), 1 = boolean (u8), 2 = integer (i64 LE)
//! ```
//!
//! Decoding checks every length against the remaining input, so a corrupt record is refused
//! with an error and never panics.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};

use crate::event::{CloudEvent, ExtensionValue, SpecVersion};
use crate::id::EventId;
use crate::topic::Topic;

/// The current record format version.
pub const RECORD_VERSION: u8 = 1;

const F_PARTITION_KEY: u16 = 1 << 0;
const F_SUBJECT: u16 = 1 << 1;
const F_TIME: u16 = 1 << 2;
const F_CONTENT_TYPE: u16 = 1 << 3;
const F_SCHEMA: u16 = 1 << 4;
const F_DATA: u16 = 1 << 5;
const KNOWN_FLAGS: u16 = (1 << 6) - 1;

/// An event as the mesh stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The id the mesh assigned when it accepted the event.
    pub id: EventId,
    /// When the mesh accepted it (Unix milliseconds).
    pub ingest_time_ms: i64,
    /// The topic it was published to.
    pub topic: Topic,
    /// Optional partition key (per-key ordering); stores may ignore it.
    pub partition_key: Option<String>,
    /// The CloudEvent itself.
    pub event: CloudEvent,
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    /// The input ends before the record does.
    #[error("record is truncated (needed {needed} more bytes at offset {at})")]
    Truncated {
        /// Where the read was.
        at: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// The version byte is unknown.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// A flag bit is set that this version does not know.
    #[error("unknown record flags {0:#06x}")]
    UnknownFlags(u16),
    /// A field has an invalid value.
    #[error("invalid field `{0}` in record")]
    InvalidField(&'static str),
    /// Bytes are left over after the record.
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

impl EventRecord {
    /// A record for `event` on `topic`, with a fresh mesh id and the current time.
    pub fn new(topic: Topic, event: CloudEvent) -> Self {
        EventRecord {
            id: EventId::generate(),
            ingest_time_ms: Utc::now().timestamp_millis(),
            topic,
            partition_key: None,
            event,
        }
    }

    /// An upper bound of the encoded size, for buffer reservation and limit checks.
    pub fn encoded_len_hint(&self) -> usize {
        let e = &self.event;
        let mut n = 1 + 2 + 16 + 8 + 1 + 12 + 4 * 10;
        n += self.topic.name().len() + self.topic.tenant().map_or(0, |t| t.len() + 1);
        n += self.partition_key.as_ref().map_or(0, String::len);
        n += e.id.len() + e.source.len() + e.ty.len();
        n += e.subject.as_ref().map_or(0, String::len);
        n += e.data_content_type.as_ref().map_or(0, String::len);
        n += e.data_schema.as_ref().map_or(0, String::len);
        n += e.data.as_ref().map_or(0, Bytes::len);
        for (k, v) in &e.extensions {
            n += k.len() + 5 + 9;
            if let ExtensionValue::String(s) = v {
                n += s.len();
            }
        }
        n
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let e = &self.event;
        out.reserve(self.encoded_len_hint());
        let mut flags = 0u16;
        if self.partition_key.is_some() {
            flags |= F_PARTITION_KEY;
        }
        if e.subject.is_some() {
            flags |= F_SUBJECT;
        }
        if e.time.is_some() {
            flags |= F_TIME;
        }
        if e.data_content_type.is_some() {
            flags |= F_CONTENT_TYPE;
        }
        if e.data_schema.is_some() {
            flags |= F_SCHEMA;
        }
        if e.data.is_some() {
            flags |= F_DATA;
        }
        out.put_u8(RECORD_VERSION);
        out.put_u16_le(flags);
        out.put_slice(&self.id.to_bytes());
        out.put_i64_le(self.ingest_time_ms);
        match self.topic.tenant() {
            Some(t) => {
                put_varint(out, (t.len() + 1 + self.topic.name().len()) as u64);
                out.put_slice(t.as_bytes());
                out.put_u8(b'~');
                out.put_slice(self.topic.name().as_bytes());
            }
            None => put_str(out, self.topic.name()),
        }
        if let Some(k) = &self.partition_key {
            put_str(out, k);
        }
        put_str(out, &e.id);
        put_str(out, &e.source);
        out.put_u8(match e.spec_version {
            SpecVersion::V03 => 3,
            SpecVersion::V10 => 10,
        });
        put_str(out, &e.ty);
        if let Some(s) = &e.subject {
            put_str(out, s);
        }
        if let Some(t) = &e.time {
            out.put_i64_le(t.timestamp());
            out.put_u32_le(t.timestamp_subsec_nanos());
        }
        if let Some(s) = &e.data_content_type {
            put_str(out, s);
        }
        if let Some(s) = &e.data_schema {
            put_str(out, s);
        }
        if let Some(d) = &e.data {
            put_varint(out, d.len() as u64);
            out.put_slice(d);
        }
        put_varint(out, e.extensions.len() as u64);
        for (k, v) in &e.extensions {
            put_str(out, k);
            match v {
                ExtensionValue::String(s) => {
                    out.put_u8(0);
                    put_str(out, s);
                }
                ExtensionValue::Boolean(b) => {
                    out.put_u8(1);
                    out.put_u8(u8::from(*b));
                }
                ExtensionValue::Integer(i) => {
                    out.put_u8(2);
                    out.put_i64_le(*i);
                }
            }
        }
    }

    /// The encoded record as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// Decodes one record that fills `input` exactly. `data` is sliced from `input` without a copy.
    pub fn decode(input: &Bytes) -> Result<Self, RecordDecodeError> {
        let mut r = Reader { buf: input, pos: 0 };
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(RecordDecodeError::UnknownVersion(version));
        }
        let flags = u16::from_le_bytes(r.array::<2>()?);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(RecordDecodeError::UnknownFlags(flags));
        }
        let id = EventId::from_bytes(r.array::<16>()?);
        let ingest_time_ms = i64::from_le_bytes(r.array::<8>()?);
        let topic = Topic::parse(r.str()?).map_err(|_| RecordDecodeError::InvalidField("topic"))?;
        let partition_key = if flags & F_PARTITION_KEY != 0 {
            Some(r.str()?.to_owned())
        } else {
            None
        };
        let ev_id = r.str()?.to_owned();
        let source = r.str()?.to_owned();
        let spec_version = match r.u8()? {
            3 => SpecVersion::V03,
            10 => SpecVersion::V10,
            _ => return Err(RecordDecodeError::InvalidField("specversion")),
        };
        let ty = r.str()?.to_owned();
        let subject = if flags & F_SUBJECT != 0 {
            Some(r.str()?.to_owned())
        } else {
            None
        };
        let time = if flags & F_TIME != 0 {
            let secs = i64::from_le_bytes(r.array::<8>()?);
            let nanos = u32::from_le_bytes(r.array::<4>()?);
            Some(
                DateTime::<Utc>::from_timestamp(secs, nanos)
                    .ok_or(RecordDecodeError::InvalidField("time"))?,
            )
        } else {
            None
        };
        let data_content_type = if flags & F_CONTENT_TYPE != 0 {
            Some(r.str()?.to_owned())
        } else {
            None
        };
        let data_schema = if flags & F_SCHEMA != 0 {
            Some(r.str()?.to_owned())
        } else {
            None
        };
        let data = if flags & F_DATA != 0 {
            let len = r.len()?;
            let start = r.pos;
            r.take(len)?;
            Some(input.slice(start..start + len))
        } else {
            None
        };
        let n_ext = r.varint()?;
        let mut extensions = BTreeMap::new();
        for _ in 0..n_ext {
            let name = r.str()?.to_owned();
            let value = match r.u8()? {
                0 => ExtensionValue::String(r.str()?.to_owned()),
                1 => ExtensionValue::Boolean(match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(RecordDecodeError::InvalidField("extension boolean")),
                }),
                2 => ExtensionValue::Integer(i64::from_le_bytes(r.array::<8>()?)),
                _ => return Err(RecordDecodeError::InvalidField("extension kind")),
            };
            extensions.insert(name, value);
        }
        if r.pos != input.len() {
            return Err(RecordDecodeError::Trailing(input.len() - r.pos));
        }
        Ok(EventRecord {
            id,
            ingest_time_ms,
            topic,
            partition_key,
            event: CloudEvent {
                id: ev_id,
                source,
                spec_version,
                ty,
                subject,
                time,
                data_content_type,
                data_schema,
                data,
                extensions,
            },
        })
    }
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn put_str(out: &mut BytesMut, s: &str) {
    put_varint(out, s.len() as u64);
    out.put_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordDecodeError> {
        let rest = self.buf.len() - self.pos;
        if n > rest {
            return Err(RecordDecodeError::Truncated {
                at: self.pos,
                needed: n - rest,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, RecordDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordDecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, RecordDecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordDecodeError::InvalidField("varint"))
    }

    fn len(&mut self) -> Result<usize, RecordDecodeError> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| RecordDecodeError::InvalidField("length"))
    }

    fn str(&mut self) -> Result<&'a str, RecordDecodeError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?)
            .map_err(|_| RecordDecodeError::InvalidField("utf-8 string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> EventRecord {
        let mut r = EventRecord::new(
            Topic::with_tenant("acme", "orders").unwrap(),
            CloudEvent::new("id-1", "/orders", "order.created")
                .with_data("application/json", &b"{\"n\":1}"[..])
                .with_extension("traceparent", "00-abc-def-01")
                .with_extension("ttl", ExtensionValue::Integer(3000))
                .with_extension("flag", ExtensionValue::Boolean(true)),
        );
        r.partition_key = Some("customer-7".into());
        r.event.subject = Some("o/1".into());
        r.event.time = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789);
        r.event.data_schema = Some("https://schemas.example/order".into());
        r
    }

    #[test]
    fn round_trips_every_field() {
        let r = sample();
        let bytes = r.to_bytes();
        assert!(bytes.len() <= r.encoded_len_hint());
        assert_eq!(EventRecord::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                EventRecord::decode(&bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut v = sample().to_bytes().to_vec();
        v[0] = 9;
        assert_eq!(
            EventRecord::decode(&Bytes::from(v)),
            Err(RecordDecodeError::UnknownVersion(9))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = EventRecord::decode(&Bytes::from(data));
        }

        #[test]
        fn round_trip(id in "[a-z0-9]{1,20}", src in "/[a-z]{0,10}", data in proptest::collection::vec(any::<u8>(), 0..300), n in any::<i64>()) {
            let r = EventRecord::new(
                Topic::new("t").unwrap(),
                CloudEvent::new(id, src, "ty").with_data("application/octet-stream", data).with_extension("n", ExtensionValue::Integer(n)),
            );
            prop_assert_eq!(EventRecord::decode(&r.to_bytes()).unwrap(), r);
        }
    }
}
