//! The event log in SQLite: `events.seq` is an INTEGER PRIMARY KEY assigned inside the one
//! writer's transaction, so positions become visible in order (the `EventLog` contract).

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::rows::*;
use super::{db, now_text, SqliteStore};
use crate::store::*;

#[async_trait]
impl EventLog for SqliteStore {
    async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64> {
        let stream = stream.to_owned();
        self.write(move |tx| insert_events(tx, &stream, &events, &now_text()))
            .await
    }

    async fn list_events(
        &self,
        stream: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params![stream, before.unwrap_or(i64::MAX), limit], event_from_row)
                .map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT name, events, last_event_at FROM streams ORDER BY name")
                .map_err(db)?;
            let rows = stmt.query_map([], stream_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
        streams: Vec<String>,
    ) -> StoreResult<EventsPage> {
        self.read(move |conn| {
            if streams.is_empty() {
                // No stream is wanted (no mappings): everything up to the newest is passed over
                // at once, without reading the rows.
                let last: Option<i64> = conn
                    .query_row(
                        "SELECT MAX(seq) FROM events WHERE seq > ?1",
                        [after_seq],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                return Ok(EventsPage {
                    events: Vec::new(),
                    scanned: last.map_or(0, |l| (l - after_seq) as usize),
                    last_seq: last,
                });
            }
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    super::rows::EVENT_COLUMNS
                ))
                .map_err(db)?;
            let mut rows = stmt.query(params![after_seq, limit]).map_err(db)?;
            let mut page = EventsPage::default();
            while let Some(row) = rows.next().map_err(db)? {
                page.scanned += 1;
                page.last_seq = Some(row.get(0).map_err(db)?);
                let stream: String = row.get(2).map_err(db)?;
                // Only wanted events pay for parsing their fields.
                if streams.contains(&stream) {
                    page.events
                        .push(super::rows::event_from_row(row).map_err(db)??);
                }
            }
            Ok(page)
        })
        .await
    }

    async fn count_events(&self, after: i64, upto: i64) -> StoreResult<u64> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT COUNT(*) FROM events WHERE seq > ?1 AND seq <= ?2")
                .and_then(|mut s| s.query_row([after, upto], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(db)
        })
        .await
    }

    async fn max_event_seq(&self) -> StoreResult<i64> {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
                .map_err(db)
        })
        .await
    }
}

/// Inserts events, skipping ids already stored (a replay), and keeps the stream's summary in
/// step. Returns how many were new.
pub(super) fn insert_events(
    tx: &Transaction<'_>,
    stream: &str,
    events: &[NewEvent],
    now: &str,
) -> StoreResult<u64> {
    let mut inserted = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (event_id, stream, fields, stored_at, kinesis_stream, shard_id,
                     sequence_number, sub_sequence_number, partition_key, arrival_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .map_err(db)?;
        for e in events {
            let (kinesis_stream, shard_id, sequence_number, sub, partition_key, arrival_ns) =
                origin_columns(e.origin.as_ref());
            inserted += stmt
                .execute(params![
                    e.event_id,
                    stream,
                    e.fields.as_str(),
                    now,
                    kinesis_stream,
                    shard_id,
                    sequence_number,
                    sub,
                    partition_key,
                    arrival_ns
                ])
                .map_err(db)? as u64;
        }
    }
    if inserted > 0 {
        tx.prepare_cached(
            "INSERT INTO streams (name, events, last_event_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET events = streams.events + excluded.events, last_event_at = excluded.last_event_at",
        )
        .and_then(|mut s| s.execute(params![stream, inserted as i64, now]))
        .map_err(db)?;
    }
    Ok(inserted)
}
