//! The mesh-assigned event id.
//!
//! Client-supplied CloudEvent ids are only unique per source and collide in practice, so the mesh
//! gives every stored event its own 128-bit id: 48 bits of Unix milliseconds, 16 bits of a
//! per-process counter, 32 bits of per-process randomness and 32 more counter bits. Ids from one
//! process increase while the wall clock does; ids from different processes differ in the random part.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A 128-bit event id assigned by the mesh when it accepts an event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u128);

static COUNTER: AtomicU64 = AtomicU64::new(0);
static PROCESS_TAG: OnceLock<u32> = OnceLock::new();

impl EventId {
    /// A fresh id, unique within this process and, with overwhelming probability, across processes.
    pub fn generate() -> Self {
        let tag = *PROCESS_TAG.get_or_init(rand::random::<u32>);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            & 0xFFFF_FFFF_FFFF;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let hi = (millis << 16) | ((n >> 32) & 0xFFFF);
        let lo = (u64::from(tag) << 32) | (n & 0xFFFF_FFFF);
        EventId((u128::from(hi) << 64) | u128::from(lo))
    }

    /// Parses the 32-hex-digit form produced by `Display`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(EventId)
    }

    /// The big-endian bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id from its big-endian bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        EventId(u128::from_be_bytes(b))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing_within_a_process() {
        let mut prev = EventId::generate();
        for _ in 0..10_000 {
            let next = EventId::generate();
            assert!(next > prev, "{next} after {prev}");
            prev = next;
        }
    }

    #[test]
    fn display_round_trips() {
        let id = EventId::generate();
        assert_eq!(EventId::parse(&id.to_string()), Some(id));
        assert_eq!(EventId::parse("xyz"), None);
    }
}
