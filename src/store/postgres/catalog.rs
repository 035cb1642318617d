//! Stream mappings and audience definitions in PostgreSQL.

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::Row;

use super::rows::*;
use super::{
    db, execute, execute_raw, found, is_unique_violation, not_found, query, query_opt,
    PostgresStore,
};
use crate::store::*;

const AUDIENCE_COLUMNS: &str = "id, slug, name, description, filter, created_at, updated_at";

fn audience_from_row(r: &Row) -> StoreResult<Audience> {
    Ok(Audience {
        id: get(r, 0)?,
        slug: get(r, 1)?,
        name: get(r, 2)?,
        description: get(r, 3)?,
        filter: get(r, 4)?,
        created_at: get(r, 5)?,
        updated_at: get(r, 6)?,
    })
}

fn audience_with_count(r: &Row) -> StoreResult<(Audience, u64)> {
    Ok((audience_from_row(r)?, count(get(r, 7)?)))
}

fn mapping_from_row(r: &Row) -> StoreResult<StreamMapping> {
    Ok(StreamMapping {
        stream: get(r, 0)?,
        text: get(r, 1)?,
        updated_at: get(r, 2)?,
    })
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn put_mapping(&self, stream: &str, text: &str) -> StoreResult<StreamMapping> {
        let client = self.client().await?;
        // Returned as it will be read back.
        let now = to_stored_precision(Utc::now());
        execute(
            &client,
            "INSERT INTO stream_mappings (stream, text, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (stream) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
            &[&stream, &text, &now],
        )
        .await?;
        Ok(StreamMapping {
            stream: stream.to_owned(),
            text: text.to_owned(),
            updated_at: now,
        })
    }

    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping> {
        let client = self.client().await?;
        let sql = "SELECT stream, text, updated_at FROM stream_mappings WHERE stream = $1";
        match query_opt(&client, sql, &[&stream]).await? {
            Some(row) => mapping_from_row(&row),
            None => Err(not_found("mapping for stream", stream)),
        }
    }

    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>> {
        let client = self.client().await?;
        let sql = "SELECT stream, text, updated_at FROM stream_mappings ORDER BY stream";
        collect(&query(&client, sql, &[]).await?, mapping_from_row)
    }

    async fn insert_audience(&self, a: Audience) -> StoreResult<()> {
        let client = self.client().await?;
        let inserted = execute_raw(
            &client,
            &format!(
                "INSERT INTO audiences ({AUDIENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &a.id,
                &a.slug,
                &a.name,
                &a.description,
                &a.filter,
                &a.created_at,
                &a.updated_at,
            ],
        )
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "an audience with slug {:?} already exists; choose another slug",
                a.slug
            ))),
            other => other.map(|_| ()).map_err(db),
        }
    }

    async fn update_audience(&self, a: Audience) -> StoreResult<()> {
        let client = self.client().await?;
        let updated = execute(
            &client,
            "UPDATE audiences SET name = $2, description = $3, filter = $4, updated_at = $5
              WHERE id = $1",
            &[&a.id, &a.name, &a.description, &a.filter, &a.updated_at],
        )
        .await?;
        found(updated, "audience", &a.slug)
    }

    async fn get_audience(&self, slug: &str) -> StoreResult<Audience> {
        let client = self.client().await?;
        let sql = format!("SELECT {AUDIENCE_COLUMNS} FROM audiences WHERE slug = $1");
        match query_opt(&client, &sql, &[&slug]).await? {
            Some(row) => audience_from_row(&row),
            None => Err(not_found("audience", slug)),
        }
    }

    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>> {
        let client = self.client().await?;
        let sql = format!("SELECT {AUDIENCE_COLUMNS}, member_count FROM audiences ORDER BY slug");
        collect(&query(&client, &sql, &[]).await?, audience_with_count)
    }

    async fn delete_audience(&self, slug: &str) -> StoreResult<()> {
        let client = self.client().await?;
        // Its memberships go with it: entries of its number left in member lists are never
        // read again (numbers are not reused; see `members`). Its outbox rows stay.
        let deleted = execute(&client, "DELETE FROM audiences WHERE slug = $1", &[&slug]).await?;
        found(deleted, "audience", slug)
    }
}
