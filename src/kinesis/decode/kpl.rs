//! KPL de-aggregation.
//!
//! An aggregated record is `F3 89 9A C2` (magic), a protobuf `AggregatedRecord`, and the 16-byte
//! MD5 of the protobuf bytes. A record is treated as aggregated only when it starts with the magic
//! AND has at least one byte between the magic and the digest: that is the rule of the official
//! de-aggregators (KCL's `UserRecord.deaggregate`, `aws-kinesis-agg` for Python and Node). A shorter
//! record starting with the magic passes through as a plain record.
//!
//! Where the official de-aggregators silently fall back to passing an aggregate through when its
//! MD5 or protobuf is broken, we reject it with a reason instead: bytes starting with the magic are
//! never valid UTF-8, so the fall-back could only ever produce an "invalid UTF-8" dead letter that
//! hides the real cause.

use md5::{Digest, Md5};

use super::DecodeError;

/// First four bytes of every KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Size of the MD5 trailer.
pub const KPL_DIGEST_SIZE: usize = 16;

/// `message AggregatedRecord` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// `message Record` of the KPL's `messages.proto`: one user record.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `message Tag` of the KPL's `messages.proto` (unused by the KPL itself; decoded for fidelity).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// What a Kinesis record turned out to be.
#[derive(Debug)]
pub(super) enum Deaggregated {
    /// A plain record: decode its data as it is.
    NotAggregated,
    /// A valid aggregate.
    Aggregated(AggregatedRecord),
    /// An aggregate that cannot be opened (bad MD5, bad protobuf).
    Invalid(DecodeError),
}

/// One user record inside an aggregate, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct UserRecord<'a> {
    pub partition_key: &'a str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// A user record that cannot be used, with its data for the dead letter.
pub(super) type BadUserRecord<'a> = (DecodeError, &'a [u8]);

/// Whether `data` is a KPL aggregate by the official rule (see the module docs).
pub(super) fn is_aggregated(data: &[u8]) -> bool {
    data.len() > KPL_MAGIC.len() + KPL_DIGEST_SIZE && data.starts_with(&KPL_MAGIC)
}

/// Opens a KPL aggregate, or says that `data` is not one.
pub(super) fn deaggregate(data: &[u8]) -> Deaggregated {
    if !is_aggregated(data) {
        return Deaggregated::NotAggregated;
    }
    let (protobuf, digest) =
        data[KPL_MAGIC.len()..].split_at(data.len() - KPL_MAGIC.len() - KPL_DIGEST_SIZE);
    let computed = Md5::digest(protobuf);
    if computed.as_slice() != digest {
        return Deaggregated::Invalid(DecodeError::KplChecksum {
            expected: hex::encode(digest),
            computed: hex::encode(computed),
        });
    }
    match <AggregatedRecord as prost::Message>::decode(protobuf) {
        Ok(aggregate) => Deaggregated::Aggregated(aggregate),
        Err(error) => Deaggregated::Invalid(DecodeError::KplProtobuf(error)),
    }
}

impl AggregatedRecord {
    /// The user records with their sub-sequence numbers (their position in the aggregate). A user
    /// record whose key indexes point outside the tables is an error of its own; the others are
    /// still usable.
    pub(super) fn user_records(
        &self,
    ) -> impl Iterator<Item = (u64, Result<UserRecord<'_>, BadUserRecord<'_>>)> {
        (0u64..)
            .zip(self.records.iter())
            .map(|(sub, record)| (sub, self.user_record(sub, record)))
    }

    fn user_record<'a>(
        &'a self,
        sub: u64,
        record: &'a Record,
    ) -> Result<UserRecord<'a>, BadUserRecord<'a>> {
        let partition_key = lookup(&self.partition_key_table, record.partition_key_index)
            .ok_or_else(|| {
                let error = DecodeError::KplPartitionKeyIndex {
                    sub_sequence_number: sub,
                    key_index: record.partition_key_index,
                    table_len: self.partition_key_table.len(),
                };
                (error, record.data.as_slice())
            })?;
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => Some(lookup(&self.explicit_hash_key_table, index).ok_or_else(|| {
                let error = DecodeError::KplExplicitHashKeyIndex {
                    sub_sequence_number: sub,
                    key_index: index,
                    table_len: self.explicit_hash_key_table.len(),
                };
                (error, record.data.as_slice())
            })?),
        };
        Ok(UserRecord {
            partition_key,
            explicit_hash_key,
            data: &record.data,
        })
    }
}

fn lookup(table: &[String], index: u64) -> Option<&str> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .map(String::as_str)
}

/// Builds a KPL aggregate the way the KPL does (test helper and reference for the format).
#[cfg(test)]
pub(super) fn aggregate(aggregate: &AggregatedRecord) -> Vec<u8> {
    frame(&prost::Message::encode_to_vec(aggregate))
}

/// Magic + protobuf bytes + their MD5.
#[cfg(test)]
pub(super) fn frame(protobuf: &[u8]) -> Vec<u8> {
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(protobuf);
    out.extend_from_slice(&Md5::digest(protobuf));
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Made with the official Python library, `pip install aws-kinesis-agg==1.2.3`:
    /// ```python
    /// agg = aws_kinesis_agg.aggregator.RecordAggregator()
    /// agg.add_user_record("user-1", b'{"event":"signup","user_id":"u1"}')
    /// agg.add_user_record("user-2", b'{"event":"purchase","user_id":"u2","amount":12.5}')
    /// agg.add_user_record("user-1", b'{"event":"login","user_id":"u1"}\n{"event":"logout","user_id":"u1"}\n')
    /// agg.add_user_record("user-3", b'not json')
    /// pk, ehk, data = agg.clear_and_get().get_contents()   # pk == "user-1", ehk is None
    /// data.hex()
    /// ```
    pub(in crate::kinesis::decode) const PYTHON_AGGREGATE: &str = concat!(
        "f3899ac20a06757365722d310a06757365722d320a06757365722d331a2508001a217b226576656e74223a22",
        "7369676e7570222c22757365725f6964223a227531227d1a3508011a317b226576656e74223a227075726368",
        "617365222c22757365725f6964223a227532222c22616d6f756e74223a31322e357d1a4708001a437b226576",
        "656e74223a226c6f67696e222c22757365725f6964223a227531227d0a7b226576656e74223a226c6f676f75",
        "74222c22757365725f6964223a227531227d0a1a0c08021a086e6f74206a736f6e3fa607cf16d22772cda9a2",
        "9542092d55",
    );

    /// Same library, with an explicit hash key:
    /// ```python
    /// agg.add_user_record("pk-a", b'{"a":1}', explicit_hash_key="123456789")
    /// agg.add_user_record("pk-b", b'[{"b":1},{"b":2}]')
    /// ```
    pub(in crate::kinesis::decode) const PYTHON_AGGREGATE_EHK: &str = concat!(
        "f3899ac20a04706b2d610a04706b2d6212093132333435363738391a0d080010001a077b2261223a317d1a15",
        "08011a115b7b2262223a317d2c7b2262223a327d5d4d64bbc93aa13f67172c0754ef9cc9cc",
    );

    fn opened(data: &[u8]) -> AggregatedRecord {
        match deaggregate(data) {
            Deaggregated::Aggregated(aggregate) => aggregate,
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    fn invalid_reason(data: &[u8]) -> String {
        match deaggregate(data) {
            Deaggregated::Invalid(error) => error.to_string(),
            other => panic!("expected an invalid aggregate, got {other:?}"),
        }
    }

    pub(in crate::kinesis::decode) fn record(
        pk_index: u64,
        ehk_index: Option<u64>,
        data: &[u8],
    ) -> Record {
        Record {
            partition_key_index: pk_index,
            explicit_hash_key_index: ehk_index,
            data: data.to_vec(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn python_library_aggregate_is_opened() {
        let data = hex::decode(PYTHON_AGGREGATE).unwrap();
        let aggregate = opened(&data);
        let users: Vec<_> = aggregate
            .user_records()
            .map(|(sub, r)| (sub, r.unwrap()))
            .collect();
        assert_eq!(users.len(), 4);
        assert_eq!(users[0].0, 0);
        assert_eq!(users[0].1.partition_key, "user-1");
        assert_eq!(users[0].1.data, br#"{"event":"signup","user_id":"u1"}"#);
        assert_eq!(users[1].1.partition_key, "user-2");
        assert_eq!(users[2].1.partition_key, "user-1");
        assert_eq!(users[3].0, 3);
        assert_eq!(users[3].1.partition_key, "user-3");
        assert_eq!(users[3].1.data, b"not json");
        assert!(users.iter().all(|(_, u)| u.explicit_hash_key.is_none()));
    }

    #[test]
    fn python_library_explicit_hash_key() {
        let data = hex::decode(PYTHON_AGGREGATE_EHK).unwrap();
        let aggregate = opened(&data);
        let users: Vec<_> = aggregate.user_records().map(|(_, r)| r.unwrap()).collect();
        assert_eq!(users[0].partition_key, "pk-a");
        assert_eq!(users[0].explicit_hash_key, Some("123456789"));
        assert_eq!(users[1].partition_key, "pk-b");
        assert_eq!(users[1].explicit_hash_key, None);
    }

    #[test]
    fn our_encoder_matches_the_python_library() {
        let ours = aggregate(&AggregatedRecord {
            partition_key_table: vec!["pk-a".into(), "pk-b".into()],
            explicit_hash_key_table: vec!["123456789".into()],
            records: vec![
                record(0, Some(0), br#"{"a":1}"#),
                record(1, None, br#"[{"b":1},{"b":2}]"#),
            ],
        });
        assert_eq!(hex::encode(ours), PYTHON_AGGREGATE_EHK);
    }

    #[test]
    fn bad_md5_is_rejected_with_both_digests() {
        let mut data = hex::decode(PYTHON_AGGREGATE).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xFF;
        let reason = invalid_reason(&data);
        assert!(
            reason.starts_with("KPL aggregated record: MD5 checksum mismatch (trailer "),
            "{reason}"
        );
        assert!(
            reason.contains("computed 3fa607cf16d22772cda9a29542092d55"),
            "{reason}"
        );
    }

    #[test]
    fn flipped_payload_byte_fails_the_md5() {
        let mut data = hex::decode(PYTHON_AGGREGATE).unwrap();
        data[30] ^= 0x01;
        assert!(invalid_reason(&data).contains("MD5 checksum mismatch"));
    }

    #[test]
    fn truncated_protobuf_with_valid_md5_is_rejected() {
        let data = hex::decode(PYTHON_AGGREGATE).unwrap();
        let protobuf = &data[KPL_MAGIC.len()..data.len() - KPL_DIGEST_SIZE];
        let truncated = frame(&protobuf[..protobuf.len() - 5]);
        let reason = invalid_reason(&truncated);
        assert!(
            reason.starts_with("KPL aggregated record: invalid protobuf: "),
            "{reason}"
        );
    }

    #[test]
    fn index_out_of_range_spoils_only_that_user_record() {
        let data = aggregate(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![
                record(0, None, b"{}"),
                record(5, None, b"{\"x\":1}"),
                record(0, Some(2), b"{}"),
            ],
        });
        let aggregate = opened(&data);
        let users: Vec<_> = aggregate.user_records().collect();
        assert!(users[0].1.is_ok());
        let (error, raw) = users[1].1.as_ref().unwrap_err();
        assert_eq!(
            error.to_string(),
            "KPL user record 1: partition key index 5 out of range (the aggregate has 1 partition keys)"
        );
        assert_eq!(*raw, b"{\"x\":1}");
        let (error, _) = users[2].1.as_ref().unwrap_err();
        assert_eq!(
            error.to_string(),
            "KPL user record 2: explicit hash key index 2 out of range (the aggregate has 0 explicit hash keys)"
        );
    }

    #[test]
    fn huge_index_does_not_panic() {
        let data = aggregate(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![record(u64::MAX, Some(u64::MAX), b"{}")],
        });
        assert!(opened(&data).user_records().all(|(_, r)| r.is_err()));
    }

    #[test]
    fn magic_without_room_for_a_protobuf_is_not_aggregated() {
        // Magic + MD5 of nothing: 20 bytes, the official de-aggregators pass it through.
        let empty = frame(b"");
        assert_eq!(empty.len(), 20);
        assert!(matches!(deaggregate(&empty), Deaggregated::NotAggregated));
        assert!(matches!(
            deaggregate(&KPL_MAGIC),
            Deaggregated::NotAggregated
        ));
        assert!(matches!(
            deaggregate(&KPL_MAGIC[..2]),
            Deaggregated::NotAggregated
        ));
        // One protobuf byte more and it is an aggregate (here: a broken one).
        let mut short = KPL_MAGIC.to_vec();
        short.extend_from_slice(&[0u8; 17]);
        assert!(matches!(deaggregate(&short), Deaggregated::Invalid(_)));
    }

    #[test]
    fn plain_payloads_are_not_aggregated() {
        assert!(matches!(
            deaggregate(br#"{"a":1}"#),
            Deaggregated::NotAggregated
        ));
        assert!(matches!(deaggregate(b""), Deaggregated::NotAggregated));
        let mut almost = KPL_MAGIC.to_vec();
        almost[3] = 0;
        almost.extend_from_slice(&[0u8; 40]);
        assert!(matches!(deaggregate(&almost), Deaggregated::NotAggregated));
    }

    #[test]
    fn empty_aggregate_has_no_user_records() {
        let data = aggregate(&AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![],
        });
        assert_eq!(opened(&data).user_records().count(), 0);
    }
}
