//! Row ↔ record conversions. A row that fails to convert is reported as `Corrupt`, never
//! silently skipped.

use chrono::{DateTime, DurationRound, TimeDelta};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use super::{db, execute};
use crate::store::*;

/// Column `idx` of `row` (a type mismatch is a bug in this backend: reported as the driver's).
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(db)
}

/// `t` as PostgreSQL keeps it (microseconds), for values returned to the caller as stored.
pub(super) fn to_stored_precision(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) const AUTH_COLUMNS: &str =
    "id, label, description, method, access_key_id, secret_sealed, role_arn, external_id, created_at";

pub(super) fn authorization_from_row(r: &Row) -> StoreResult<Authorization> {
    let id: String = get(r, 0)?;
    let method: &str = get(r, 3)?;
    let credentials = match method {
        "aws_keys" => Credentials::AwsKeys {
            access_key_id: get::<Option<String>>(r, 4)?.unwrap_or_default(),
            sealed_secret_access_key: get::<Option<Vec<u8>>>(r, 5)?.unwrap_or_default(),
        },
        "aws_role" => Credentials::AwsRole {
            role_arn: get::<Option<String>>(r, 6)?.unwrap_or_default(),
            external_id: get::<Option<String>>(r, 7)?.unwrap_or_default(),
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "authorization {id} has unknown method {other:?}"
            )))
        }
    };
    Ok(Authorization {
        label: get(r, 1)?,
        description: get(r, 2)?,
        credentials,
        created_at: get(r, 8)?,
        id,
    })
}

pub(super) const JOB_COLUMNS: &str =
    "id, job_type, label, description, authorization_id, config, state, last_error, \
     records_in, events_out, dead_letters, created_at, updated_at";

pub(super) fn job_from_row(r: &Row) -> StoreResult<Job> {
    let id: String = get(r, 0)?;
    let job_type: &str = get(r, 1)?;
    let state: &str = get(r, 6)?;
    Ok(Job {
        job_type: JobType::parse(job_type).ok_or_else(|| {
            StoreError::Corrupt(format!("job {id} has unknown type {job_type:?}"))
        })?,
        state: JobState::parse(state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} has unknown state {state:?}")))?,
        config: parse_json("job config", get(r, 5)?)?,
        label: get(r, 2)?,
        description: get(r, 3)?,
        authorization_id: get(r, 4)?,
        last_error: get(r, 7)?,
        totals: JobTotals {
            records_in: count(get(r, 8)?),
            events_out: count(get(r, 9)?),
            dead_letters: count(get(r, 10)?),
        },
        created_at: get(r, 11)?,
        updated_at: get(r, 12)?,
        id,
    })
}

/// A stored counter (never negative) as the `u64` the records carry.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A `u64` counter as the BIGINT it is stored in (saturating: no counter gets near 2^63).
pub(super) fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) const CHECKPOINT_COLUMNS: &str = "shard_id, parent_shard_ids, state, sequence_number, \
     sub_sequence_number, records, millis_behind_latest, start_position";

pub(super) fn checkpoint_from_row(r: &Row) -> StoreResult<ShardCheckpoint> {
    let shard_id: String = get(r, 0)?;
    let state: &str = get(r, 2)?;
    let start: &str = get(r, 7)?;
    Ok(ShardCheckpoint {
        parent_shard_ids: parse_json("parent shard ids", get(r, 1)?)?,
        state: ShardState::parse(state).ok_or_else(|| {
            StoreError::Corrupt(format!("shard {shard_id} has unknown state {state:?}"))
        })?,
        start_position: StartPosition::parse_text(start).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "shard {shard_id} has unknown start position {start:?}"
            ))
        })?,
        sequence_number: get(r, 3)?,
        // Stored as its bits (a position in a KPL aggregate: small).
        sub_sequence_number: get::<Option<i64>>(r, 4)?.map(|n| n as u64),
        records: count(get(r, 5)?),
        millis_behind_latest: get(r, 6)?,
        shard_id,
    })
}

/// An event's columns. `fields` (3) is NULL where a query leaves out the fields of events
/// nobody asked for (`events_after`). The Kinesis origin (5–10) is NULL for collected events.
pub(super) const EVENT_COLUMNS: &str = "seq, event_id, stream, fields, stored_at, \
     kinesis_stream, shard_id, sequence_number, sub_sequence_number, partition_key, arrival_ns";

pub(super) fn event_from_row(r: &Row) -> StoreResult<StoredEvent> {
    let seq: i64 = get(r, 0)?;
    let fields: Option<&str> = get(r, 3)?;
    let fields = fields.ok_or_else(|| StoreError::Corrupt(format!("event {seq} has no fields")))?;
    Ok(StoredEvent {
        seq,
        event_id: get(r, 1)?,
        stream: get(r, 2)?,
        fields: parse_json("event fields", fields)?,
        stored_at: get(r, 4)?,
        origin: origin_from_row(r)?,
    })
}

fn origin_from_row(r: &Row) -> StoreResult<Option<KinesisOrigin>> {
    let Some(stream) = get::<Option<String>>(r, 5)? else {
        return Ok(None);
    };
    Ok(Some(KinesisOrigin {
        stream,
        shard_id: get(r, 6)?,
        sequence_number: get(r, 7)?,
        sub_sequence_number: get::<i64>(r, 8)? as u64,
        partition_key: get(r, 9)?,
        approximate_arrival_timestamp: get::<Option<i64>>(r, 10)?
            .map(DateTime::from_timestamp_nanos),
    }))
}

pub(super) const DEAD_LETTER_COLUMNS: &str =
    "id, job_id, shard_id, sequence_number, sub_sequence_number, position, \
     partition_key, reason, raw, created_at";

pub(super) fn dead_letter_from_row(r: &Row) -> StoreResult<DeadLetter> {
    let sub: i64 = get(r, 4)?;
    let position: i64 = get(r, 5)?;
    Ok(DeadLetter {
        id: get(r, 0)?,
        job_id: get(r, 1)?,
        letter: NewDeadLetter {
            shard_id: get(r, 2)?,
            sequence_number: get(r, 3)?,
            sub_sequence_number: u64::try_from(sub).ok(),
            position: u32::try_from(position)
                .map_err(|_| StoreError::Corrupt(format!("dead letter position {position}")))?,
            partition_key: get(r, 6)?,
            reason: get(r, 7)?,
            raw: get(r, 8)?,
        },
        created_at: get(r, 9)?,
    })
}

pub(super) fn stream_from_row(r: &Row) -> StoreResult<StreamSummary> {
    Ok(StreamSummary {
        name: get(r, 0)?,
        events: count(get(r, 1)?),
        last_event_at: get(r, 2)?,
    })
}

/// Every row converted, or the first failure.
pub(super) fn collect<T>(rows: &[Row], convert: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(convert).collect()
}

/// Dead letters as the columns of one `UNNEST` insert (shared by import and export commits).
pub(super) struct DeadLetterColumns<'a> {
    pub shard_ids: Vec<&'a str>,
    pub sequence_numbers: Vec<&'a str>,
    /// -1 for none: the column is part of the unique key, where NULLs never collide.
    pub sub_sequence_numbers: Vec<i64>,
    pub positions: Vec<i64>,
    pub partition_keys: Vec<&'a str>,
    pub reasons: Vec<&'a str>,
    pub raws: Vec<&'a [u8]>,
}

impl<'a> DeadLetterColumns<'a> {
    pub fn of(letters: &'a [NewDeadLetter]) -> Self {
        Self {
            shard_ids: letters.iter().map(|d| d.shard_id.as_str()).collect(),
            sequence_numbers: letters.iter().map(|d| d.sequence_number.as_str()).collect(),
            sub_sequence_numbers: letters
                .iter()
                .map(|d| d.sub_sequence_number.map_or(-1, |n| n as i64))
                .collect(),
            positions: letters.iter().map(|d| i64::from(d.position)).collect(),
            partition_keys: letters.iter().map(|d| d.partition_key.as_str()).collect(),
            reasons: letters.iter().map(|d| d.reason.as_str()).collect(),
            raws: letters.iter().map(|d| d.raw.as_slice()).collect(),
        }
    }
}

/// Inserts dead letters of `job_id` (a replay's are skipped); returns how many were new.
pub(super) async fn insert_dead_letters(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: &str,
    letters: &[NewDeadLetter],
    now: &Timestamp,
) -> StoreResult<u64> {
    if letters.is_empty() {
        return Ok(0);
    }
    let c = DeadLetterColumns::of(letters);
    execute(
        tx,
        "INSERT INTO dead_letters (job_id, shard_id, sequence_number, sub_sequence_number,
             position, partition_key, reason, raw, created_at)
         SELECT $1::text, u.*, $2::timestamptz
           FROM UNNEST($3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::text[],
                       $9::bytea[]) AS u
         ON CONFLICT DO NOTHING",
        &[
            &job_id,
            now,
            &c.shard_ids,
            &c.sequence_numbers,
            &c.sub_sequence_numbers,
            &c.positions,
            &c.partition_keys,
            &c.reasons,
            &c.raws,
        ],
    )
    .await
}

/// Adds to a job's counters (in the transaction that did what they count).
pub(super) async fn add_job_totals(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: &str,
    totals: JobTotals,
    now: &Timestamp,
) -> StoreResult<()> {
    execute(
        tx,
        "UPDATE jobs SET records_in = records_in + $2, events_out = events_out + $3,
                         dead_letters = dead_letters + $4, updated_at = $5
          WHERE id = $1",
        &[
            &job_id,
            &bigint(totals.records_in),
            &bigint(totals.events_out),
            &bigint(totals.dead_letters),
            now,
        ],
    )
    .await?;
    Ok(())
}
