//! Erasure of a person (a profile, its identifiers, memberships and events) and the
//! suppression list that keeps them from coming back.
//!
//! An erasure runs in steps that each commit on their own (the events and the profile live in
//! different files of the SQLite store, which no transaction spans), so its progress is kept in
//! an **erasure record**: made `pending` before anything is deleted, `done` after the last step.
//! Every step is idempotent, so a pending record found at start is simply run again: an erasure
//! is either not started or completes, never half a person.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Fence, StoreResult, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Recorded; some steps may have run.
    Pending,
    /// Everything is deleted; the record keeps only counts (no identifier values).
    Done,
}

impl ErasureState {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureState::Pending => "pending",
            ErasureState::Done => "done",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ErasureState::Pending),
            "done" => Some(ErasureState::Done),
            _ => None,
        }
    }
}

/// What an erasure deleted (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureCounts {
    pub events_deleted: u64,
    pub identities_deleted: u64,
    pub audiences_exited: u64,
    pub suppressed: u64,
}

/// An erasure record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub id: String,
    /// The live profile being erased.
    pub profile_id: String,
    /// The profile's `(field, value)` identifiers, kept while `Pending` (to find its events
    /// again after a restart) and cleared when `Done`.
    pub identities: Vec<(String, String)>,
    pub suppress: bool,
    pub state: ErasureState,
    pub counts: ErasureCounts,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A suppressed identifier: its identity field and the SHA-256 of its value (hex). The value
/// itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub id: String,
    pub field: String,
    pub hash: String,
    pub created_at: Timestamp,
}

/// The profile step of an erasure: one transaction.
#[derive(Debug, Clone)]
pub struct ProfileErasure {
    pub erasure_id: String,
    /// Suppressions to add (empty without `suppress`); ones already listed are kept as they are.
    pub suppressions: Vec<(String, String)>,
    /// The processor's lease when several nodes share the work (profile writes are its).
    pub fence: Option<Fence>,
}

/// Erasure records, the suppression list, and the deletes an erasure makes.
///
/// # Contract
///
/// - [`erase_profile`](ErasureStore::erase_profile) deletes, in ONE transaction, the record's
///   profile, every identity row of the profile or naming one of the record's identifiers,
///   redirects to the profile, and its memberships (member counts drop), writes an `exit` with
///   reason `deleted` to the outbox for each membership (so it keeps the
///   [`OutboxStore`](super::OutboxStore)'s ordering contract), adds the suppressions, and adds
///   its counts to the record. Run again (the profile gone), it deletes and writes nothing.
/// - [`delete_events`](ErasureStore::delete_events) removes events by position and keeps each
///   stream's event count right; positions are never reused.
/// - [`finish_erasure`](ErasureStore::finish_erasure) marks the record `Done` and forgets its
///   identifier values. A backend that keeps deleted bytes on disk (SQLite's free pages and
///   WAL) overwrites them before it returns.
#[async_trait]
pub trait ErasureStore: Send + Sync + 'static {
    /// Records a pending erasure of `profile_id` with its identifiers.
    async fn begin_erasure(
        &self,
        profile_id: &str,
        identities: Vec<(String, String)>,
        suppress: bool,
    ) -> StoreResult<Erasure>;
    async fn get_erasure(&self, id: &str) -> StoreResult<Erasure>;
    /// Erasures not yet `Done`, oldest first.
    async fn pending_erasures(&self) -> StoreResult<Vec<Erasure>>;
    /// The profile step (see the contract); returns the record's counts after it.
    async fn erase_profile(&self, step: ProfileErasure) -> StoreResult<ErasureCounts>;
    /// Deletes these events (positions not found are skipped); returns how many went.
    async fn delete_events(&self, seqs: Vec<i64>) -> StoreResult<u64>;
    /// Deletes dead letters whose raw bytes contain any of `values`; returns how many went.
    async fn delete_dead_letters_containing(&self, values: Vec<String>) -> StoreResult<u64>;
    /// Adds `events_deleted` to the record's count and marks it done (see the contract).
    async fn finish_erasure(&self, id: &str, events_deleted: u64) -> StoreResult<Erasure>;
    async fn list_suppressions(&self) -> StoreResult<Vec<Suppression>>;
    /// `NotFound` when there is no such suppression.
    async fn delete_suppression(&self, id: &str) -> StoreResult<()>;
    /// Counts events dropped because they carried a suppressed identifier, per `source` (an
    /// import job's id, or `collect`).
    async fn count_suppressed(&self, source: &str, n: u64) -> StoreResult<()>;
    /// Every source's count of suppressed events.
    async fn suppressed_counts(&self) -> StoreResult<Vec<(String, u64)>>;
}
