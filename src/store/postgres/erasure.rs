//! Erasure records, the suppression list and an erasure's deletes in PostgreSQL. Deleted rows
//! stay in the table files as dead tuples until autovacuum reclaims them (and in the WAL
//! archive and base backups an operator keeps): see the README's "Erasure" section.

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::Row;

use super::lease::check_fence;
use super::positions::{reserve, Log};
use super::rows::*;
use super::{db, execute, found, query, query_opt, PostgresStore};
use crate::store::*;

const ERASURE_COLUMNS: &str = "id, profile_id, identities, suppress, state, events_deleted, \
     identities_deleted, audiences_exited, suppressed, created_at, updated_at";

fn erasure_from_row(r: &Row) -> StoreResult<Erasure> {
    let id: String = get(r, 0)?;
    let identities: String = get(r, 2)?;
    let state: String = get(r, 4)?;
    Ok(Erasure {
        identities: serde_json::from_str(&identities)
            .map_err(|e| StoreError::Corrupt(format!("erasure {id} identities: {e}")))?,
        state: ErasureState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("erasure {id} has state {state:?}")))?,
        profile_id: get(r, 1)?,
        suppress: get(r, 3)?,
        counts: ErasureCounts {
            events_deleted: count(get(r, 5)?),
            identities_deleted: count(get(r, 6)?),
            audiences_exited: count(get(r, 7)?),
            suppressed: count(get(r, 8)?),
        },
        created_at: get(r, 9)?,
        updated_at: get(r, 10)?,
        id,
    })
}

fn suppression_from_row(r: &Row) -> StoreResult<Suppression> {
    Ok(Suppression {
        id: get(r, 0)?,
        field: get(r, 1)?,
        hash: get(r, 2)?,
        created_at: get(r, 3)?,
    })
}

async fn erasure(client: &impl deadpool_postgres::GenericClient, id: &str) -> StoreResult<Erasure> {
    let sql = format!("SELECT {ERASURE_COLUMNS} FROM erasures WHERE id = $1");
    match query_opt(client, &sql, &[&id]).await? {
        Some(r) => erasure_from_row(&r),
        None => Err(StoreError::NotFound {
            what: "erasure",
            id: id.to_owned(),
        }),
    }
}

#[async_trait]
impl ErasureStore for PostgresStore {
    async fn begin_erasure(
        &self,
        profile_id: &str,
        identities: Vec<(String, String)>,
        suppress: bool,
    ) -> StoreResult<Erasure> {
        let id = uuid::Uuid::now_v7().to_string();
        let text = serde_json::to_string(&identities).expect("pairs of strings serialize");
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO erasures (id, profile_id, identities, suppress, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', now(), now())",
            &[&id, &profile_id, &text, &suppress],
        )
        .await?;
        erasure(&client, &id).await
    }

    async fn get_erasure(&self, id: &str) -> StoreResult<Erasure> {
        erasure(&self.client().await?, id).await
    }

    async fn pending_erasures(&self) -> StoreResult<Vec<Erasure>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ERASURE_COLUMNS} FROM erasures WHERE state = 'pending' ORDER BY created_at, id"
        );
        collect(&query(&client, &sql, &[]).await?, erasure_from_row)
    }

    async fn erase_profile(&self, step: ProfileErasure) -> StoreResult<ErasureCounts> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        check_fence(&tx, step.fence.as_ref()).await?;
        let record = erasure(&tx, &step.erasure_id).await?;
        let profile_id = record.profile_id.as_str();
        let mut counts = ErasureCounts::default();
        // The profile, and with it its memberships (those of audiences that exist exit).
        let exits = query(
            &tx,
            "WITH gone AS (
                 DELETE FROM profiles WHERE id = $1 RETURNING audience_nums, entered_ats
             )
             SELECT a.id, a.slug, m.entered_at
               FROM gone
              CROSS JOIN LATERAL UNNEST(gone.audience_nums, gone.entered_ats) AS m(num, entered_at)
               JOIN audiences a ON a.num = m.num",
            &[&profile_id],
        )
        .await?;
        let mut exits: Vec<(String, String, Timestamp)> = exits
            .iter()
            .map(|r| Ok((get(r, 1)?, get(r, 0)?, get(r, 2)?)))
            .collect::<StoreResult<_>>()?;
        exits.sort();
        counts.audiences_exited = exits.len() as u64;
        let audience_ids: Vec<&str> = exits.iter().map(|(_, id, _)| id.as_str()).collect();
        execute(
            &tx,
            "UPDATE audiences SET member_count = member_count - 1 WHERE id = ANY($1::text[])",
            &[&audience_ids],
        )
        .await?;
        let mut identities = execute(
            &tx,
            "DELETE FROM identities WHERE profile_id = $1",
            &[&profile_id],
        )
        .await?;
        for (field, value) in &record.identities {
            identities += execute(
                &tx,
                "DELETE FROM identities WHERE field = $1 AND value = $2",
                &[field, value],
            )
            .await?;
        }
        counts.identities_deleted = identities;
        execute(
            &tx,
            "DELETE FROM profile_redirects WHERE to_id = $1 OR from_id = $1",
            &[&profile_id],
        )
        .await?;
        for (field, hash) in &step.suppressions {
            counts.suppressed += execute(
                &tx,
                "INSERT INTO suppressions (id, field, hash, created_at) VALUES ($1, $2, $3, now())
                 ON CONFLICT (field, hash) DO NOTHING",
                &[&uuid::Uuid::now_v7().to_string(), field, hash],
            )
            .await?;
        }
        execute(
            &tx,
            "UPDATE erasures SET identities_deleted = identities_deleted + $2,
                    audiences_exited = audiences_exited + $3, suppressed = suppressed + $4,
                    updated_at = now()
              WHERE id = $1",
            &[
                &step.erasure_id,
                &bigint(counts.identities_deleted),
                &bigint(counts.audiences_exited),
                &bigint(counts.suppressed),
            ],
        )
        .await?;
        if !exits.is_empty() {
            // Last: takes the outbox's lock until the commit (see `positions`).
            let now = to_stored_precision(Utc::now());
            let slugs: Vec<&str> = exits.iter().map(|(s, _, _)| s.as_str()).collect();
            let entered: Vec<Timestamp> = exits.iter().map(|(_, _, t)| *t).collect();
            let insert = tx
                .prepare_cached(
                    "INSERT INTO audience_changes
                         (seq, audience_id, audience_slug, profile_id, kind, at, entered_at, reason)
                     SELECT $1::int8 + u.ord, u.audience_id, u.audience_slug, $4, 'exit', $5,
                            u.entered_at, 'deleted'
                       FROM UNNEST($2::text[], $3::text[], $6::timestamptz[])
                            WITH ORDINALITY AS u(audience_id, audience_slug, entered_at, ord)",
                )
                .await
                .map_err(db)?;
            let before = reserve(&tx, Log::AudienceChanges, exits.len()).await?;
            tx.execute(
                &insert,
                &[&before, &audience_ids, &slugs, &profile_id, &now, &entered],
            )
            .await
            .map_err(db)?;
        }
        let after = erasure(&tx, &step.erasure_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(after.counts)
    }

    async fn delete_events(&self, seqs: Vec<i64>) -> StoreResult<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let deleted = delete_events_by_seq(&tx, &seqs).await?;
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    async fn delete_dead_letters_containing(&self, values: Vec<String>) -> StoreResult<u64> {
        let client = self.client().await?;
        let mut deleted = 0;
        for v in values.iter().filter(|v| !v.is_empty()) {
            deleted += execute(
                &client,
                "DELETE FROM dead_letters WHERE position($1::bytea IN raw) > 0",
                &[&v.as_bytes()],
            )
            .await?;
        }
        Ok(deleted)
    }

    async fn finish_erasure(&self, id: &str, events_deleted: u64) -> StoreResult<Erasure> {
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE erasures SET state = 'done', identities = '[]',
                    events_deleted = events_deleted + $2, updated_at = now()
              WHERE id = $1",
            &[&id, &bigint(events_deleted)],
        )
        .await?;
        erasure(&client, id).await
    }

    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>> {
        let client = self.client().await?;
        let sql = "SELECT id, field, hash, created_at FROM suppressions ORDER BY created_at, id";
        collect(&query(&client, sql, &[]).await?, suppression_from_row)
    }

    async fn delete_suppression(&self, id: &str) -> StoreResult<()> {
        let client = self.client().await?;
        let n = execute(&client, "DELETE FROM suppressions WHERE id = $1", &[&id]).await?;
        found(n, "suppression", id)
    }

    async fn count_suppressed(&self, source: &str, n: u64) -> StoreResult<()> {
        if n == 0 {
            return Ok(());
        }
        add_suppressed(&self.client().await?, source, n).await
    }

    async fn suppressed_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT source, count FROM suppressed_counts ORDER BY source",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((get(r, 0)?, count(get(r, 1)?))))
            .collect()
    }
}

/// Deletes events by position, keeping each stream's count right.
pub(super) async fn delete_events_by_seq(
    tx: &deadpool_postgres::Transaction<'_>,
    seqs: &[i64],
) -> StoreResult<u64> {
    let rows = query(
        tx,
        "WITH gone AS (DELETE FROM events WHERE seq = ANY($1::int8[]) RETURNING stream),
              per_stream AS (SELECT stream, COUNT(*) AS n FROM gone GROUP BY stream),
              counted AS (
                  UPDATE streams s SET events = GREATEST(s.events - p.n, 0)
                    FROM per_stream p WHERE s.name = p.stream
              )
         SELECT COALESCE(SUM(n), 0)::int8 FROM per_stream",
        &[&seqs],
    )
    .await?;
    Ok(rows
        .first()
        .map(|r| get::<i64>(r, 0))
        .transpose()?
        .map_or(0, count))
}

/// Adds `n` to the suppressed count of `source` (an import job's id, or `collect`), in the
/// caller's transaction when given one: the import counts a page's dropped events in the page's
/// commit.
pub(super) async fn add_suppressed(
    client: &impl deadpool_postgres::GenericClient,
    source: &str,
    n: u64,
) -> StoreResult<()> {
    if n > 0 {
        execute(
            client,
            "INSERT INTO suppressed_counts (source, count) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET count = suppressed_counts.count + excluded.count",
            &[&source, &bigint(n)],
        )
        .await?;
    }
    Ok(())
}
