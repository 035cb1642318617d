//! `/api/jobs`: import and export jobs, their status and their dead letters.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::jobs::config::{JobConfig, StartPositionSchema};
pub use crate::jobs::export::ExportConfig;
pub use crate::jobs::import::{FieldError, ImportConfig};
use crate::store::{self, BackfillProgress, DeadLetter, Job, ShardCheckpoint};

/// `POST /api/jobs`. (The server reads the body field by field first, so that a missing or
/// malformed field is answered with a 400 naming it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateJob {
    /// 1–100 characters.
    pub label: String,
    /// At most 2000 characters.
    #[serde(default)]
    pub description: String,
    /// The id of the authorization the job reaches Kinesis with.
    pub authorization: String,
    #[serde(flatten)]
    pub config: JobConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    /// Stopped by an error (`last_error`); resuming retries it.
    Failed,
}

impl From<store::JobState> for JobState {
    fn from(state: store::JobState) -> Self {
        match state {
            store::JobState::Running => Self::Running,
            store::JobState::Paused => Self::Paused,
            store::JobState::Failed => Self::Failed,
        }
    }
}

/// A job with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    #[serde(flatten)]
    pub config: JobConfig,
    pub label: String,
    pub description: String,
    /// The authorization's id.
    pub authorization: String,
    pub state: JobState,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: JobStatus,
}

impl JobView {
    /// `job` with one status entry per known shard, without backfill progress.
    pub fn new(job: &Job, shards: &[ShardCheckpoint]) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: job.id.clone(),
            config: JobConfig::of(job)?,
            label: job.label.clone(),
            description: job.description.clone(),
            authorization: job.authorization_id.clone(),
            state: job.state.into(),
            last_error: job.last_error.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            status: JobStatus {
                state: job.state.into(),
                last_error: job.last_error.clone(),
                records_in: job.totals.records_in,
                events_out: job.totals.events_out,
                dead_letters: job.totals.dead_letters,
                suppressed: 0,
                shards: shards.iter().map(ShardView::from).collect(),
                backfill: None,
            },
        })
    }
}

/// Where a job stands: its totals, and (import jobs) one entry per known shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    pub state: JobState,
    pub last_error: Option<String>,
    pub records_in: u64,
    pub events_out: u64,
    pub dead_letters: u64,
    /// Import jobs: events dropped for an identifier on the suppression list.
    #[serde(default)]
    pub suppressed: u64,
    pub shards: Vec<ShardView>,
    /// Export jobs only (absent for import jobs and in the answer to a create): the
    /// one-time send of the existing members, null when none was asked for.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<Backfill>, required = false)]
    pub backfill: Option<Option<Backfill>>,
}

/// Tells a present `null` (`Some(None)`) from an absent key (`None`, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Backfill {
    pub total: u64,
    pub sent: u64,
    pub done: bool,
}

impl From<&BackfillProgress> for Backfill {
    fn from(b: &BackfillProgress) -> Self {
        Self {
            total: b.total,
            sent: b.sent,
            done: b.done,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    WaitingForParent,
    Reading,
    Finished,
}

impl From<store::ShardState> for ShardState {
    fn from(state: store::ShardState) -> Self {
        match state {
            store::ShardState::WaitingForParent => Self::WaitingForParent,
            store::ShardState::Reading => Self::Reading,
            store::ShardState::Finished => Self::Finished,
        }
    }
}

/// One shard's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShardView {
    pub shard_id: String,
    /// The first of `parent_shard_ids`.
    pub parent_shard_id: Option<String>,
    pub parent_shard_ids: Vec<String>,
    pub state: ShardState,
    /// The sequence number of the last record fully stored.
    pub checkpoint: Option<String>,
    pub sub_sequence_number: Option<u64>,
    pub millis_behind_latest: Option<i64>,
    pub records: u64,
}

impl From<&ShardCheckpoint> for ShardView {
    fn from(shard: &ShardCheckpoint) -> Self {
        Self {
            shard_id: shard.shard_id.clone(),
            parent_shard_id: shard.parent_shard_ids.first().cloned(),
            parent_shard_ids: shard.parent_shard_ids.clone(),
            state: shard.state.into(),
            checkpoint: shard.sequence_number.clone(),
            sub_sequence_number: shard.sub_sequence_number,
            millis_behind_latest: shard.millis_behind_latest,
            records: shard.records,
        }
    }
}

/// `GET /api/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// `GET /api/jobs/{id}/dead-letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// At most this many, newest first (default 100; clamped to 1–1000).
    // Any u32 is accepted (and clamped): utoipa's int32 would put 2^31 out of range.
    #[param(value_type = Option<u64>, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

/// A record part a job could not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: Option<u64>,
    /// Its order among the dead letters of one record.
    pub position: u32,
    pub partition_key: String,
    pub reason: String,
    /// The raw bytes in standard base64 (they are often not text).
    pub raw_base64: String,
    pub created_at: DateTime<Utc>,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(dead: &DeadLetter) -> Self {
        let l = &dead.letter;
        Self {
            id: dead.id,
            shard_id: l.shard_id.clone(),
            sequence_number: l.sequence_number.clone(),
            sub_sequence_number: l.sub_sequence_number,
            position: l.position,
            partition_key: l.partition_key.clone(),
            reason: l.reason.clone(),
            raw_base64: base64::engine::general_purpose::STANDARD.encode(&l.raw),
            created_at: dead.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterView>,
}
