//! Positions of the two logs, handed out in commit order (the ordering contract of `EventLog`
//! and `OutboxStore`; the module doc of `postgres` says why a row lock).
//!
//! Both functions lock the log's row in `log_heads` until the transaction ends. Callers take
//! it as the LAST step before inserting the log's rows, after everything else the transaction
//! writes, so writers wait on each other only for the insert and the commit.

use deadpool_postgres::Transaction;

use super::query_one;
use super::rows::get;
use crate::store::StoreResult;

/// A log whose rows are numbered by `log_heads`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Log {
    Events,
    AudienceChanges,
}

impl Log {
    /// Its row in `log_heads`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Log::Events => "events",
            Log::AudienceChanges => "audience_changes",
        }
    }
}

/// Locks `log` until commit and returns the last position handed out; the caller's insert
/// numbers its rows after it and moves the head on (for inserts that learn how many rows they
/// add only under the lock, like the event log's, which skips ids already stored).
///
/// `FOR UPDATE` waits for an earlier writer to commit and then returns the head it left, and
/// the caller's next statement takes a new snapshot that sees that writer's rows.
pub(super) async fn lock_head(tx: &Transaction<'_>, log: Log) -> StoreResult<i64> {
    let sql = "SELECT last_seq FROM log_heads WHERE log = $1 FOR UPDATE";
    get(&query_one(tx, sql, &[&log.key()]).await?, 0)
}

/// Locks `log` until commit and reserves the next `count` positions; returns the last position
/// before them (the rows take `before + 1 ..= before + count`). One statement: an `UPDATE` that
/// waited on the row lock works on the row the earlier writer committed.
pub(super) async fn reserve(tx: &Transaction<'_>, log: Log, count: usize) -> StoreResult<i64> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let sql =
        "UPDATE log_heads SET last_seq = last_seq + $2 WHERE log = $1 RETURNING last_seq - $2";
    get(&query_one(tx, sql, &[&log.key(), &count]).await?, 0)
}
