//! The event log in PostgreSQL. `events.seq` is numbered from the log's head in `log_heads`,
//! locked until commit as the last step of the writing transaction (see `positions`), so
//! positions become visible in order (the `EventLog` contract) and have no gaps.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::positions::{lock_head, Log};
use super::rows::*;
use super::{db, limit, query, query_one, PostgresStore};
use crate::store::*;

#[async_trait]
impl EventLog for PostgresStore {
    async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let inserted = insert_events(&tx, stream, &events, &Utc::now()).await?;
        tx.commit().await.map_err(db)?;
        Ok(inserted)
    }

    async fn list_events(
        &self,
        stream: &str,
        page: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream = $1 AND seq < $2
              ORDER BY seq DESC LIMIT $3"
        );
        let before = before.unwrap_or(i64::MAX);
        let rows = query(&client, &sql, &[&stream, &before, &limit(page)]).await?;
        collect(&rows, event_from_row)
    }

    async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>> {
        let client = self.client().await?;
        let sql = "SELECT name, events, last_event_at FROM streams ORDER BY name";
        collect(&query(&client, sql, &[]).await?, stream_from_row)
    }

    async fn events_after(
        &self,
        after_seq: i64,
        page: u32,
        streams: Vec<String>,
    ) -> StoreResult<EventsPage> {
        let client = self.client().await?;
        if streams.is_empty() {
            // No stream is wanted (no mappings): everything up to the newest is passed over at
            // once. Positions have no gaps, so the distance is the number of events.
            let sql = "SELECT MAX(seq) FROM events WHERE seq > $1";
            let last: Option<i64> = get(&query_one(&client, sql, &[&after_seq]).await?, 0)?;
            return Ok(EventsPage {
                events: Vec::new(),
                scanned: last.map_or(0, |l| usize::try_from(l - after_seq).unwrap_or(0)),
                last_seq: last,
            });
        }
        // The fields of other streams' events stay in the database: only wanted events pay
        // for sending and parsing them.
        let sql = "SELECT seq, event_id, stream, CASE WHEN stream = ANY($3) THEN fields END,
                          stored_at, kinesis_stream, shard_id, sequence_number,
                          sub_sequence_number, partition_key, arrival_ns
                     FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
        let rows = query(&client, sql, &[&after_seq, &limit(page), &streams]).await?;
        let wanted: HashSet<&str> = streams.iter().map(String::as_str).collect();
        let mut page = EventsPage {
            scanned: rows.len(),
            ..EventsPage::default()
        };
        for row in &rows {
            page.last_seq = Some(get(row, 0)?);
            if wanted.contains(get::<&str>(row, 2)?) {
                page.events.push(event_from_row(row)?);
            }
        }
        Ok(page)
    }

    async fn count_events(&self, after: i64, upto: i64) -> StoreResult<u64> {
        let client = self.client().await?;
        let sql = "SELECT COUNT(*) FROM events WHERE seq > $1 AND seq <= $2";
        Ok(count(get(
            &query_one(&client, sql, &[&after, &upto]).await?,
            0,
        )?))
    }

    async fn max_event_seq(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        get(&query_one(&client, MAX_EVENT_SEQ, &[]).await?, 0)
    }
}

/// The newest position of the event log (0 when it is empty).
pub(super) const MAX_EVENT_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM events";

/// The first event of each id, in order: a batch that repeats an id stores it once, as a
/// replay of it would.
fn distinct_by_id(events: &[NewEvent]) -> Vec<&NewEvent> {
    let mut seen = HashSet::with_capacity(events.len());
    events
        .iter()
        .filter(|e| seen.insert(e.event_id.as_str()))
        .collect()
}

/// The ids among `$1` already stored (a replayed page's).
const STORED_EVENT_IDS: &str = "SELECT event_id FROM events WHERE event_id = ANY($1::text[])";

/// The new events' rows, numbered by the caller after the head it locked. `COPY` rather than
/// an `INSERT … SELECT`: the server writes the heap in multi-row batches (one WAL record per
/// page instead of one per row) and parses no arrays; measured in `bench/README.md`.
const COPY_EVENTS: &str = "
COPY events (seq, event_id, stream, fields, stored_at, kinesis_stream, shard_id,
             sequence_number, sub_sequence_number, partition_key, arrival_ns)
FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_EVENTS`], in its order.
const EVENT_COLUMN_TYPES: [Type; 11] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
];

/// Moves the head to `$1` and keeps the stream `$3`'s summary in step with `$4` new events.
const MOVE_HEAD: &str = "
WITH head AS (
    UPDATE log_heads SET last_seq = $1 WHERE log = $2
)
INSERT INTO streams (name, events, last_event_at) VALUES ($3, $4, $5)
ON CONFLICT (name) DO UPDATE
    SET events = streams.events + excluded.events, last_event_at = excluded.last_event_at";

/// Appends `events` to `stream` inside `tx`, skipping ids already stored; returns how many were
/// new. Takes the event log's lock until `tx` commits: call it after the transaction's other
/// writes.
///
/// The stored ids are looked up under the lock, in a statement after the one that took it (so
/// with a snapshot that sees the previous writer's rows): no other writer can be inserting,
/// so the check is exact and the numbers stay dense.
pub(super) async fn insert_events(
    tx: &Transaction<'_>,
    stream: &str,
    events: &[NewEvent],
    now: &Timestamp,
) -> StoreResult<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut events = distinct_by_id(events);
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    // Prepared before the lock: a connection's first use parses them while others may append.
    let stored_ids = tx.prepare_cached(STORED_EVENT_IDS).await.map_err(db)?;
    let copy = tx.prepare_cached(COPY_EVENTS).await.map_err(db)?;
    let move_head = tx.prepare_cached(MOVE_HEAD).await.map_err(db)?;
    let head = lock_head(tx, Log::Events).await?;
    let stored = tx.query(&stored_ids, &[&ids]).await.map_err(db)?;
    if !stored.is_empty() {
        let stored: HashSet<&str> = stored
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<_>>()?;
        events.retain(|e| !stored.contains(e.event_id.as_str()));
        if events.is_empty() {
            return Ok(0);
        }
    }
    let sink = tx.copy_in(&copy).await.map_err(db)?;
    let writer = BinaryCopyInWriter::new(sink, &EVENT_COLUMN_TYPES);
    futures::pin_mut!(writer);
    for (seq, e) in (head + 1..).zip(&events) {
        let origin = e.origin.as_ref();
        writer
            .as_mut()
            .write(&[
                &seq,
                &e.event_id.as_str(),
                &stream,
                &e.fields.as_str(),
                now,
                &origin.map(|o| o.stream.as_str()),
                &origin.map(|o| o.shard_id.as_str()),
                &origin.map(|o| o.sequence_number.as_str()),
                // Stored as its bits, like checkpoints' (a position in a KPL aggregate: small).
                &origin.map(|o| o.sub_sequence_number as i64),
                &origin.map(|o| o.partition_key.as_str()),
                // Nanoseconds, as the SDK gives them; a time outside 1677–2262 (none from
                // Kinesis) is dropped.
                &origin
                    .and_then(|o| o.approximate_arrival_timestamp)
                    .and_then(|t| t.timestamp_nanos_opt()),
            ])
            .await
            .map_err(db)?;
    }
    let written = writer.finish().await.map_err(db)?;
    let n = i64::try_from(written).unwrap_or(i64::MAX);
    tx.execute(
        &move_head,
        &[&(head + n), &Log::Events.key(), &stream, &n, now],
    )
    .await
    .map_err(db)?;
    Ok(written)
}
