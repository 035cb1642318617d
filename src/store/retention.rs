//! Retention: how long each stream keeps its events, the pruning of events, dead letters and
//! acknowledged outbox rows in small batches, giving freed space back, and the store's sizes.

use async_trait::async_trait;

use super::{StoreResult, Timestamp};

/// A stream's own retention. `max_age_secs: None` keeps its events for ever; a stream without
/// a row follows the server's default (`retention_max_age`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRetention {
    pub stream: String,
    pub max_age_secs: Option<i64>,
    pub updated_at: Timestamp,
}

/// The store's files (bytes) and rows per table, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSizes {
    /// `(file, bytes)`: SQLite's `main`, `cdp` and their `-wal`s; PostgreSQL's `database`.
    pub files: Vec<(String, u64)>,
    /// `(table, rows)` of `events`, `dead_letters`, `audience_changes`, `profiles`.
    pub rows: Vec<(String, u64)>,
}

impl StoreSizes {
    /// The bytes of the file that holds the event log (the main file, or the database).
    pub fn event_log_bytes(&self) -> u64 {
        self.files
            .iter()
            .find(|(f, _)| f == "main" || f == "database")
            .map_or(0, |(_, b)| *b)
    }
}

/// Retention settings per stream and the deletes that apply them.
///
/// # Contract
///
/// Each prune deletes at most `limit` rows, oldest first (by position), in one short
/// transaction, and only rows older than `before`: it stops at the first row that is not, so a
/// call costs `limit` rows at most however large the table. The event log keeps its ordering
/// contract (positions are never reused) and each stream's event count stays right.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    async fn set_stream_retention(
        &self,
        stream: &str,
        max_age_secs: Option<i64>,
    ) -> StoreResult<StreamRetention>;
    async fn list_stream_retention(&self) -> StoreResult<Vec<StreamRetention>>;
    /// Deletes the oldest events of `stream` stored before `before` with a position up to
    /// `upto_seq` (the profile processor's cursor: events it has not applied are kept).
    async fn prune_events(
        &self,
        stream: &str,
        before: Timestamp,
        upto_seq: i64,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Deletes the oldest dead letters (of every job) recorded before `before`.
    async fn prune_dead_letters(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// Deletes the oldest audience changes written before `before` with a position up to
    /// `upto_seq` (what every running export job has acknowledged).
    async fn prune_audience_changes(
        &self,
        before: Timestamp,
        upto_seq: i64,
        limit: u32,
    ) -> StoreResult<u64>;
    /// The oldest audience change still kept (`None` when the outbox is empty).
    async fn oldest_audience_change(&self) -> StoreResult<Option<i64>>;
    /// Gives some freed pages back to the file system (SQLite's incremental vacuum, a few
    /// MiB per call); PostgreSQL's autovacuum does this itself.
    async fn reclaim_space(&self) -> StoreResult<()>;
    async fn store_sizes(&self) -> StoreResult<StoreSizes>;
}
