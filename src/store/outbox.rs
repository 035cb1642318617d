//! The audience-change outbox (every entry and exit, in order) and each export job's
//! progress through it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Fence, Membership, NewDeadLetter, StoreResult, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Enter,
    Exit,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Enter => "enter",
            ChangeKind::Exit => "exit",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enter" => Some(ChangeKind::Enter),
            "exit" => Some(ChangeKind::Exit),
            _ => None,
        }
    }
}

/// One entry or exit, before the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudienceChange {
    pub audience_id: String,
    pub audience_slug: String,
    pub profile_id: String,
    pub kind: ChangeKind,
    pub at: Timestamp,
    /// For an exit: when that membership began (trigger consumers want both times).
    pub entered_at: Option<Timestamp>,
}

/// A row of the audience-change outbox. `seq` is its position (see the ordering contract of
/// [`OutboxStore`]): a consumer's cursor is the last `seq` it handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceChange {
    pub seq: i64,
    pub audience_id: String,
    pub audience_slug: String,
    pub profile_id: String,
    pub kind: ChangeKind,
    pub at: Timestamp,
    /// For an exit: when that membership began.
    pub entered_at: Option<Timestamp>,
    /// Why, when it is not the audience's filter: `deleted` for the exits of an erased person
    /// (see [`ErasureStore`](super::ErasureStore)).
    pub reason: Option<String>,
}

/// How far an export job has published. Everything up to `cursor` (an audience-change `seq`)
/// is acknowledged by Kinesis (or dead-lettered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportProgress {
    pub cursor: i64,
    pub backfill: Option<BackfillProgress>,
}

/// The one-time 'enter' of the members an export job found when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillProgress {
    pub total: u64,
    pub sent: u64,
    pub done: bool,
    /// The last `(audience id, profile id)` sent: the next page starts after it.
    pub after: Option<(String, String)>,
}

/// A page of current members, and the outbox head in the same snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPage {
    pub members: Vec<Membership>,
    pub head: i64,
}

/// One finished export round: the new progress, counters and dead letters, committed together.
#[derive(Debug, Clone, Default)]
pub struct ExportRound {
    pub progress: ExportProgress,
    pub changes_read: u64,
    pub records_sent: u64,
    pub dead_letters: Vec<NewDeadLetter>,
    /// The job's lease when several nodes share the work: the round is refused once it moved.
    pub fence: Option<Fence>,
}

/// The audience-change outbox and export progress.
///
/// # Ordering contract
///
/// Every audience change has a position (`seq`), unique and never reused, increasing in the
/// order changes become visible: **once a reader has seen position N, no change with a
/// position below N can still commit.** An export job's cursor (the last `seq` it published)
/// therefore never passes a change it has not sent, however many writers append. The same
/// rules as the [`EventLog`](super::EventLog)'s apply to backends; the conformance suite
/// checks it with concurrent writers (`conformance::outbox`).
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// The outbox after `after_seq`, oldest first: what export jobs publish.
    async fn list_audience_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AudienceChange>>;
    /// The newest audience-change `seq` (0 when none).
    async fn audience_change_head(&self) -> StoreResult<i64>;
    async fn get_export_progress(&self, job_id: &str) -> StoreResult<Option<ExportProgress>>;
    /// Records a finished round atomically: progress, the job's counters, dead letters.
    async fn commit_export_round(&self, job_id: &str, round: Arc<ExportRound>) -> StoreResult<()>;
    /// Current members of these audiences in `(audience id, profile id)` order after `after`,
    /// with the outbox head of the same snapshot.
    async fn backfill_page(
        &self,
        audience_ids: Vec<String>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<BackfillPage>;
}
