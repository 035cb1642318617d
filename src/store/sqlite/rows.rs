//! Row ↔ record conversions. A row that fails to convert is reported as `Corrupt`, never
//! silently skipped.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;

use super::db;
use crate::store::*;

pub(super) type RowResult<T> = rusqlite::Result<StoreResult<T>>;

pub(super) fn to_text(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A time stored as integer microseconds since the Unix epoch.
pub(super) fn from_micros(us: i64) -> StoreResult<Timestamp> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("time {us} µs is out of range")))
}

pub(super) fn parse_time(text: &str) -> StoreResult<Timestamp> {
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
            label: r.get(1).map_err(StoreError::backend)?,
            description: r.get(2).map_err(StoreError::backend)?,
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

/// An event's columns; `seq` (0) and `stream` (2) are read by position elsewhere (cdp.rs).
/// The Kinesis origin (5–10, see migration 0005) is NULL throughout for collected events.
pub(super) const EVENT_COLUMNS: &str = "seq, event_id, stream, fields, stored_at, \
     kinesis_stream, shard_id, sequence_number, sub_sequence_number, partition_key, arrival_ns";

/// The origin columns of one event, in the order of `EVENT_COLUMNS` from `kinesis_stream` on,
/// for `INSERT`: all NULL without an origin.
pub(super) type OriginColumns<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
    Option<i64>,
);

pub(super) fn origin_columns(origin: Option<&KinesisOrigin>) -> OriginColumns<'_> {
    match origin {
        None => (None, None, None, None, None, None),
        Some(o) => (
            Some(&o.stream),
            Some(&o.shard_id),
            Some(&o.sequence_number),
            // Stored as its bits, like checkpoints' (a position in a KPL aggregate: small).
            Some(o.sub_sequence_number as i64),
            Some(&o.partition_key),
            // Nanoseconds, as the SDK gives them; a time outside 1677–2262 (none from Kinesis) is
            // dropped.
            o.approximate_arrival_timestamp
                .and_then(|t| t.timestamp_nanos_opt()),
        ),
    }
}

pub(super) fn event_from_row(r: &Row<'_>) -> RowResult<StoredEvent> {
    let (seq, event_id, stream) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let fields: String = r.get(3)?;
    let stored_at: String = r.get(4)?;
    let origin = match r.get::<_, Option<String>>(5)? {
        None => None,
        Some(kinesis_stream) => Some(KinesisOrigin {
            stream: kinesis_stream,
            shard_id: r.get(6)?,
            sequence_number: r.get(7)?,
            sub_sequence_number: r.get::<_, i64>(8)? as u64,
            partition_key: r.get(9)?,
            approximate_arrival_timestamp: r
                .get::<_, Option<i64>>(10)?
                .map(DateTime::from_timestamp_nanos),
        }),
    };
    Ok((|| {
        Ok(StoredEvent {
            seq,
            event_id,
            stream,
            fields: parse_json("event fields", &fields)?,
            origin,
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

/// Every row of a query, or the first failure.
pub(super) fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<StoreResult<T>>>,
) -> StoreResult<Vec<T>> {
    rows.map(|r| r.map_err(db)?).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{database_before, SqliteStore};
    use super::*;

    fn origin(sequence_number: &str, arrival: Option<&str>) -> KinesisOrigin {
        KinesisOrigin {
            stream: "clicks \"eu\"".into(),
            shard_id: "shardId-000000000003".into(),
            sequence_number: sequence_number.into(),
            sub_sequence_number: 7,
            partition_key: "user-é\n1".into(),
            approximate_arrival_timestamp: arrival.map(|t| parse_time(t).unwrap()),
        }
    }

    /// Origins as the SDK gives them: nanoseconds with the float's error, whole milliseconds,
    /// whole seconds, none, and no origin at all.
    fn origins() -> Vec<Option<KinesisOrigin>> {
        vec![
            Some(origin("1", Some("2023-11-14T22:13:20.122999906Z"))),
            Some(origin("2", Some("2023-11-14T22:13:20.456Z"))),
            Some(origin("3", Some("2024-02-29T12:00:00Z"))),
            Some(origin("4", Some("1969-12-31T23:59:59.5Z"))),
            Some(origin("5", None)),
            None,
        ]
    }

    fn event(n: usize, origin: Option<KinesisOrigin>) -> NewEvent {
        NewEvent {
            event_id: format!("e{n}"),
            fields: EventFields::from_checked_object_text(&format!(r#"{{"n":{n}}}"#)),
            origin,
        }
    }

    async fn stored_origins(store: &SqliteStore) -> Vec<Option<KinesisOrigin>> {
        let mut events = store.list_events("web", 100, None).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.origin).collect()
    }

    #[tokio::test]
    async fn event_origins_round_trip_to_the_nanosecond() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let events = origins().into_iter().enumerate().map(|(n, o)| event(n, o));
        store.append_events("web", events.collect()).await.unwrap();
        assert_eq!(stored_origins(&store).await, origins());
    }

    #[tokio::test]
    async fn origins_stored_as_json_before_0005_read_the_same_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = database_before(&path, "ADD COLUMN kinesis_stream");
            // As insert_events wrote them then.
            for (n, o) in origins().iter().enumerate() {
                conn.execute(
                    "INSERT INTO events (event_id, stream, fields, origin, stored_at)
                     VALUES (?1, 'web', '{}', ?2, '2026-01-01T00:00:00.000000Z')",
                    rusqlite::params![
                        format!("e{n}"),
                        o.as_ref().map(|o| serde_json::to_string(o).unwrap())
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(stored_origins(&store).await, origins());
    }
}
