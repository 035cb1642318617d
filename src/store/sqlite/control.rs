//! Authorizations and jobs in SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::*;
use super::{db, now_text, SqliteStore};
use crate::store::*;

#[async_trait]
impl ControlStore for SqliteStore {
    async fn insert_authorization(&self, auth: Authorization) -> StoreResult<()> {
        self.write(move |tx| {
            let (method, key_id, sealed, role_arn, external_id) = match &auth.credentials {
                Credentials::AwsKeys { access_key_id, sealed_secret_access_key } => {
                    ("aws_keys", Some(access_key_id.as_str()), Some(sealed_secret_access_key.as_slice()), None, None)
                }
                Credentials::AwsRole { role_arn, external_id } => {
                    ("aws_role", None, None, Some(role_arn.as_str()), Some(external_id.as_str()))
                }
            };
            let result = tx.execute(
                "INSERT INTO authorizations (id, label, description, method, access_key_id, secret_sealed, role_arn, external_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![auth.id, auth.label, auth.description, method, key_id, sealed, role_arn, external_id, to_text(&auth.created_at)],
            );
            match result {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict(format!("an authorization labelled {:?} already exists; choose another label", auth.label)))
                }
                other => other.map(|_| ()).map_err(db),
            }
        })
        .await
    }

    async fn list_authorizations(&self) -> StoreResult<Vec<Authorization>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations ORDER BY created_at, id"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], authorization_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn get_authorization(&self, id: &str) -> StoreResult<Authorization> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AUTH_COLUMNS} FROM authorizations WHERE id = ?1"),
                [&id],
                authorization_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound {
                what: "authorization",
                id,
            })?
        })
        .await
    }

    async fn delete_authorization(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            let users: Vec<String> = tx
                .prepare("SELECT label FROM jobs WHERE authorization_id = ?1 ORDER BY label")
                .and_then(|mut s| s.query_map([&id], |r| r.get(0))?.collect())
                .map_err(db)?;
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "authorization {id} is used by job(s) {}; delete those jobs first",
                    users.join(", ")
                )));
            }
            match tx
                .execute("DELETE FROM authorizations WHERE id = ?1", [&id])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound {
                    what: "authorization",
                    id,
                }),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn insert_job(&self, job: Job) -> StoreResult<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO jobs (id, job_type, label, description, authorization_id, config, state, last_error, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    job.id, job.job_type.as_str(), job.label, job.description, job.authorization_id,
                    job.config.to_string(), job.state.as_str(), job.last_error,
                    to_text(&job.created_at), to_text(&job.updated_at)
                ],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at, id"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], job_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [&id],
                job_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound { what: "job", id })?
        })
        .await
    }

    async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        last_error: Option<&str>,
    ) -> StoreResult<()> {
        let (id, last_error) = (id.to_owned(), last_error.map(str::to_owned));
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE jobs SET state = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id, state.as_str(), last_error, now_text()],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "job", id });
            }
            Ok(())
        })
        .await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            match tx
                .execute("DELETE FROM jobs WHERE id = ?1", [&id])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound { what: "job", id }),
                _ => Ok(()),
            }
        })
        .await
    }
}
