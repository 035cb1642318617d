//! The audience-change outbox in SQLite, and each export job's progress through it, its
//! backfill snapshot pages and its finished rounds. `changes.seq` is AUTOINCREMENT (never
//! reused) and assigned inside the one writer's transaction, so positions become visible in
//! order (the `OutboxStore` contract).

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::import::insert_dead_letters;
use super::lease::check_fence;
use super::rows::{collect, parse_time, RowResult};
use super::{db, now_text, SqliteStore};
use crate::store::*;

const CHANGE_COLUMNS: &str =
    "seq, audience_id, audience_slug, profile_id, kind, at, entered_at, reason";

fn change_from_row(r: &Row<'_>) -> RowResult<AudienceChange> {
    let kind: String = r.get(4)?;
    let at: String = r.get(5)?;
    let entered_at: Option<String> = r.get(6)?;
    let reason: Option<String> = r.get(7)?;
    let (seq, audience_id, audience_slug, profile_id) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    Ok((|| {
        Ok(AudienceChange {
            kind: ChangeKind::parse(&kind).ok_or_else(|| {
                StoreError::Corrupt(format!("audience change {seq} has kind {kind:?}"))
            })?,
            at: parse_time(&at)?,
            entered_at: entered_at.as_deref().map(parse_time).transpose()?,
            seq,
            audience_id,
            audience_slug,
            profile_id,
            reason,
        })
    })())
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn list_audience_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AudienceChange>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM audience_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params![after_seq, limit], change_from_row)
                .map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn audience_change_head(&self) -> StoreResult<i64> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM audience_changes",
                [],
                |r| r.get(0),
            )
            .map_err(db)
        })
        .await
    }

    async fn get_export_progress(&self, job_id: &str) -> StoreResult<Option<ExportProgress>> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT progress FROM export_progress WHERE job_id = ?1",
                    [&job_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| {
                    StoreError::Corrupt(format!("export progress of job {job_id}: {e}"))
                })
            })
            .transpose()
        })
        .await
    }

    async fn commit_export_round(&self, job_id: &str, round: Arc<ExportRound>) -> StoreResult<()> {
        let job_id = job_id.to_owned();
        self.write(move |tx| {
            check_fence(tx, round.fence.as_ref())?;
            let now = now_text();
            let progress = serde_json::to_string(&round.progress).expect("progress serializes");
            tx.execute(
                "INSERT INTO export_progress (job_id, progress, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job_id) DO UPDATE SET progress = excluded.progress, updated_at = excluded.updated_at",
                params![job_id, progress, now],
            )
            .map_err(db)?;
            let dead = insert_dead_letters(tx, &job_id, &round.dead_letters, &now)? as i64;
            tx.execute(
                "UPDATE jobs SET records_in = records_in + ?2, events_out = events_out + ?3,
                                 dead_letters = dead_letters + ?4, updated_at = ?5 WHERE id = ?1",
                params![job_id, round.changes_read as i64, round.records_sent as i64, dead, now],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn backfill_page(
        &self,
        audience_ids: Vec<String>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<BackfillPage> {
        // One read transaction: the members and the outbox head come from the same snapshot,
        // which is what lets live changes after `head` be sent after these 'enter's.
        self.read_snapshot(move |conn| {
            let (after_audience, after_profile) = after.unwrap_or_default();
            let mut members = Vec::new();
            let mut ids = audience_ids.clone();
            ids.sort();
            for audience_id in ids.iter().filter(|a| **a >= after_audience) {
                let want = limit - members.len() as u32;
                if want == 0 {
                    break;
                }
                let Some(num) = super::profiles::audience_num(conn, audience_id)? else {
                    continue;
                };
                let after = if *audience_id == after_audience {
                    after_profile.as_str()
                } else {
                    ""
                };
                members.extend(super::profiles::members_after(
                    conn,
                    audience_id,
                    num,
                    after,
                    want,
                )?);
            }
            let head: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM audience_changes",
                    [],
                    |r| r.get(0),
                )
                .map_err(db)?;
            Ok(BackfillPage { members, head })
        })
        .await
    }
}
