//! Retention in SQLite: per-stream settings (main file), pruning by position in short
//! transactions of the one writer, the incremental vacuum, and the files' sizes.

use async_trait::async_trait;
use rusqlite::params;

use super::erasure::delete_events_by_seq;
use super::rows::{parse_time, to_text};
use super::{db, now_text, SqliteStore};
use crate::store::*;

/// Free pages given back per file and call: a few MiB, so the writer is held briefly.
const VACUUM_PAGES_MAIN: u32 = 64;
const VACUUM_PAGES_CDP: u32 = 1024;

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn set_stream_retention(
        &self,
        stream: &str,
        max_age_secs: Option<i64>,
    ) -> StoreResult<StreamRetention> {
        let stream = stream.to_owned();
        self.write(move |tx| {
            let now = now_text();
            tx.execute(
                "INSERT INTO stream_retention (stream, max_age_secs, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET max_age_secs = excluded.max_age_secs,
                                                    updated_at = excluded.updated_at",
                params![stream, max_age_secs, now],
            )
            .map_err(db)?;
            Ok(StreamRetention {
                stream,
                max_age_secs,
                updated_at: parse_time(&now)?,
            })
        })
        .await
    }

    async fn list_stream_retention(&self) -> StoreResult<Vec<StreamRetention>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT stream, max_age_secs, updated_at FROM stream_retention ORDER BY stream",
                )
                .map_err(db)?;
            let mut rows = stmt.query([]).map_err(db)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db)? {
                let updated_at: String = r.get(2).map_err(db)?;
                out.push(StreamRetention {
                    stream: r.get(0).map_err(db)?,
                    max_age_secs: r.get(1).map_err(db)?,
                    updated_at: parse_time(&updated_at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn prune_events(
        &self,
        stream: &str,
        before: Timestamp,
        upto_seq: i64,
        limit: u32,
    ) -> StoreResult<u64> {
        let stream = stream.to_owned();
        self.write(move |tx| {
            let before = to_text(&before);
            let seqs: Vec<i64> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT seq, stored_at FROM events WHERE stream = ?1 AND seq <= ?2
                          ORDER BY seq LIMIT ?3",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![stream, upto_seq, limit], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db)?;
                let mut seqs = Vec::new();
                for row in rows {
                    let (seq, stored_at) = row.map_err(db)?;
                    if stored_at >= before {
                        break;
                    }
                    seqs.push(seq);
                }
                seqs
            };
            delete_events_by_seq(tx, &seqs)
        })
        .await
    }

    async fn prune_dead_letters(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM dead_letters
                  WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT ?2)
                    AND created_at < ?1",
                params![to_text(&before), limit],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn prune_audience_changes(
        &self,
        before: Timestamp,
        upto_seq: i64,
        limit: u32,
    ) -> StoreResult<u64> {
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM audience_changes
                  WHERE seq IN (SELECT seq FROM audience_changes WHERE seq <= ?2 ORDER BY seq LIMIT ?3)
                    AND at < ?1",
                params![to_text(&before), upto_seq, limit],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn oldest_audience_change(&self) -> StoreResult<Option<i64>> {
        self.read(|conn| {
            conn.query_row("SELECT MIN(seq) FROM audience_changes", [], |r| r.get(0))
                .map_err(db)
        })
        .await
    }

    async fn reclaim_space(&self) -> StoreResult<()> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute_batch(&format!(
                "PRAGMA main.incremental_vacuum({VACUUM_PAGES_MAIN});
                 PRAGMA cdp.incremental_vacuum({VACUUM_PAGES_CDP});"
            ))
            .map_err(db)
        })
        .await
        .map_err(StoreError::backend)?
    }

    async fn store_sizes(&self) -> StoreResult<StoreSizes> {
        self.read(|conn| {
            let mut files = Vec::new();
            let mut stmt = conn.prepare("PRAGMA database_list").map_err(db)?;
            let dbs = stmt
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            for (schema, path) in dbs.into_iter().filter(|(_, p)| !p.is_empty()) {
                let size = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
                files.push((schema.clone(), size(&path)));
                files.push((format!("{schema}-wal"), size(&format!("{path}-wal"))));
            }
            let count = |sql: &str| -> StoreResult<u64> {
                conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                    .map(|n| n.unwrap_or(0).max(0) as u64)
                    .map_err(db)
            };
            let rows = vec![
                ("events".into(), count("SELECT SUM(events) FROM streams")?),
                (
                    "dead_letters".into(),
                    count("SELECT COUNT(*) FROM dead_letters")?,
                ),
                (
                    "audience_changes".into(),
                    count("SELECT MAX(seq) - MIN(seq) + 1 FROM audience_changes")?,
                ),
                ("profiles".into(), count("SELECT COUNT(*) FROM profiles")?),
            ];
            Ok(StoreSizes { files, rows })
        })
        .await
    }
}

/// A backup is two `VACUUM … INTO` (one per file), run on the writer connection so that no
/// commit falls between them: the copies are of one instant, as the two files' cross
/// references need (the processor's cursor into the event log, export cursors into the
/// outbox). Writers wait meanwhile; readers go on.
#[async_trait]
impl BackupStore for SqliteStore {
    async fn flush_to_files(&self) -> StoreResult<()> {
        self.empty_wals().await
    }

    async fn backup_to(&self, dest_dir: std::path::PathBuf) -> StoreResult<BackupReport> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            std::fs::create_dir_all(&dest_dir).map_err(|e| {
                StoreError::backend(format!("cannot create {}: {e}", dest_dir.display()))
            })?;
            let mut stmt = conn.prepare("PRAGMA database_list").map_err(db)?;
            let dbs = stmt
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            let mut targets = Vec::new();
            for (schema, path) in dbs.into_iter().filter(|(_, p)| !p.is_empty()) {
                let name = std::path::Path::new(&path)
                    .file_name()
                    .map(|n| n.to_owned())
                    .unwrap_or_else(|| format!("{schema}.db").into());
                let target = dest_dir.join(name);
                if target.exists() {
                    return Err(StoreError::Conflict(format!(
                        "{} already exists; back up into an empty directory",
                        target.display()
                    )));
                }
                targets.push((schema, target));
            }
            let mut report = BackupReport {
                files: Vec::new(),
                bytes: 0,
            };
            for (schema, target) in targets {
                conn.execute(
                    &format!("VACUUM {schema} INTO ?1"),
                    [target.to_string_lossy()],
                )
                .map_err(db)?;
                report.bytes += std::fs::metadata(&target).map_or(0, |m| m.len());
                report.files.push(target);
            }
            Ok(report)
        })
        .await
        .map_err(StoreError::backend)?
    }
}
