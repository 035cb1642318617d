//! Kinesis' PutRecords limits, named once.

/// Records per PutRecords call.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Bytes per PutRecords call (data and partition keys together).
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// Bytes of one record (data and partition key together).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Unicode characters of a partition key.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The partition key for `value`: the value itself when Kinesis accepts it, else a stable hash
/// (`sha256:` + hex, 71 characters), so one user always lands on one shard. Never truncated:
/// two long keys sharing a prefix must not collide, and slicing by bytes could split a character.
pub fn partition_key(value: &str) -> String {
    use sha2::{Digest, Sha256};
    if !value.is_empty() && value.chars().count() <= MAX_PARTITION_KEY_CHARS {
        value.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_hash_stably_and_short_ones_pass() {
        assert_eq!(partition_key("a@b.c"), "a@b.c");
        let long = "é".repeat(300);
        let k = partition_key(&long);
        assert!(k.starts_with("sha256:") && k.chars().count() <= MAX_PARTITION_KEY_CHARS);
        assert_eq!(k, partition_key(&long));
        assert_ne!(k, partition_key(&format!("{long}x")));
        assert_eq!(
            partition_key(&"é".repeat(256)),
            "é".repeat(256),
            "256 characters fit even at 512 bytes"
        );
    }
}
