//! AWS SDK clients pointed at a peer, and test helpers built on them.
//! Setup helpers panic with context on any error: they are for arranging tests, not for
//! exercising error paths (call the SDK directly for that).

use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;

use super::{wait_for, wait_until};

pub const TEST_ACCESS_KEY_ID: &str = "AKIDTEST";
pub const TEST_SECRET_ACCESS_KEY: &str = "secret";
pub const TEST_REGION: &str = "us-east-1";

/// How long stream state changes (create, split, merge, delete) may take on a loaded machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// PutRecords' own limit.
const PUT_RECORDS_MAX: usize = 500;

/// `(shard_id, sequence_number, partition_key, data)` as returned by [`read_all`].
pub type ReadRecord = (String, String, String, Vec<u8>);

/// A Kinesis client for `endpoint` with static test credentials, us-east-1, SDK default retries.
pub fn kinesis_client(endpoint: &str) -> Client {
    kinesis_client_with(endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None)
}

/// Like [`kinesis_client`] but every call is made once: the test sees each injected fault.
pub fn kinesis_client_no_retry(endpoint: &str) -> Client {
    kinesis_client_with(
        endpoint,
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        Some(RetryConfig::disabled()),
    )
}

/// A Kinesis client signing with the given keys (e.g. from [`super::Moto::create_user_with_policy`]).
pub fn kinesis_client_as(endpoint: &str, access_key_id: &str, secret: &str) -> Client {
    kinesis_client_with(
        endpoint,
        access_key_id,
        secret,
        Some(RetryConfig::disabled()),
    )
}

fn kinesis_client_with(
    endpoint: &str,
    access_key_id: &str,
    secret: &str,
    retry: Option<RetryConfig>,
) -> Client {
    let mut config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "tests"))
        .endpoint_url(endpoint);
    if let Some(retry) = retry {
        config = config.retry_config(retry);
    }
    Client::from_conf(config.build())
}

/// An STS client for `endpoint` with the static test credentials (no retries).
pub fn sts_client(endpoint: &str) -> aws_sdk_sts::Client {
    sts_client_as(endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
}

/// An STS client for `endpoint` signing with the given keys (no retries).
pub fn sts_client_as(endpoint: &str, access_key_id: &str, secret: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(TEST_REGION))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            access_key_id,
            secret,
            None,
            None,
            "tests",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// Creates a stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {stream}: {e:?}"));
    wait_stream_active(client, stream).await;
}

/// Polls DescribeStreamSummary until the stream is ACTIVE (tests may use any API).
pub async fn wait_stream_active(client: &Client, stream: &str) {
    wait_until(
        STATE_TIMEOUT,
        &format!("stream {stream} is ACTIVE"),
        || async {
            match client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
            {
                Ok(out) => out
                    .stream_description_summary()
                    .is_some_and(|s| s.stream_status() == &StreamStatus::Active),
                Err(_) => false,
            }
        },
    )
    .await;
}

/// Deletes a stream and waits until it is gone.
pub async fn delete_stream(client: &Client, stream: &str) {
    client
        .delete_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteStream {stream}: {e:?}"));
    wait_until(
        STATE_TIMEOUT,
        &format!("stream {stream} is deleted"),
        || async {
            match client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
            {
                Err(e) => e
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()),
                Ok(_) => false,
            }
        },
    )
    .await;
}

/// Puts records (in calls of at most 500) and returns `(shard_id, sequence_number)` per record,
/// in order. Panics when any entry fails.
pub async fn put_records<K, V>(
    client: &Client,
    stream: &str,
    records: &[(K, V)],
) -> Vec<(String, String)>
where
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    let mut placed = Vec::with_capacity(records.len());
    for chunk in records.chunks(PUT_RECORDS_MAX) {
        let entries = chunk
            .iter()
            .map(|(pk, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(pk.as_ref())
                    .data(Blob::new(data.as_ref()))
                    .build()
                    .expect("PutRecordsRequestEntry")
            })
            .collect::<Vec<_>>();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords {stream}: {e:?}"));
        assert_eq!(
            out.failed_record_count().unwrap_or(0),
            0,
            "PutRecords {stream}: some entries failed: {:?}",
            out.records()
        );
        for entry in out.records() {
            placed.push((
                entry.shard_id().unwrap_or_default().to_string(),
                entry.sequence_number().unwrap_or_default().to_string(),
            ));
        }
    }
    placed
}

/// All shards of a stream, open and closed. Follows NextToken only when the peer returns one
/// (kinesalite never does, and crashes when sent one).
pub async fn list_shards(client: &Client, stream: &str) -> Vec<Shard> {
    let mut shards = Vec::new();
    let mut out = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListShards {stream}: {e:?}"));
    loop {
        shards.extend_from_slice(out.shards());
        match out.next_token() {
            Some(token) if !token.is_empty() => {
                out = client
                    .list_shards()
                    .next_token(token)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("ListShards {stream} (NextToken): {e:?}"));
            }
            _ => return shards,
        }
    }
}

/// Reads every shard from TRIM_HORIZON until it is closed (no next iterator) or a read
/// returns nothing. Records come shard by shard, in `list_shards` order, in sequence order
/// within a shard.
pub async fn read_all(client: &Client, stream: &str) -> Vec<ReadRecord> {
    let mut records = Vec::new();
    for shard in list_shards(client, stream).await {
        let shard_id = shard.shard_id().to_string();
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetShardIterator {stream}/{shard_id}: {e:?}"))
            .shard_iterator()
            .map(str::to_string);
        while let Some(it) = iterator {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetRecords {stream}/{shard_id}: {e:?}"));
            for r in out.records() {
                records.push((
                    shard_id.clone(),
                    r.sequence_number().to_string(),
                    r.partition_key().unwrap_or_default().to_string(),
                    r.data().as_ref().to_vec(),
                ));
            }
            if out.records().is_empty() {
                break;
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
    }
    records
}

/// Splits `shard_id` at `new_starting_hash_key` and waits until the stream is ACTIVE again.
pub async fn split_shard(
    client: &Client,
    stream: &str,
    shard_id: &str,
    new_starting_hash_key: &str,
) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard_id)
        .new_starting_hash_key(new_starting_hash_key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SplitShard {stream}/{shard_id}: {e:?}"));
    wait_stream_active(client, stream).await;
    wait_shard_closed(client, stream, shard_id).await;
}

/// Splits `shard_id` at the middle of its hash key range; returns the starting hash key used.
pub async fn split_shard_in_half(client: &Client, stream: &str, shard_id: &str) -> String {
    let shard = list_shards(client, stream)
        .await
        .into_iter()
        .find(|s| s.shard_id() == shard_id)
        .unwrap_or_else(|| panic!("no shard {shard_id} in {stream}"));
    let range = shard.hash_key_range().expect("hash key range");
    let start: u128 = range
        .starting_hash_key()
        .parse()
        .expect("starting hash key");
    let end: u128 = range.ending_hash_key().parse().expect("ending hash key");
    let middle = (start + (end - start) / 2 + 1).to_string();
    split_shard(client, stream, shard_id, &middle).await;
    middle
}

/// Merges two adjacent shards and waits until the stream is ACTIVE again.
pub async fn merge_shards(client: &Client, stream: &str, shard_id: &str, adjacent_shard_id: &str) {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(shard_id)
        .adjacent_shard_to_merge(adjacent_shard_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("MergeShards {stream}/{shard_id}+{adjacent_shard_id}: {e:?}"));
    wait_stream_active(client, stream).await;
    wait_shard_closed(client, stream, shard_id).await;
}

/// Waits until a shard has an ending sequence number (is closed).
async fn wait_shard_closed(client: &Client, stream: &str, shard_id: &str) {
    wait_for(
        STATE_TIMEOUT,
        &format!("shard {shard_id} of {stream} to close"),
        || async {
            list_shards(client, stream)
                .await
                .into_iter()
                .find(|s| s.shard_id() == shard_id)
                .and_then(|s| {
                    s.sequence_number_range()
                        .and_then(|r| r.ending_sequence_number().map(|_| ()))
                })
        },
    )
    .await
}
