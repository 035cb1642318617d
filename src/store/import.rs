//! What an import job keeps besides its events: the checkpoint of every shard and the dead
//! letters of records that could not be decoded. A GetRecords page is committed here whole.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Fence, NewEvent, StoreResult, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    WaitingForParent,
    Reading,
    Finished,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::WaitingForParent => "waiting_for_parent",
            ShardState::Reading => "reading",
            ShardState::Finished => "finished",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "waiting_for_parent" => Some(ShardState::WaitingForParent),
            "reading" => Some(ShardState::Reading),
            "finished" => Some(ShardState::Finished),
            _ => None,
        }
    }
}

/// Where reading a shard without a checkpoint begins. Decided once, when the shard is first
/// registered (the job's start position for the shards it found at start, the oldest record for
/// children found later), and stored so a restart decides the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still in the shard.
    #[default]
    TrimHorizon,
    /// Only records written after the job starts.
    Latest,
    /// Records from this instant on.
    AtTimestamp(Timestamp),
}

impl StartPosition {
    pub fn to_text(&self) -> String {
        match self {
            StartPosition::TrimHorizon => "trim_horizon".into(),
            StartPosition::Latest => "latest".into(),
            StartPosition::AtTimestamp(t) => format!("at_timestamp:{}", t.to_rfc3339()),
        }
    }
    pub fn parse_text(text: &str) -> Option<Self> {
        match text {
            "trim_horizon" => Some(StartPosition::TrimHorizon),
            "latest" => Some(StartPosition::Latest),
            other => other
                .strip_prefix("at_timestamp:")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| StartPosition::AtTimestamp(t.with_timezone(&Utc))),
        }
    }
}

/// Where a job stands on one shard. `sequence_number` is the last record fully stored; reading
/// resumes AFTER it (and after `sub_sequence_number` inside an aggregated record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    pub shard_id: String,
    pub parent_shard_ids: Vec<String>,
    pub state: ShardState,
    pub start_position: StartPosition,
    pub sequence_number: Option<String>,
    pub sub_sequence_number: Option<u64>,
    pub records: u64,
    pub millis_behind_latest: Option<i64>,
}

impl ShardCheckpoint {
    /// A shard as first registered: nothing read from it yet.
    pub fn unread(
        shard_id: String,
        parent_shard_ids: Vec<String>,
        state: ShardState,
        start_position: StartPosition,
    ) -> Self {
        Self {
            shard_id,
            parent_shard_ids,
            state,
            start_position,
            sequence_number: None,
            sub_sequence_number: None,
            records: 0,
            millis_behind_latest: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: Option<u64>,
    /// Several dead letters may come from one record (e.g. bad NDJSON lines): their order.
    pub position: u32,
    pub partition_key: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub job_id: String,
    pub letter: NewDeadLetter,
    pub created_at: Timestamp,
}

/// Everything one GetRecords batch produced on one shard: committed in ONE transaction so that
/// events, dead letters, counters and the checkpoint can never disagree after a crash.
#[derive(Debug, Clone)]
pub struct ShardBatch {
    pub job_id: String,
    pub stream: String,
    pub events: Vec<NewEvent>,
    pub dead_letters: Vec<NewDeadLetter>,
    pub records_in: u64,
    /// Events of the page dropped for carrying a suppressed identifier: added to the job's
    /// suppressed count in the commit that moves the checkpoint past them, so a crash cannot
    /// lose the count.
    pub suppressed: u64,
    pub checkpoint: ShardCheckpoint,
    /// The shard's lease when several nodes share the work: the commit is refused once it
    /// moved (`StoreError::LeaseLost`). `None` on a single node.
    pub fence: Option<Fence>,
}

/// What committing a batch did (replayed events are ignored, not inserted again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub events_inserted: u64,
    pub dead_letters_inserted: u64,
}

/// Shard checkpoints and dead letters of import jobs, and the page commit that moves both
/// with the events they cover.
///
/// [`commit_shard_batch`](ImportStore::commit_shard_batch) appends to the event log, and so
/// keeps the [`EventLog`](super::EventLog)'s ordering contract.
#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    async fn list_checkpoints(&self, job_id: &str) -> StoreResult<Vec<ShardCheckpoint>>;
    /// Records shards as discovered (without touching the progress of known ones).
    async fn register_shards(&self, job_id: &str, shards: &[ShardCheckpoint]) -> StoreResult<()>;
    async fn set_shard_state(
        &self,
        job_id: &str,
        shard_id: &str,
        state: ShardState,
    ) -> StoreResult<()>;
    /// Shared, so a caller can retry a failed commit without copying the batch.
    async fn commit_shard_batch(&self, batch: Arc<ShardBatch>) -> StoreResult<BatchOutcome>;
    async fn list_dead_letters(&self, job_id: &str, limit: u32) -> StoreResult<Vec<DeadLetter>>;
}
