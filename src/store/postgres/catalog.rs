//! Stream mappings and audience definitions in PostgreSQL.

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::Row;

use super::rows::*;
use super::{db, is_unique_violation, PostgresStore};
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
        client
            .execute(
                "INSERT INTO stream_mappings (stream, text, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (stream) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                &[&stream, &text, &now],
            )
            .await
            .map_err(db)?;
        Ok(StreamMapping {
            stream: stream.to_owned(),
            text: text.to_owned(),
            updated_at: now,
        })
    }

    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT stream, text, updated_at FROM stream_mappings WHERE stream = $1",
            )
            .await
            .map_err(db)?;
        match client.query_opt(&stmt, &[&stream]).await.map_err(db)? {
            Some(row) => mapping_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "mapping for stream",
                id: stream.to_owned(),
            }),
        }
    }

    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT stream, text, updated_at FROM stream_mappings ORDER BY stream")
            .await
            .map_err(db)?;
        let rows = client.query(&stmt, &[]).await.map_err(db)?;
        collect(&rows, mapping_from_row)
    }

    async fn insert_audience(&self, a: Audience) -> StoreResult<()> {
        let client = self.client().await?;
        let result = client
            .execute(
                &format!("INSERT INTO audiences ({AUDIENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[&a.id, &a.slug, &a.name, &a.description, &a.filter, &a.created_at, &a.updated_at],
            )
            .await;
        match result {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "an audience with slug {:?} already exists; choose another slug",
                a.slug
            ))),
            other => other.map(|_| ()).map_err(db),
        }
    }

    async fn update_audience(&self, a: Audience) -> StoreResult<()> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE audiences SET name = $2, description = $3, filter = $4, updated_at = $5
                  WHERE id = $1",
                &[&a.id, &a.name, &a.description, &a.filter, &a.updated_at],
            )
            .await
            .map_err(db)?;
        match updated {
            0 => Err(StoreError::NotFound {
                what: "audience",
                id: a.slug,
            }),
            _ => Ok(()),
        }
    }

    async fn get_audience(&self, slug: &str) -> StoreResult<Audience> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {AUDIENCE_COLUMNS} FROM audiences WHERE slug = $1"
            ))
            .await
            .map_err(db)?;
        match client.query_opt(&stmt, &[&slug]).await.map_err(db)? {
            Some(row) => audience_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "audience",
                id: slug.to_owned(),
            }),
        }
    }

    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {AUDIENCE_COLUMNS}, member_count FROM audiences ORDER BY slug"
            ))
            .await
            .map_err(db)?;
        let rows = client.query(&stmt, &[]).await.map_err(db)?;
        collect(&rows, audience_with_count)
    }

    async fn delete_audience(&self, slug: &str) -> StoreResult<()> {
        let client = self.client().await?;
        // Its memberships go with it (ON DELETE CASCADE); its outbox rows stay.
        let deleted = client
            .execute("DELETE FROM audiences WHERE slug = $1", &[&slug])
            .await
            .map_err(db)?;
        match deleted {
            0 => Err(StoreError::NotFound {
                what: "audience",
                id: slug.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
