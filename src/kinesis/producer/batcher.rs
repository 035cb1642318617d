//! Choosing the next PutRecords batch from the pending records, in change order.
//!
//! PutRecords does not order the records of one call, so a batch holds at most one record per
//! partition key, and a key whose earliest pending record cannot go now (limits, or still in
//! flight) blocks every later record of that key: per user, records arrive in change order.

use std::collections::HashSet;

use super::limits::{MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};

/// A record waiting to be put. `id` orders them (the audience change sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub id: u64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl PendingRecord {
    /// What Kinesis counts against its limits.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Indices into `pending` (which is in change order) of the next batch.
pub fn next_batch(pending: &[PendingRecord]) -> Vec<usize> {
    let mut chosen = Vec::new();
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut bytes = 0usize;
    for (i, record) in pending.iter().enumerate() {
        if chosen.len() == MAX_RECORDS_PER_CALL {
            break;
        }
        let key = record.partition_key.as_str();
        if !blocked.insert(key) {
            continue;
        }
        if bytes + record.size() > MAX_BYTES_PER_CALL {
            continue; // the key stays blocked: its later records must wait for this one
        }
        bytes += record.size();
        chosen.push(i);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::producer::limits::MAX_RECORD_BYTES;

    fn rec(id: u64, key: &str, size: usize) -> PendingRecord {
        PendingRecord {
            id,
            partition_key: key.into(),
            data: vec![b'x'; size],
        }
    }

    #[test]
    fn one_record_per_key_in_change_order() {
        let pending = vec![
            rec(1, "a", 10),
            rec(2, "a", 10),
            rec(3, "b", 10),
            rec(4, "a", 10),
            rec(5, "c", 10),
        ];
        assert_eq!(next_batch(&pending), [0, 2, 4]);
    }

    #[test]
    fn at_most_500_records() {
        let pending: Vec<_> = (0..1200).map(|i| rec(i, &format!("k{i}"), 10)).collect();
        assert_eq!(next_batch(&pending).len(), MAX_RECORDS_PER_CALL);
    }

    #[test]
    fn at_most_5_mib_and_a_blocked_key_stays_blocked() {
        let big = MAX_RECORD_BYTES - 10;
        let mut pending: Vec<_> = (0..6).map(|i| rec(i, &format!("k{i}"), big)).collect();
        pending.push(rec(6, "k5", 1)); // k5's first record did not fit: its second must wait
        pending.push(rec(7, "small", 1));
        let batch = next_batch(&pending);
        assert_eq!(batch, [0, 1, 2, 3, 4, 7]);
        let bytes: usize = batch.iter().map(|&i| pending[i].size()).sum();
        assert!(bytes <= MAX_BYTES_PER_CALL);
    }
}
