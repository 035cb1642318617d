//! Retention in PostgreSQL: per-stream settings, pruning by position in short transactions,
//! and sizes. Freed space is reused by autovacuum; nothing to give back by hand.

use async_trait::async_trait;

use super::erasure::delete_events_by_seq;
use super::rows::*;
use super::{db, execute, limit, query, query_one, PostgresStore};
use crate::store::*;

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn set_stream_retention(
        &self,
        stream: &str,
        max_age_secs: Option<i64>,
    ) -> StoreResult<StreamRetention> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "INSERT INTO stream_retention (stream, max_age_secs, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (stream) DO UPDATE SET max_age_secs = excluded.max_age_secs,
                                                updated_at = excluded.updated_at
             RETURNING updated_at",
            &[&stream, &max_age_secs],
        )
        .await?;
        Ok(StreamRetention {
            stream: stream.to_owned(),
            max_age_secs,
            updated_at: get(&row, 0)?,
        })
    }

    async fn list_stream_retention(&self) -> StoreResult<Vec<StreamRetention>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT stream, max_age_secs, updated_at FROM stream_retention ORDER BY stream",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StreamRetention {
                    stream: get(r, 0)?,
                    max_age_secs: get(r, 1)?,
                    updated_at: get(r, 2)?,
                })
            })
            .collect()
    }

    async fn prune_events(
        &self,
        stream: &str,
        before: Timestamp,
        upto_seq: i64,
        page: u32,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let rows = query(
            &tx,
            "SELECT seq, stored_at FROM events WHERE stream = $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            &[&stream, &upto_seq, &limit(page)],
        )
        .await?;
        let mut seqs = Vec::new();
        for r in &rows {
            let stored_at: Timestamp = get(r, 1)?;
            if stored_at >= before {
                break;
            }
            seqs.push(get::<i64>(r, 0)?);
        }
        let deleted = delete_events_by_seq(&tx, &seqs).await?;
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    async fn prune_dead_letters(&self, before: Timestamp, page: u32) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM dead_letters
              WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT $2) AND created_at < $1",
            &[&before, &limit(page)],
        )
        .await
    }

    async fn prune_audience_changes(
        &self,
        before: Timestamp,
        upto_seq: i64,
        page: u32,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM audience_changes
              WHERE seq IN (SELECT seq FROM audience_changes WHERE seq <= $2 ORDER BY seq LIMIT $3)
                AND at < $1",
            &[&before, &upto_seq, &limit(page)],
        )
        .await
    }

    async fn oldest_audience_change(&self) -> StoreResult<Option<i64>> {
        let client = self.client().await?;
        get(
            &query_one(&client, "SELECT MIN(seq) FROM audience_changes", &[]).await?,
            0,
        )
    }

    async fn reclaim_space(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn store_sizes(&self) -> StoreResult<StoreSizes> {
        let client = self.client().await?;
        let one = |sql: &'static str| {
            let client = &client;
            async move {
                let row = query_one(client, sql, &[]).await?;
                Ok::<u64, StoreError>(count(get::<Option<i64>>(&row, 0)?.unwrap_or(0).max(0)))
            }
        };
        Ok(StoreSizes {
            files: vec![(
                "database".into(),
                one("SELECT pg_database_size(current_database())::int8").await?,
            )],
            rows: vec![
                (
                    "events".into(),
                    one("SELECT SUM(events)::int8 FROM streams").await?,
                ),
                (
                    "dead_letters".into(),
                    one("SELECT COUNT(*) FROM dead_letters").await?,
                ),
                (
                    "audience_changes".into(),
                    one("SELECT MAX(seq) - MIN(seq) + 1 FROM audience_changes").await?,
                ),
                (
                    "profiles".into(),
                    one("SELECT COUNT(*) FROM profiles").await?,
                ),
            ],
        })
    }
}

#[async_trait]
impl BackupStore for PostgresStore {
    async fn backup_to(&self, _dest_dir: std::path::PathBuf) -> StoreResult<BackupReport> {
        Err(StoreError::Conflict(
            "this server's store is PostgreSQL, which Tributary does not copy itself: back it up with pg_dump (e.g. `pg_dump --format=custom --file tributary.dump DBNAME`) or your database's own backups, and restore with pg_restore; see the README's \"Backup and restore\"".into(),
        ))
    }

    async fn flush_to_files(&self) -> StoreResult<()> {
        Ok(())
    }
}
