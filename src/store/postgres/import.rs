//! Shard checkpoints, dead letters and page commits in PostgreSQL.

use super::lease::check_fence;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Transaction;

use super::event_log::insert_events;
use super::rows::*;
use super::{db, execute, found, limit, query, PostgresStore};
use crate::store::*;

#[async_trait]
impl ImportStore for PostgresStore {
    async fn list_checkpoints(&self, job_id: &str) -> StoreResult<Vec<ShardCheckpoint>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM shard_checkpoints WHERE job_id = $1 ORDER BY shard_id"
        );
        collect(
            &query(&client, &sql, &[&job_id]).await?,
            checkpoint_from_row,
        )
    }

    async fn register_shards(&self, job_id: &str, shards: &[ShardCheckpoint]) -> StoreResult<()> {
        if shards.is_empty() {
            return Ok(());
        }
        let c = CheckpointColumns::of(shards);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO shard_checkpoints (job_id, shard_id, parent_shard_ids, state,
                 sequence_number, sub_sequence_number, records, start_position, updated_at)
             SELECT $1::text, u.*, $2::timestamptz
               FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
                           $8::int8[], $9::text[]) AS u
             ON CONFLICT (job_id, shard_id) DO NOTHING",
            &[
                &job_id,
                &Utc::now(),
                &c.shard_ids,
                &c.parent_shard_ids,
                &c.states,
                &c.sequence_numbers,
                &c.sub_sequence_numbers,
                &c.records,
                &c.start_positions,
            ],
        )
        .await?;
        Ok(())
    }

    async fn set_shard_state(
        &self,
        job_id: &str,
        shard_id: &str,
        state: ShardState,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let updated = execute(
            &client,
            "UPDATE shard_checkpoints SET state = $3, updated_at = $4
              WHERE job_id = $1 AND shard_id = $2",
            &[&job_id, &shard_id, &state.as_str(), &Utc::now()],
        )
        .await?;
        found(updated, "shard", shard_id)
    }

    async fn commit_shard_batch(&self, batch: Arc<ShardBatch>) -> StoreResult<BatchOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        check_fence(&tx, batch.fence.as_ref()).await?;
        let now = Utc::now();
        let dead_letters_inserted =
            insert_dead_letters(&tx, &batch.job_id, &batch.dead_letters, &now).await?;
        move_checkpoint(&tx, &batch, &now).await?;
        // The event log's lock is held from here to the commit.
        let events_inserted = insert_events(&tx, &batch.stream, &batch.events, &now).await?;
        let totals = JobTotals {
            records_in: batch.records_in,
            events_out: events_inserted,
            dead_letters: dead_letters_inserted,
        };
        add_job_totals(&tx, &batch.job_id, totals, &now).await?;
        super::erasure::add_suppressed(&tx, &batch.job_id, batch.suppressed).await?;
        tx.commit().await.map_err(db)?;
        Ok(BatchOutcome {
            events_inserted,
            dead_letters_inserted,
        })
    }

    async fn list_dead_letters(&self, job_id: &str, page: u32) -> StoreResult<Vec<DeadLetter>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE job_id = $1
              ORDER BY id DESC LIMIT $2"
        );
        let rows = query(&client, &sql, &[&job_id, &limit(page)]).await?;
        collect(&rows, dead_letter_from_row)
    }
}

/// Moves the shard's checkpoint to the end of the batch (a batch without a sequence number,
/// e.g. an empty page, keeps the last one).
async fn move_checkpoint(
    tx: &Transaction<'_>,
    batch: &ShardBatch,
    now: &Timestamp,
) -> StoreResult<()> {
    let cp = &batch.checkpoint;
    let updated = execute(
        tx,
        "UPDATE shard_checkpoints
                SET state = $3, sequence_number = COALESCE($4, sequence_number),
                    sub_sequence_number = CASE WHEN $4::text IS NULL THEN sub_sequence_number ELSE $5 END,
                    records = records + $6, millis_behind_latest = $7, updated_at = $8
              WHERE job_id = $1 AND shard_id = $2",
        &[
                &batch.job_id,
                &cp.shard_id,
                &cp.state.as_str(),
                &cp.sequence_number,
                &cp.sub_sequence_number.map(|n| n as i64),
                &bigint(batch.records_in),
                &cp.millis_behind_latest,
                now,
        ],
    )
    .await?;
    found(updated, "shard checkpoint", &cp.shard_id)
}

/// Shard checkpoints as the columns of one `UNNEST` insert.
struct CheckpointColumns<'a> {
    shard_ids: Vec<&'a str>,
    /// JSON arrays, as SQLite keeps them.
    parent_shard_ids: Vec<String>,
    states: Vec<&'static str>,
    sequence_numbers: Vec<Option<&'a str>>,
    /// Stored as their bits (positions in a KPL aggregate: small).
    sub_sequence_numbers: Vec<Option<i64>>,
    records: Vec<i64>,
    start_positions: Vec<String>,
}

impl<'a> CheckpointColumns<'a> {
    fn of(shards: &'a [ShardCheckpoint]) -> Self {
        Self {
            shard_ids: shards.iter().map(|s| s.shard_id.as_str()).collect(),
            parent_shard_ids: shards
                .iter()
                .map(|s| serde_json::to_string(&s.parent_shard_ids).expect("strings serialize"))
                .collect(),
            states: shards.iter().map(|s| s.state.as_str()).collect(),
            sequence_numbers: shards
                .iter()
                .map(|s| s.sequence_number.as_deref())
                .collect(),
            sub_sequence_numbers: shards
                .iter()
                .map(|s| s.sub_sequence_number.map(|n| n as i64))
                .collect(),
            records: shards.iter().map(|s| bigint(s.records)).collect(),
            start_positions: shards.iter().map(|s| s.start_position.to_text()).collect(),
        }
    }
}
