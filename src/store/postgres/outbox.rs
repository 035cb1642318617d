//! The audience-change outbox in PostgreSQL, and each export job's progress through it, its
//! backfill snapshot pages and its finished rounds. `audience_changes.seq` is reserved from the
//! outbox's head in `log_heads`, locked until commit as the last step of the writing
//! transaction (see `positions`), so positions become visible in order (the `OutboxStore`
//! contract) and are never reused.

use super::lease::check_fence;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Transaction;
use tokio_postgres::{IsolationLevel, Row};

use super::members::members_after;
use super::positions::{reserve, Log};
use super::rows::*;
use super::{db, execute, limit, query, query_one, query_opt, PostgresStore};
use crate::store::*;

const CHANGE_COLUMNS: &str =
    "seq, audience_id, audience_slug, profile_id, kind, at, entered_at, reason";

fn change_from_row(r: &Row) -> StoreResult<AudienceChange> {
    let seq: i64 = get(r, 0)?;
    let kind: &str = get(r, 4)?;
    Ok(AudienceChange {
        kind: ChangeKind::parse(kind).ok_or_else(|| {
            StoreError::Corrupt(format!("audience change {seq} has kind {kind:?}"))
        })?,
        audience_id: get(r, 1)?,
        audience_slug: get(r, 2)?,
        profile_id: get(r, 3)?,
        at: get(r, 5)?,
        entered_at: get(r, 6)?,
        reason: get(r, 7)?,
        seq,
    })
}

const HEAD: &str = "SELECT COALESCE(MAX(seq), 0) FROM audience_changes";

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn list_audience_changes(
        &self,
        after_seq: i64,
        page: u32,
    ) -> StoreResult<Vec<AudienceChange>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM audience_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = query(&client, &sql, &[&after_seq, &limit(page)]).await?;
        collect(&rows, change_from_row)
    }

    async fn audience_change_head(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        get(&query_one(&client, HEAD, &[]).await?, 0)
    }

    async fn get_export_progress(&self, job_id: &str) -> StoreResult<Option<ExportProgress>> {
        let client = self.client().await?;
        let sql = "SELECT progress FROM export_progress WHERE job_id = $1";
        let Some(row) = query_opt(&client, sql, &[&job_id]).await? else {
            return Ok(None);
        };
        serde_json::from_str(get(&row, 0)?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("export progress of job {job_id}: {e}")))
    }

    async fn commit_export_round(&self, job_id: &str, round: Arc<ExportRound>) -> StoreResult<()> {
        let progress = serde_json::to_string(&round.progress).expect("progress serializes");
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        check_fence(&tx, round.fence.as_ref()).await?;
        let now = Utc::now();
        execute(
            &tx,
            "INSERT INTO export_progress (job_id, progress, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (job_id) DO UPDATE
                 SET progress = excluded.progress, updated_at = excluded.updated_at",
            &[&job_id, &progress, &now],
        )
        .await?;
        let dead_letters = insert_dead_letters(&tx, job_id, &round.dead_letters, &now).await?;
        let totals = JobTotals {
            records_in: round.changes_read,
            events_out: round.records_sent,
            dead_letters,
        };
        add_job_totals(&tx, job_id, totals, &now).await?;
        tx.commit().await.map_err(db)
    }

    async fn backfill_page(
        &self,
        audience_ids: Vec<String>,
        after: Option<(String, String)>,
        page: u32,
    ) -> StoreResult<BackfillPage> {
        let (after_audience, after_profile) = after.unwrap_or_default();
        let mut client = self.client().await?;
        // One snapshot for the members and the outbox head: live changes after `head` are then
        // sent after these 'enter's.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        // In (audience id, profile id) order: audience by audience from where the last page
        // ended.
        let mut ids = audience_ids;
        ids.sort_unstable();
        ids.dedup();
        let mut members = Vec::new();
        for audience_id in ids.iter().filter(|a| **a >= after_audience) {
            let Some(want) = page.checked_sub(members.len() as u32).filter(|n| *n > 0) else {
                break;
            };
            let after = match *audience_id == after_audience {
                true => after_profile.as_str(),
                false => "",
            };
            members.extend(members_after(&tx, audience_id, after, want).await?);
        }
        let head = get(&query_one(&tx, HEAD, &[]).await?, 0)?;
        tx.commit().await.map_err(db)?;
        Ok(BackfillPage { members, head })
    }
}

/// Appends `changes` to the outbox inside `tx`, in order. Takes the outbox's lock until `tx`
/// commits: call it after the transaction's other writes.
pub(super) async fn insert_changes(
    tx: &Transaction<'_>,
    changes: &[NewAudienceChange],
) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    // Prepared before the lock: a connection's first use parses it while others may append.
    let insert = tx
        .prepare_cached(
            // `unnest` in the select list (in lockstep with the positions) streams the rows;
            // in FROM it would first copy them into a tuplestore.
            "INSERT INTO audience_changes
                 (seq, audience_id, audience_slug, profile_id, kind, at, entered_at)
             SELECT generate_series($1::int8 + 1, $1::int8 + cardinality($2::text[])),
                    unnest($2::text[]), unnest($3::text[]), unnest($4::text[]),
                    unnest($5::text[]), unnest($6::timestamptz[]), unnest($7::timestamptz[])",
        )
        .await
        .map_err(db)?;
    let audience_ids: Vec<&str> = changes.iter().map(|c| c.audience_id.as_str()).collect();
    let slugs: Vec<&str> = changes.iter().map(|c| c.audience_slug.as_str()).collect();
    let profile_ids: Vec<&str> = changes.iter().map(|c| c.profile_id.as_str()).collect();
    let kinds: Vec<&str> = changes.iter().map(|c| c.kind.as_str()).collect();
    let ats: Vec<Timestamp> = changes.iter().map(|c| c.at).collect();
    let entered: Vec<Option<Timestamp>> = changes.iter().map(|c| c.entered_at).collect();
    let before = reserve(tx, Log::AudienceChanges, changes.len()).await?;
    tx.execute(
        &insert,
        &[
            &before,
            &audience_ids,
            &slugs,
            &profile_ids,
            &kinds,
            &ats,
            &entered,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}
