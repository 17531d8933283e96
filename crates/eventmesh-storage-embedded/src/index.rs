//! The sparse index of one segment.
//!
//! One entry per `index_interval_bytes` of log (and always one for a segment's first record):
//! the record's sequence number, its byte position in the segment and the topic's *indexed
//! time* at that record, which is the running maximum of ingest times (`max(previous, record)`),
//! so times never decrease along the log and time lookups can binary-search. The index lives in
//! memory and is rebuilt by the recovery scan on open; the log is its only source of truth.

/// One index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The record's sequence number.
    pub(crate) seq: u64,
    /// Where its frame starts in the segment file.
    pub(crate) pos: u64,
    /// The indexed (monotonic) ingest time at this record, Unix milliseconds.
    pub(crate) time: i64,
}

/// The last entry whose sequence number is at most `seq` (where a scan for `seq` starts).
pub(crate) fn floor_seq(entries: &[IndexEntry], seq: u64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.seq <= seq);
    i.checked_sub(1).map(|i| entries[i])
}

/// The last entry whose indexed time is before `time` (a scan for the first record at or after
/// `time` starts there; `None`: at the segment's first record).
pub(crate) fn last_before_time(entries: &[IndexEntry], time: i64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.time < time);
    i.checked_sub(1).map(|i| entries[i])
}

/// Decides when the writer adds an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexCadence {
    interval: u64,
    /// Bytes written since the last entry; `None` right after a segment starts.
    since: Option<u64>,
}

impl IndexCadence {
    /// A cadence for a segment that already holds `since` bytes after its last entry (`None`:
    /// an empty segment).
    pub(crate) fn new(interval: u32, since: Option<u64>) -> Self {
        IndexCadence {
            interval: u64::from(interval.max(1)),
            since,
        }
    }

    /// Called for each frame appended, with its length; returns whether it gets an entry.
    pub(crate) fn on_frame(&mut self, frame_len: u64) -> bool {
        let index = match self.since {
            None => true,
            Some(n) => n >= self.interval,
        };
        let base = if index { 0 } else { self.since.unwrap_or(0) };
        self.since = Some(base + frame_len);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64, pos: u64, time: i64) -> IndexEntry {
        IndexEntry { seq, pos, time }
    }

    #[test]
    fn floor_and_time_lookups() {
        let idx = [e(10, 0, 100), e(20, 4096, 100), e(30, 8192, 250)];
        assert_eq!(floor_seq(&idx, 9), None);
        assert_eq!(floor_seq(&idx, 10), Some(idx[0]));
        assert_eq!(floor_seq(&idx, 29), Some(idx[1]));
        assert_eq!(floor_seq(&idx, 99), Some(idx[2]));
        assert_eq!(last_before_time(&idx, 100), None);
        assert_eq!(last_before_time(&idx, 101), Some(idx[1]));
        assert_eq!(last_before_time(&idx, 1000), Some(idx[2]));
    }

    #[test]
    fn cadence_indexes_first_frame_then_every_interval() {
        let mut c = IndexCadence::new(100, None);
        let picks: Vec<bool> = (0..8).map(|_| c.on_frame(40)).collect();
        assert_eq!(picks, [true, false, false, true, false, false, true, false]);
    }
}
