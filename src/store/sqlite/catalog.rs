//! Stream mappings and audience definitions in SQLite (the CDP file).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::profiles::{set_state, state_value};
use super::rows::*;
use super::{db, SqliteStore};
use crate::store::*;

const AUDIENCE_COLUMNS: &str = "id, slug, name, description, filter, created_at, updated_at";

fn audience_from_row(r: &Row<'_>) -> RowResult<Audience> {
    let created_at: String = r.get(5)?;
    let updated_at: String = r.get(6)?;
    let (id, slug, name, description, filter) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        Ok(Audience {
            id,
            slug,
            name,
            description,
            filter,
            created_at: parse_time(&created_at)?,
            updated_at: parse_time(&updated_at)?,
        })
    })())
}

fn mapping_from_row(r: &Row<'_>) -> RowResult<StreamMapping> {
    let updated_at: String = r.get(2)?;
    let (stream, text) = (r.get(0)?, r.get(1)?);
    Ok((|| {
        Ok(StreamMapping {
            stream,
            text,
            updated_at: parse_time(&updated_at)?,
        })
    })())
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn put_mapping(&self, stream: &str, text: &str) -> StoreResult<StreamMapping> {
        let (stream, text) = (stream.to_owned(), text.to_owned());
        self.write(move |tx| {
            let now = parse_time(&to_text(&Utc::now()))?;
            tx.execute(
                "INSERT INTO stream_mappings (stream, text, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                params![stream, text, to_text(&now)],
            )
            .map_err(db)?;
            Ok(StreamMapping {
                stream,
                text,
                updated_at: now,
            })
        })
        .await
    }

    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT stream, text, updated_at FROM stream_mappings WHERE stream = ?1",
                [&stream],
                mapping_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound {
                what: "mapping for stream",
                id: stream,
            })?
        })
        .await
    }

    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT stream, text, updated_at FROM stream_mappings ORDER BY stream",
                )
                .map_err(db)?;
            let rows = stmt.query_map([], mapping_from_row).map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn insert_audience(&self, a: Audience) -> StoreResult<()> {
        self.write(move |tx| {
            let num = state_value(tx, "audience_num")?
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                + 1;
            let result = tx.execute(
                &format!("INSERT INTO audiences ({AUDIENCE_COLUMNS}, num) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![a.id, a.slug, a.name, a.description, a.filter, to_text(&a.created_at), to_text(&a.updated_at), num],
            );
            if result.is_ok() {
                set_state(tx, "audience_num", Some(&num.to_string()))?;
            }
            match result {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Conflict(format!(
                        "an audience with slug {:?} already exists; choose another slug",
                        a.slug
                    )))
                }
                other => other.map(|_| ()).map_err(db),
            }
        })
        .await
    }

    async fn update_audience(&self, a: Audience) -> StoreResult<()> {
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE audiences SET name = ?2, description = ?3, filter = ?4, updated_at = ?5 WHERE id = ?1",
                    params![a.id, a.name, a.description, a.filter, to_text(&a.updated_at)],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "audience", id: a.slug });
            }
            Ok(())
        })
        .await
    }

    async fn get_audience(&self, slug: &str) -> StoreResult<Audience> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AUDIENCE_COLUMNS} FROM audiences WHERE slug = ?1"),
                [&slug],
                audience_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound {
                what: "audience",
                id: slug,
            })?
        })
        .await
    }

    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIENCE_COLUMNS}, member_count FROM audiences ORDER BY slug"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    let count: i64 = r.get(7)?;
                    Ok(audience_from_row(r)?.map(|a| (a, count.max(0) as u64)))
                })
                .map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn delete_audience(&self, slug: &str) -> StoreResult<()> {
        let slug = slug.to_owned();
        self.write(move |tx| {
            match tx
                .execute("DELETE FROM audiences WHERE slug = ?1", [&slug])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound {
                    what: "audience",
                    id: slug,
                }),
                _ => Ok(()),
            }
        })
        .await
    }
}
