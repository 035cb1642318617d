//! One small function per Kinesis call Tributary makes. Nothing else talks to the SDK, so the
//! IAM actions Tributary needs are exactly the functions in this file.

use aws_sdk_kinesis::Client;

use crate::aws::AwsError;

/// `kinesis:ListStreams`, all pages. Besides `NextToken`, pages by `ExclusiveStartStreamName`
/// when a service (or an emulator) says `HasMoreStreams` without a token.
pub async fn list_streams(client: &Client) -> Result<Vec<String>, AwsError> {
    let mut names: Vec<String> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut req = client.list_streams().limit(100);
        match &next_token {
            Some(token) => req = req.next_token(token),
            None => {
                if let Some(last) = names.last() {
                    req = req.exclusive_start_stream_name(last);
                }
            }
        }
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kinesis:ListStreams", &e))?;
        let page_len = out.stream_names.len();
        names.extend(out.stream_names);
        next_token = out.next_token;
        if !out.has_more_streams || page_len == 0 {
            break;
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// Set once the shard is closed (split or merged); reading it then ends.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    pub fn parents(&self) -> Vec<String> {
        self.parent_shard_id
            .iter()
            .chain(&self.adjacent_parent_shard_id)
            .cloned()
            .collect()
    }
}

/// `kinesis:ListShards`, all pages. The first call names the stream; follow-up calls send only
/// `NextToken`, as AWS requires.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, AwsError> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let req = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("kinesis:ListShards", &e))?;
        shards.extend(out.shards.unwrap_or_default().into_iter().map(|s| {
            ShardInfo {
                ending_sequence_number: s
                    .sequence_number_range
                    .as_ref()
                    .and_then(|r| r.ending_sequence_number.clone()),
                shard_id: s.shard_id,
                parent_shard_id: s.parent_shard_id,
                adjacent_parent_shard_id: s.adjacent_parent_shard_id,
            }
        }));
        next_token = out.next_token.filter(|t| !t.is_empty());
        if next_token.is_none() {
            return Ok(shards);
        }
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    AtTimestamp(chrono::DateTime<chrono::Utc>),
    AfterSequence(String),
}

/// `kinesis:GetShardIterator`.
pub async fn get_shard_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &IteratorStart,
) -> Result<String, AwsError> {
    use aws_sdk_kinesis::types::ShardIteratorType as T;
    let req = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id);
    let req = match start {
        IteratorStart::TrimHorizon => req.shard_iterator_type(T::TrimHorizon),
        IteratorStart::Latest => req.shard_iterator_type(T::Latest),
        IteratorStart::AtTimestamp(t) => req.shard_iterator_type(T::AtTimestamp).timestamp(
            aws_smithy_types::DateTime::from_millis(t.timestamp_millis()),
        ),
        IteratorStart::AfterSequence(seq) => req
            .shard_iterator_type(T::AfterSequenceNumber)
            .starting_sequence_number(seq),
    };
    let out = req
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("kinesis:GetShardIterator", &e))?;
    out.shard_iterator.ok_or_else(|| {
        AwsError::new(
            crate::aws::AwsErrorKind::Transient,
            "kinesis:GetShardIterator returned no iterator; retrying",
        )
    })
}

/// One record as GetRecords returns it.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub approximate_arrival_timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

/// One GetRecords answer. `next_iterator == None` means the shard is closed and fully read.
#[derive(Debug, Clone)]
pub struct RecordsPage {
    pub records: Vec<KinesisRecord>,
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

/// Records asked of one GetRecords call. AWS allows 10,000, but a shard serves at most 2 MB/s
/// in at most 5 calls/s, so 2,500 per call keeps up with any record over ~160 bytes while a
/// page of ~1 KiB records holds 2.5 MiB instead of 10 (peak RSS 173 → 135 MiB in
/// bench/import.sh, same throughput).
pub const GET_RECORDS_LIMIT: i32 = 2_500;

/// `kinesis:GetRecords`.
pub async fn get_records(client: &Client, iterator: &str) -> Result<RecordsPage, AwsError> {
    let out = client
        .get_records()
        .shard_iterator(iterator)
        .limit(GET_RECORDS_LIMIT)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("kinesis:GetRecords", &e))?;
    let records = out
        .records
        .into_iter()
        .map(|r| KinesisRecord {
            approximate_arrival_timestamp: r
                .approximate_arrival_timestamp
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            sequence_number: r.sequence_number,
            partition_key: r.partition_key.unwrap_or_default(),
            data: r.data.into_inner(),
        })
        .collect();
    Ok(RecordsPage {
        records,
        next_iterator: out.next_shard_iterator.filter(|i| !i.is_empty()),
        millis_behind_latest: out.millis_behind_latest,
    })
}

/// The outcome of one entry of a PutRecords call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Accepted {
        shard_id: String,
        sequence_number: String,
    },
    /// Failed inside a successful call (e.g. `ProvisionedThroughputExceededException`,
    /// `InternalFailure`): only these entries are sent again.
    Failed { code: String, message: String },
}

/// `kinesis:PutRecords`. Returns one outcome per entry, in order.
pub async fn put_records(
    client: &Client,
    stream: &str,
    entries: &[(&str, &[u8])],
) -> Result<Vec<PutOutcome>, AwsError> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let records = entries
        .iter()
        .map(|(key, data)| {
            PutRecordsRequestEntry::builder()
                .partition_key(*key)
                .data(Blob::new(data.to_vec()))
                .build()
                .expect("partition key and data are set")
        })
        .collect::<Vec<_>>();
    let out = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(records))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("kinesis:PutRecords", &e))?;
    if out.records.len() != entries.len() {
        return Err(AwsError::new(
            crate::aws::AwsErrorKind::Transient,
            format!(
                "kinesis:PutRecords answered {} entries for {} records; retrying",
                out.records.len(),
                entries.len()
            ),
        ));
    }
    Ok(out
        .records
        .into_iter()
        .map(|r| match (r.error_code, r.shard_id, r.sequence_number) {
            (None, Some(shard_id), Some(sequence_number)) => PutOutcome::Accepted {
                shard_id,
                sequence_number,
            },
            (code, _, _) => PutOutcome::Failed {
                code: code.unwrap_or_else(|| "Unknown".into()),
                message: r.error_message.unwrap_or_default(),
            },
        })
        .collect())
}
