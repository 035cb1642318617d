//! The control plane: authorizations to AWS and the jobs that use them. Small, rarely
//! written, read by every API request and job start.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StoreResult, Timestamp};

/// How an authorization reaches AWS. The secret key is only ever held sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    AwsKeys {
        access_key_id: String,
        sealed_secret_access_key: Vec<u8>,
    },
    AwsRole {
        role_arn: String,
        external_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub id: String,
    pub label: String,
    pub description: String,
    pub credentials: Credentials,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    KinesisImport,
    KinesisExport,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::KinesisImport => "kinesis_import",
            JobType::KinesisExport => "kinesis_export",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kinesis_import" => Some(JobType::KinesisImport),
            "kinesis_export" => Some(JobType::KinesisExport),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(JobState::Running),
            "paused" => Some(JobState::Paused),
            "failed" => Some(JobState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub job_type: JobType,
    pub label: String,
    pub description: String,
    pub authorization_id: String,
    pub config: serde_json::Value,
    pub state: JobState,
    pub last_error: Option<String>,
    pub totals: JobTotals,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Counters kept in the same transaction as the data they count, so they are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTotals {
    pub records_in: u64,
    pub events_out: u64,
    pub dead_letters: u64,
}

/// Authorizations and jobs.
#[async_trait]
pub trait ControlStore: Send + Sync + 'static {
    /// Fails with `Conflict` when the label is taken.
    async fn insert_authorization(&self, auth: Authorization) -> StoreResult<()>;
    async fn list_authorizations(&self) -> StoreResult<Vec<Authorization>>;
    async fn get_authorization(&self, id: &str) -> StoreResult<Authorization>;
    /// Fails with `Conflict` while a job uses it.
    async fn delete_authorization(&self, id: &str) -> StoreResult<()>;
    async fn insert_job(&self, job: Job) -> StoreResult<()>;
    async fn list_jobs(&self) -> StoreResult<Vec<Job>>;
    async fn get_job(&self, id: &str) -> StoreResult<Job>;
    async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        last_error: Option<&str>,
    ) -> StoreResult<()>;
    /// Deletes the job with its checkpoints and dead letters (its events stay in their stream).
    async fn delete_job(&self, id: &str) -> StoreResult<()>;
}
