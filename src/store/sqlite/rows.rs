//! Row ↔ record conversions. A row that fails to convert is reported as `Corrupt`, never
//! silently skipped.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;

use crate::store::*;

pub(super) type RowResult<T> = rusqlite::Result<StoreResult<T>>;

pub(super) fn to_text(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> StoreResult<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) const AUTH_COLUMNS: &str =
    "id, label, description, method, access_key_id, secret_sealed, role_arn, external_id, created_at";

pub(super) fn authorization_from_row(r: &Row<'_>) -> RowResult<Authorization> {
    let id: String = r.get(0)?;
    let method: String = r.get(3)?;
    let credentials = match method.as_str() {
        "aws_keys" => Credentials::AwsKeys {
            access_key_id: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            sealed_secret_access_key: r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default(),
        },
        "aws_role" => Credentials::AwsRole {
            role_arn: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            external_id: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        },
        other => {
            return Ok(Err(StoreError::Corrupt(format!(
                "authorization {id} has unknown method {other:?}"
            ))))
        }
    };
    let created_at: String = r.get(8)?;
    Ok((|| {
        Ok(Authorization {
            label: r.get(1).map_err(|e| StoreError::Backend(e.to_string()))?,
            description: r.get(2).map_err(|e| StoreError::Backend(e.to_string()))?,
            credentials,
            created_at: parse_time(&created_at)?,
            id,
        })
    })())
}

pub(super) const JOB_COLUMNS: &str =
    "id, job_type, label, description, authorization_id, config, state, last_error, \
     records_in, events_out, dead_letters, created_at, updated_at";

pub(super) fn job_from_row(r: &Row<'_>) -> RowResult<Job> {
    let id: String = r.get(0)?;
    let job_type: String = r.get(1)?;
    let config: String = r.get(5)?;
    let state: String = r.get(6)?;
    let created_at: String = r.get(11)?;
    let updated_at: String = r.get(12)?;
    let (label, description, authorization_id, last_error) =
        (r.get(2)?, r.get(3)?, r.get(4)?, r.get(7)?);
    let totals = JobTotals {
        records_in: r.get::<_, i64>(8)? as u64,
        events_out: r.get::<_, i64>(9)? as u64,
        dead_letters: r.get::<_, i64>(10)? as u64,
    };
    Ok((|| {
        Ok(Job {
            job_type: JobType::parse(&job_type).ok_or_else(|| {
                StoreError::Corrupt(format!("job {id} has unknown type {job_type:?}"))
            })?,
            state: JobState::parse(&state).ok_or_else(|| {
                StoreError::Corrupt(format!("job {id} has unknown state {state:?}"))
            })?,
            config: parse_json("job config", &config)?,
            created_at: parse_time(&created_at)?,
            updated_at: parse_time(&updated_at)?,
            label,
            description,
            authorization_id,
            last_error,
            totals,
            id,
        })
    })())
}

pub(super) const CHECKPOINT_COLUMNS: &str =
    "shard_id, parent_shard_ids, state, sequence_number, sub_sequence_number, records, millis_behind_latest, start_position";

pub(super) fn checkpoint_from_row(r: &Row<'_>) -> RowResult<ShardCheckpoint> {
    let shard_id: String = r.get(0)?;
    let parents: String = r.get(1)?;
    let state: String = r.get(2)?;
    let sequence_number: Option<String> = r.get(3)?;
    let sub_sequence_number = r.get::<_, Option<i64>>(4)?.map(|n| n as u64);
    let records = r.get::<_, i64>(5)? as u64;
    let millis_behind_latest = r.get(6)?;
    let start: String = r.get(7)?;
    Ok((|| {
        Ok(ShardCheckpoint {
            parent_shard_ids: parse_json("parent shard ids", &parents)?,
            state: ShardState::parse(&state).ok_or_else(|| {
                StoreError::Corrupt(format!("shard {shard_id} has unknown state {state:?}"))
            })?,
            start_position: StartPosition::parse_text(&start).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "shard {shard_id} has unknown start position {start:?}"
                ))
            })?,
            shard_id,
            sequence_number,
            sub_sequence_number,
            records,
            millis_behind_latest,
        })
    })())
}

pub(super) const EVENT_COLUMNS: &str = "seq, event_id, stream, fields, origin, stored_at";

pub(super) fn event_from_row(r: &Row<'_>) -> RowResult<StoredEvent> {
    let (seq, event_id, stream) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let fields: String = r.get(3)?;
    let origin: Option<String> = r.get(4)?;
    let stored_at: String = r.get(5)?;
    Ok((|| {
        Ok(StoredEvent {
            seq,
            event_id,
            stream,
            fields: parse_json("event fields", &fields)?,
            origin: origin
                .as_deref()
                .map(|o| parse_json("event origin", o))
                .transpose()?,
            stored_at: parse_time(&stored_at)?,
        })
    })())
}

pub(super) fn stream_from_row(r: &Row<'_>) -> RowResult<StreamSummary> {
    let name = r.get(0)?;
    let events = r.get::<_, i64>(1)? as u64;
    let last: Option<String> = r.get(2)?;
    Ok((|| {
        Ok(StreamSummary {
            name,
            events,
            last_event_at: last.as_deref().map(parse_time).transpose()?,
        })
    })())
}

pub(super) const DEAD_LETTER_COLUMNS: &str =
    "id, job_id, shard_id, sequence_number, sub_sequence_number, position, \
     partition_key, reason, raw, created_at";

pub(super) fn dead_letter_from_row(r: &Row<'_>) -> RowResult<DeadLetter> {
    let sub: i64 = r.get(4)?;
    let created_at: String = r.get(9)?;
    let letter = NewDeadLetter {
        shard_id: r.get(2)?,
        sequence_number: r.get(3)?,
        sub_sequence_number: (sub >= 0).then_some(sub as u64),
        position: r.get(5)?,
        partition_key: r.get(6)?,
        reason: r.get(7)?,
        raw: r.get(8)?,
    };
    let (id, job_id) = (r.get(0)?, r.get(1)?);
    Ok((|| {
        Ok(DeadLetter {
            id,
            job_id,
            letter,
            created_at: parse_time(&created_at)?,
        })
    })())
}
