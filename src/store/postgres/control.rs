//! Authorizations and jobs in PostgreSQL.

use async_trait::async_trait;
use chrono::Utc;

use super::rows::*;
use super::{
    db, execute, execute_raw, found, is_unique_violation, not_found, query, query_opt,
    PostgresStore,
};
use crate::store::*;

/// The columns an authorization's credentials are stored in.
struct CredentialColumns<'a> {
    method: &'static str,
    access_key_id: Option<&'a str>,
    secret_sealed: Option<&'a [u8]>,
    role_arn: Option<&'a str>,
    external_id: Option<&'a str>,
}

impl<'a> CredentialColumns<'a> {
    fn of(credentials: &'a Credentials) -> Self {
        match credentials {
            Credentials::AwsKeys {
                access_key_id,
                sealed_secret_access_key,
            } => Self {
                method: "aws_keys",
                access_key_id: Some(access_key_id),
                secret_sealed: Some(sealed_secret_access_key),
                role_arn: None,
                external_id: None,
            },
            Credentials::AwsRole {
                role_arn,
                external_id,
            } => Self {
                method: "aws_role",
                access_key_id: None,
                secret_sealed: None,
                role_arn: Some(role_arn),
                external_id: Some(external_id),
            },
        }
    }
}

#[async_trait]
impl ControlStore for PostgresStore {
    async fn insert_authorization(&self, auth: Authorization) -> StoreResult<()> {
        let client = self.client().await?;
        let c = CredentialColumns::of(&auth.credentials);
        let inserted = execute_raw(
            &client,
            &format!(
                "INSERT INTO authorizations ({AUTH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &auth.id,
                &auth.label,
                &auth.description,
                &c.method,
                &c.access_key_id,
                &c.secret_sealed,
                &c.role_arn,
                &c.external_id,
                &auth.created_at,
            ],
        )
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "an authorization labelled {:?} already exists; choose another label",
                auth.label
            ))),
            other => other.map(|_| ()).map_err(db),
        }
    }

    async fn list_authorizations(&self) -> StoreResult<Vec<Authorization>> {
        let client = self.client().await?;
        let sql = format!("SELECT {AUTH_COLUMNS} FROM authorizations ORDER BY created_at, id");
        collect(&query(&client, &sql, &[]).await?, authorization_from_row)
    }

    async fn get_authorization(&self, id: &str) -> StoreResult<Authorization> {
        let client = self.client().await?;
        let sql = format!("SELECT {AUTH_COLUMNS} FROM authorizations WHERE id = $1");
        match query_opt(&client, &sql, &[&id]).await? {
            Some(row) => authorization_from_row(&row),
            None => Err(not_found("authorization", id)),
        }
    }

    async fn delete_authorization(&self, id: &str) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // The row is locked first, so no job can start using it between the check and the
        // delete (a job's foreign key check waits for this transaction).
        let locked = query_opt(
            &tx,
            "SELECT 1 FROM authorizations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
        if locked.is_none() {
            return Err(not_found("authorization", id));
        }
        let users: Vec<String> = query(
            &tx,
            "SELECT label FROM jobs WHERE authorization_id = $1 ORDER BY label",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| get(row, 0))
        .collect::<StoreResult<_>>()?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "authorization {id} is used by job(s) {}; delete those jobs first",
                users.join(", ")
            )));
        }
        execute(&tx, "DELETE FROM authorizations WHERE id = $1", &[&id]).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_job(&self, job: Job) -> StoreResult<()> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO jobs (id, job_type, label, description, authorization_id, config,
                 state, last_error, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &job.id,
                &job.job_type.as_str(),
                &job.label,
                &job.description,
                &job.authorization_id,
                &job.config.to_string(),
                &job.state.as_str(),
                &job.last_error,
                &job.created_at,
                &job.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        let client = self.client().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at, id");
        collect(&query(&client, &sql, &[]).await?, job_from_row)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        let client = self.client().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        match query_opt(&client, &sql, &[&id]).await? {
            Some(row) => job_from_row(&row),
            None => Err(not_found("job", id)),
        }
    }

    async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        last_error: Option<&str>,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let updated = execute(
            &client,
            "UPDATE jobs SET state = $2, last_error = $3, updated_at = $4 WHERE id = $1",
            &[&id, &state.as_str(), &last_error, &Utc::now()],
        )
        .await?;
        found(updated, "job", id)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let client = self.client().await?;
        // Its checkpoints, dead letters and export progress go with it (ON DELETE CASCADE).
        let deleted = execute(&client, "DELETE FROM jobs WHERE id = $1", &[&id]).await?;
        found(deleted, "job", id)
    }
}
