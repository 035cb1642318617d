//! A job's configuration, typed: what the API accepts and shows, what the store keeps (as
//! JSON beside the job's type) and what the manager hands its runner, matched once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::export::ExportConfig;
use super::import::{FieldError, ImportConfig};
use crate::store::{Job, JobType};

/// What a job does, as `"type"` next to its `"config"` (the two keys sit at the top level of a
/// job, as they always have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum JobConfig {
    /// Every shard of a Kinesis stream into a Tributary event stream.
    KinesisImport(ImportConfig),
    /// Audience entries and exits published to a Kinesis stream.
    KinesisExport(ExportConfig),
}

impl JobConfig {
    /// Parses and validates a create request's `config` for a job of `job_type`: the result
    /// is normalized (defaults filled in, empty strings gone), and is what the job runs on.
    pub fn parse(job_type: JobType, config: &Value) -> Result<Self, FieldError> {
        Ok(match job_type {
            JobType::KinesisImport => Self::KinesisImport(ImportConfig::parse(config)?),
            JobType::KinesisExport => Self::KinesisExport(ExportConfig::parse(config)?),
        })
    }

    /// A stored job's configuration, as validated when the job was created.
    pub fn of(job: &Job) -> Result<Self, serde_json::Error> {
        let config = job.config.clone();
        Ok(match job.job_type {
            JobType::KinesisImport => Self::KinesisImport(serde_json::from_value(config)?),
            JobType::KinesisExport => Self::KinesisExport(serde_json::from_value(config)?),
        })
    }

    pub fn job_type(&self) -> JobType {
        match self {
            Self::KinesisImport(_) => JobType::KinesisImport,
            Self::KinesisExport(_) => JobType::KinesisExport,
        }
    }

    /// The `config` object alone, as the store keeps it.
    pub fn to_stored(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::KinesisImport(c) => serde_json::to_value(c),
            Self::KinesisExport(c) => serde_json::to_value(c),
        }
    }
}

/// Where an import job's shards without a checkpoint begin: the schema of the store's
/// `StartPosition`, which `ImportConfig` uses as is.
#[derive(ToSchema)]
#[schema(as = StartPosition)]
#[serde(rename_all = "snake_case")]
pub enum StartPositionSchema {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Only records written after the job starts.
    Latest,
    /// Records from this instant on (RFC 3339, not in the future).
    AtTimestamp(DateTime<Utc>),
}
