//! Naming: Redis keys, consumer-group names, stream ids as offsets, and ack tokens.
//!
//! # Keys (with the default prefix `eventmesh`)
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `eventmesh:topics` | set | the canonical names of the topics that exist |
//! | `eventmesh:stream:<topic>` | stream | the topic's events, one entry each, field `r` = the encoded `EventRecord` |
//! | `eventmesh:max_lease` | string | the lease horizon `H` in ms, shared by every store on the prefix |
//! | `eventmesh:members` | sorted set | BROADCASTING member groups (`<topic>\n<group>`) scored by their last use (Unix ms) |
//!
//! `<topic>` is the topic's canonical form (`name` or `tenant~name`), used as is: Redis keys are
//! binary-safe, so no name needs encoding.
//!
//! # Consumer groups on a topic's stream
//!
//! * CLUSTERING cursor of group `G`: Redis group `c~G`;
//! * BROADCASTING cursor of member `M` in group `G`: Redis group `b~G~M`.
//!
//! `~` is not allowed in group names, so the two never collide and `M` (which may hold anything)
//! is unambiguous as the rest of the name.
//!
//! # Offsets
//!
//! A stream id `ms-seq` is packed into one `u64` sequence number (partition 0):
//! `ms << 22 | seq`. That is exact for every id Redis generates until the year 2109 with fewer
//! than 4,194,304 entries in one millisecond; an id outside that range is reported as an error,
//! never wrapped.

use bytes::{BufMut, Bytes, BytesMut};
use eventmesh_storage::{AckToken, ConsumerRef};

/// Bits of the packed offset that hold the id's sequence part.
pub(crate) const SEQ_BITS: u32 = 22;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// The largest millisecond part a packed offset can hold.
const MAX_MS: u64 = (1 << (64 - SEQ_BITS)) - 1;

/// The Redis consumer name this store reads with. Leases and redelivery do not depend on which
/// consumer owns a pending entry, so every node uses the same name and Redis keeps one consumer
/// per group instead of one per process that ever ran.
pub(crate) const CONSUMER: &str = "mesh";

/// The key names of one store (one prefix).
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The set of topic names.
    pub(crate) fn topics(&self) -> String {
        format!("{}:topics", self.prefix)
    }

    /// The stream of a topic (by its canonical name).
    pub(crate) fn stream(&self, topic: &str) -> String {
        format!("{}:stream:{topic}", self.prefix)
    }

    /// The `max_lease` (ms) every store on this prefix uses (the first store to open sets it).
    pub(crate) fn max_lease(&self) -> String {
        format!("{}:max_lease", self.prefix)
    }

    /// The sorted set of BROADCASTING member groups by last use.
    pub(crate) fn members(&self) -> String {
        format!("{}:members", self.prefix)
    }
}

/// The Redis group name of a cursor.
pub(crate) fn group_name(c: &ConsumerRef) -> String {
    match &c.member {
        None => format!("c~{}", c.group),
        Some(m) => format!("b~{}~{m}", c.group),
    }
}

/// The member-registry entry of a BROADCASTING cursor (`<topic>\n<group>`); empty for CLUSTERING.
pub(crate) fn member_entry(c: &ConsumerRef) -> String {
    match c.member {
        None => String::new(),
        Some(_) => format!("{}\n{}", c.topic, group_name(c)),
    }
}

/// A Redis stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    /// Parses `ms-seq` (as Redis returns ids).
    pub(crate) fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The packed offset sequence number, when the id fits (see the module docs).
    pub(crate) fn to_offset(self) -> Option<u64> {
        (self.ms <= MAX_MS && self.seq <= SEQ_MASK).then_some((self.ms << SEQ_BITS) | self.seq)
    }

    /// The id a packed offset names.
    pub(crate) fn from_offset(seq: u64) -> StreamId {
        StreamId {
            ms: seq >> SEQ_BITS,
            seq: seq & SEQ_MASK,
        }
    }

    /// The id just before this one, or `None` for `0-0`.
    pub(crate) fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq - 1,
            })
        } else if self.ms > 0 {
            Some(StreamId {
                ms: self.ms - 1,
                seq: u64::MAX,
            })
        } else {
            None
        }
    }

    /// The smallest packed offset of an id after this one (saturating).
    pub(crate) fn next_offset(self) -> u64 {
        if self.ms > MAX_MS {
            return u64::MAX;
        }
        if self.seq >= SEQ_MASK {
            (self.ms + 1).checked_shl(SEQ_BITS).unwrap_or(u64::MAX)
        } else {
            (self.ms << SEQ_BITS) | (self.seq + 1)
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

const TOKEN_MAGIC: &[u8; 3] = b"RS1";
const TOKEN_LEN: usize = 3 + 8 + 8 + 4;

/// What an ack token says: the entry and which delivery of it (its delivery count), so that a
/// nack or lease extension with the token of an older delivery cannot disturb a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) id: StreamId,
    pub(crate) count: u32,
}

impl Token {
    pub(crate) fn encode(self) -> AckToken {
        let mut b = BytesMut::with_capacity(TOKEN_LEN);
        b.put_slice(TOKEN_MAGIC);
        b.put_u64(self.id.ms);
        b.put_u64(self.id.seq);
        b.put_u32(self.count);
        AckToken(b.freeze())
    }

    /// Reads a token this store issued; `None` for anything else.
    pub(crate) fn decode(t: &AckToken) -> Option<Token> {
        let b: &Bytes = &t.0;
        if b.len() != TOKEN_LEN || &b[..3] != TOKEN_MAGIC {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let count = u32::from_be_bytes(b.get(19..23)?.try_into().ok()?);
        Some(Token {
            id: StreamId {
                ms: u64_at(3)?,
                seq: u64_at(11)?,
            },
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::{GroupName, Topic};

    #[test]
    fn ids_pack_and_unpack() {
        let id = StreamId {
            ms: 1_795_930_242_569,
            seq: 7,
        };
        let off = id.to_offset().expect("fits");
        assert_eq!(StreamId::from_offset(off), id);
        assert!(
            StreamId {
                ms: 1_795_930_242_569,
                seq: 8
            }
            .to_offset()
                > Some(off)
        );
        assert!(
            StreamId {
                ms: 1_795_930_242_570,
                seq: 0
            }
            .to_offset()
                > Some(off)
        );
        assert_eq!(
            StreamId {
                ms: 1,
                seq: 1 << 22
            }
            .to_offset(),
            None
        );
        assert_eq!(
            StreamId {
                ms: u64::MAX,
                seq: 0
            }
            .to_offset(),
            None
        );
    }

    #[test]
    fn ids_parse_and_step() {
        assert_eq!(StreamId::parse(b"12-3"), Some(StreamId { ms: 12, seq: 3 }));
        assert_eq!(StreamId::parse(b"12"), None);
        assert_eq!(StreamId::parse(b"x-3"), None);
        assert_eq!(StreamId { ms: 0, seq: 0 }.prev(), None);
        assert_eq!(
            StreamId { ms: 5, seq: 0 }.prev(),
            Some(StreamId {
                ms: 4,
                seq: u64::MAX
            })
        );
        let before = StreamId { ms: 5, seq: 0 }.prev().expect("not 0-0");
        assert_eq!(
            before.next_offset(),
            StreamId { ms: 5, seq: 0 }.to_offset().expect("fits")
        );
        assert_eq!(StreamId { ms: 5, seq: 2 }.next_offset(), (5 << 22) | 3);
    }

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let t = Token {
            id: StreamId { ms: 99, seq: 4 },
            count: 3,
        };
        assert_eq!(Token::decode(&t.encode()), Some(t));
        assert_eq!(
            Token::decode(&AckToken(Bytes::from_static(b"\xff\x00 nope"))),
            None
        );
        let mut long = t.encode().0.to_vec();
        long.push(0);
        assert_eq!(Token::decode(&AckToken(Bytes::from(long))), None);
    }

    #[test]
    fn group_names_do_not_collide() {
        let topic = Topic::new("t").expect("valid");
        let g = GroupName::new("g").expect("valid");
        let c = ConsumerRef::clustering(topic.clone(), g.clone());
        let b = ConsumerRef::broadcasting(topic, g, "m~x");
        assert_eq!(group_name(&c), "c~g");
        assert_eq!(group_name(&b), "b~g~m~x");
        assert_eq!(member_entry(&c), "");
        assert_eq!(member_entry(&b), "t\nb~g~m~x");
    }
}
