//! Erasure records, the suppression list and an erasure's deletes in SQLite. Records and
//! suppressions are in the CDP file with the profiles, so the profile step is one transaction;
//! events, dead letters and the suppressed counts are in the main file.
//!
//! Deleted bytes: every connection runs with `secure_delete` (see `connect`), so SQLite
//! overwrites deleted content in the database files; the WAL still holds the old pages until a
//! checkpoint copies the new ones over them and the log restarts, which
//! [`ErasureStore::finish_erasure`] forces (TRUNCATE) on both files.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension, Row};

use super::profiles::audience_nums;
use super::rows::{collect, parse_time, to_text, RowResult};
use super::{db, now_text, SqliteStore};
use crate::store::*;

const ERASURE_COLUMNS: &str = "id, profile_id, identities, suppress, state, events_deleted, \
     identities_deleted, audiences_exited, suppressed, created_at, updated_at";

fn erasure_from_row(r: &Row<'_>) -> RowResult<Erasure> {
    let id: String = r.get(0)?;
    let identities: String = r.get(2)?;
    let state: String = r.get(4)?;
    let created_at: String = r.get(9)?;
    let updated_at: String = r.get(10)?;
    let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    let counts = ErasureCounts {
        events_deleted: n(5)?,
        identities_deleted: n(6)?,
        audiences_exited: n(7)?,
        suppressed: n(8)?,
    };
    let (profile_id, suppress) = (r.get(1)?, r.get::<_, i64>(3)? != 0);
    Ok((|| {
        Ok(Erasure {
            identities: serde_json::from_str(&identities)
                .map_err(|e| StoreError::Corrupt(format!("erasure {id} identities: {e}")))?,
            state: ErasureState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("erasure {id} has state {state:?}")))?,
            created_at: parse_time(&created_at)?,
            updated_at: parse_time(&updated_at)?,
            profile_id,
            suppress,
            counts,
            id,
        })
    })())
}

fn suppression_from_row(r: &Row<'_>) -> RowResult<Suppression> {
    let created_at: String = r.get(3)?;
    let (id, field, hash) = (r.get(0)?, r.get(1)?, r.get(2)?);
    Ok(parse_time(&created_at).map(|created_at| Suppression {
        id,
        field,
        hash,
        created_at,
    }))
}

fn erasure(conn: &rusqlite::Connection, id: &str) -> StoreResult<Erasure> {
    conn.prepare_cached(&format!(
        "SELECT {ERASURE_COLUMNS} FROM erasures WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], erasure_from_row).optional())
    .map_err(db)?
    .ok_or_else(|| StoreError::NotFound {
        what: "erasure",
        id: id.to_owned(),
    })?
}

#[async_trait]
impl ErasureStore for SqliteStore {
    async fn begin_erasure(
        &self,
        profile_id: &str,
        identities: Vec<(String, String)>,
        suppress: bool,
    ) -> StoreResult<Erasure> {
        let id = uuid::Uuid::now_v7().to_string();
        let profile_id = profile_id.to_owned();
        let text = serde_json::to_string(&identities).expect("pairs of strings serialize");
        let id2 = id.clone();
        self.write(move |tx| {
            let now = now_text();
            tx.execute(
                "INSERT INTO erasures (id, profile_id, identities, suppress, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
                params![id2, profile_id, text, suppress as i64, now],
            )
            .map_err(db)?;
            Ok(())
        })
        .await?;
        self.get_erasure(&id).await
    }

    async fn get_erasure(&self, id: &str) -> StoreResult<Erasure> {
        let id = id.to_owned();
        self.read(move |conn| erasure(conn, &id)).await
    }

    async fn pending_erasures(&self) -> StoreResult<Vec<Erasure>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ERASURE_COLUMNS} FROM erasures WHERE state = 'pending' ORDER BY created_at, id"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], erasure_from_row).map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn erase_profile(&self, step: ProfileErasure) -> StoreResult<ErasureCounts> {
        self.write(move |tx| {
            super::lease::check_fence(tx, step.fence.as_ref())?;
            let record = erasure(tx, &step.erasure_id)?;
            let profile_id = &record.profile_id;
            let mut counts = ErasureCounts::default();
            // The profile's memberships, as exits with their entry times.
            let nums = audience_nums(tx)?;
            let members: Option<String> = tx
                .prepare_cached("SELECT audiences FROM profiles WHERE id = ?1")
                .and_then(|mut s| s.query_row([profile_id], |r| r.get(0)).optional())
                .map_err(db)?;
            if let Some(text) = members {
                let list: Vec<(i64, i64)> = serde_json::from_str(&text).map_err(|e| {
                    StoreError::Corrupt(format!("memberships of profile {profile_id}: {e}"))
                })?;
                let mut exits: Vec<(&str, &str, i64, i64)> = list
                    .iter()
                    .filter_map(|(num, us)| {
                        let (id, slug) = nums.get(num)?;
                        Some((slug.as_str(), id.as_str(), *num, *us))
                    })
                    .collect();
                exits.sort_unstable();
                let now = to_text(&Utc::now());
                for (slug, audience_id, num, us) in &exits {
                    let entered = super::rows::from_micros(*us)?;
                    tx.prepare_cached(
                        "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at, entered_at, reason)
                         VALUES (?1, ?2, ?3, 'exit', ?4, ?5, 'deleted')",
                    )
                    .and_then(|mut s| {
                        s.execute(params![audience_id, slug, profile_id, now, to_text(&entered)])
                    })
                    .map_err(db)?;
                    tx.prepare_cached(
                        "UPDATE audiences SET member_count = member_count - 1 WHERE num = ?1",
                    )
                    .and_then(|mut s| s.execute([num]))
                    .map_err(db)?;
                }
                counts.audiences_exited = exits.len() as u64;
                tx.execute("DELETE FROM profiles WHERE id = ?1", [profile_id])
                    .map_err(db)?;
            }
            let mut identities = tx
                .execute("DELETE FROM identities WHERE profile_id = ?1", [profile_id])
                .map_err(db)? as u64;
            for (field, value) in &record.identities {
                identities += tx
                    .prepare_cached("DELETE FROM identities WHERE field = ?1 AND value = ?2")
                    .and_then(|mut s| s.execute([field, value]))
                    .map_err(db)? as u64;
            }
            counts.identities_deleted = identities;
            tx.execute(
                "DELETE FROM profile_redirects WHERE to_id = ?1 OR from_id = ?1",
                [profile_id],
            )
            .map_err(db)?;
            let now = now_text();
            for (field, hash) in &step.suppressions {
                counts.suppressed += tx
                    .prepare_cached(
                        "INSERT INTO suppressions (id, field, hash, created_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (field, hash) DO NOTHING",
                    )
                    .and_then(|mut s| {
                        s.execute(params![uuid::Uuid::now_v7().to_string(), field, hash, now])
                    })
                    .map_err(db)? as u64;
            }
            tx.execute(
                "UPDATE erasures SET identities_deleted = identities_deleted + ?2,
                        audiences_exited = audiences_exited + ?3, suppressed = suppressed + ?4,
                        updated_at = ?5
                  WHERE id = ?1",
                params![
                    step.erasure_id,
                    counts.identities_deleted as i64,
                    counts.audiences_exited as i64,
                    counts.suppressed as i64,
                    now
                ],
            )
            .map_err(db)?;
            Ok(erasure(tx, &step.erasure_id)?.counts)
        })
        .await
    }

    async fn delete_events(&self, seqs: Vec<i64>) -> StoreResult<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.write(move |tx| delete_events_by_seq(tx, &seqs)).await
    }

    async fn delete_dead_letters_containing(&self, values: Vec<String>) -> StoreResult<u64> {
        self.write(move |tx| {
            let mut deleted = 0;
            for v in values.iter().filter(|v| !v.is_empty()) {
                deleted += tx
                    .prepare_cached(
                        "DELETE FROM dead_letters WHERE instr(raw, CAST(?1 AS BLOB)) > 0",
                    )
                    .and_then(|mut s| s.execute([v]))
                    .map_err(db)? as u64;
            }
            Ok(deleted)
        })
        .await
    }

    async fn finish_erasure(&self, id: &str, events_deleted: u64) -> StoreResult<Erasure> {
        let id = id.to_owned();
        let id2 = id.clone();
        self.write(move |tx| {
            tx.execute(
                "UPDATE erasures SET state = 'done', identities = '[]',
                        events_deleted = events_deleted + ?2, updated_at = ?3
                  WHERE id = ?1",
                params![id2, events_deleted as i64, now_text()],
            )
            .map_err(db)?;
            Ok(())
        })
        .await?;
        self.empty_wals().await?;
        self.get_erasure(&id).await
    }

    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, field, hash, created_at FROM suppressions ORDER BY created_at, id",
                )
                .map_err(db)?;
            let rows = stmt.query_map([], suppression_from_row).map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn delete_suppression(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            match tx
                .execute("DELETE FROM suppressions WHERE id = ?1", [&id])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound {
                    what: "suppression",
                    id,
                }),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn count_suppressed(&self, source: &str, n: u64) -> StoreResult<()> {
        if n == 0 {
            return Ok(());
        }
        let source = source.to_owned();
        self.write(move |tx| add_suppressed(tx, &source, n)).await
    }

    async fn suppressed_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT source, count FROM suppressed_counts ORDER BY source")
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }
}

/// Deletes events by position, keeping each stream's count right.
pub(super) fn delete_events_by_seq(
    tx: &rusqlite::Transaction<'_>,
    seqs: &[i64],
) -> StoreResult<u64> {
    let mut per_stream: HashMap<String, i64> = HashMap::new();
    let mut stmt = tx
        .prepare_cached("DELETE FROM events WHERE seq = ?1 RETURNING stream")
        .map_err(db)?;
    for seq in seqs {
        if let Some(stream) = stmt
            .query_row([seq], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db)?
        {
            *per_stream.entry(stream).or_default() += 1;
        }
    }
    let mut deleted = 0;
    for (stream, n) in per_stream {
        tx.prepare_cached("UPDATE streams SET events = MAX(events - ?2, 0) WHERE name = ?1")
            .and_then(|mut s| s.execute(params![stream, n]))
            .map_err(db)?;
        deleted += n as u64;
    }
    Ok(deleted)
}

/// Adds `n` to the suppressed count of `source` (an import job's id, or `collect`), inside the
/// caller's transaction: the import counts a page's dropped events in the page's commit.
pub(super) fn add_suppressed(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    n: u64,
) -> StoreResult<()> {
    if n > 0 {
        tx.execute(
            "INSERT INTO suppressed_counts (source, count) VALUES (?1, ?2)
             ON CONFLICT (source) DO UPDATE SET count = count + excluded.count",
            params![source, n as i64],
        )
        .map_err(db)?;
    }
    Ok(())
}
