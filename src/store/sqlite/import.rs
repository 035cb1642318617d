//! Shard checkpoints, dead letters and page commits in SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::event_log::insert_events;
use super::lease::check_fence;
use super::rows::*;
use super::{db, now_text, SqliteStore};
use crate::store::*;

#[async_trait]
impl ImportStore for SqliteStore {
    async fn list_checkpoints(&self, job_id: &str) -> StoreResult<Vec<ShardCheckpoint>> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {CHECKPOINT_COLUMNS} FROM shard_checkpoints WHERE job_id = ?1 ORDER BY shard_id"))
                .map_err(db)?;
            let rows = stmt.query_map([&job_id], checkpoint_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn register_shards(&self, job_id: &str, shards: &[ShardCheckpoint]) -> StoreResult<()> {
        let (job_id, shards) = (job_id.to_owned(), shards.to_vec());
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO shard_checkpoints (job_id, shard_id, parent_shard_ids, state, sequence_number, sub_sequence_number, records, updated_at, start_position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (job_id, shard_id) DO NOTHING",
                )
                .map_err(db)?;
            for s in &shards {
                stmt.execute(params![
                    job_id, s.shard_id, serde_json::to_string(&s.parent_shard_ids).expect("strings serialize"),
                    s.state.as_str(), s.sequence_number, s.sub_sequence_number.map(|n| n as i64), s.records as i64, now_text(),
                    s.start_position.to_text()
                ])
                .map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn set_shard_state(
        &self,
        job_id: &str,
        shard_id: &str,
        state: ShardState,
    ) -> StoreResult<()> {
        let (job_id, shard_id) = (job_id.to_owned(), shard_id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE shard_checkpoints SET state = ?3, updated_at = ?4 WHERE job_id = ?1 AND shard_id = ?2",
                    params![job_id, shard_id, state.as_str(), now_text()],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "shard", id: shard_id });
            }
            Ok(())
        })
        .await
    }

    async fn commit_shard_batch(&self, batch: Arc<ShardBatch>) -> StoreResult<BatchOutcome> {
        self.write(move |tx| {
            check_fence(tx, batch.fence.as_ref())?;
            let now = now_text();
            let events_inserted = insert_events(tx, &batch.stream, &batch.events, &now)?;
            let dead_letters_inserted =
                insert_dead_letters(tx, &batch.job_id, &batch.dead_letters, &now)?;
            let cp = &batch.checkpoint;
            let n = tx
                .execute(
                    "UPDATE shard_checkpoints
                        SET state = ?3, sequence_number = COALESCE(?4, sequence_number),
                            sub_sequence_number = CASE WHEN ?4 IS NULL THEN sub_sequence_number ELSE ?5 END,
                            records = records + ?6, millis_behind_latest = ?7, updated_at = ?8
                      WHERE job_id = ?1 AND shard_id = ?2",
                    params![
                        batch.job_id, cp.shard_id, cp.state.as_str(), cp.sequence_number,
                        cp.sub_sequence_number.map(|n| n as i64), batch.records_in as i64,
                        cp.millis_behind_latest, now
                    ],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "shard checkpoint", id: cp.shard_id.clone() });
            }
            tx.execute(
                "UPDATE jobs SET records_in = records_in + ?2, events_out = events_out + ?3,
                                 dead_letters = dead_letters + ?4, updated_at = ?5 WHERE id = ?1",
                params![batch.job_id, batch.records_in as i64, events_inserted as i64, dead_letters_inserted as i64, now],
            )
            .map_err(db)?;
            super::erasure::add_suppressed(tx, &batch.job_id, batch.suppressed)?;
            Ok(BatchOutcome { events_inserted, dead_letters_inserted })
        })
        .await
    }

    async fn list_dead_letters(&self, job_id: &str, limit: u32) -> StoreResult<Vec<DeadLetter>> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE job_id = ?1 ORDER BY id DESC LIMIT ?2"))
                .map_err(db)?;
            let rows = stmt.query_map(params![job_id, limit], dead_letter_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }
}

/// Stores a job's dead letters, skipping any already stored (a replayed page or round);
/// returns how many were new.
pub(super) fn insert_dead_letters(
    tx: &Transaction<'_>,
    job_id: &str,
    letters: &[NewDeadLetter],
    now: &str,
) -> StoreResult<u64> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO dead_letters (job_id, shard_id, sequence_number, sub_sequence_number, position, partition_key, reason, raw, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO NOTHING",
        )
        .map_err(db)?;
    let mut inserted = 0;
    for d in letters {
        inserted += stmt
            .execute(params![
                job_id,
                d.shard_id,
                d.sequence_number,
                d.sub_sequence_number.map_or(-1, |n| n as i64),
                d.position,
                d.partition_key,
                d.reason,
                d.raw,
                now
            ])
            .map_err(db)? as u64;
    }
    Ok(inserted)
}
