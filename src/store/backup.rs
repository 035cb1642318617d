//! Online backup: a consistent copy of the store while it runs.

use std::path::PathBuf;

use async_trait::async_trait;

use super::StoreResult;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The files written, in `dest_dir`.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

/// # Contract
///
/// [`backup_to`](BackupStore::backup_to) writes into `dest_dir` (made if missing; files already
/// there are never overwritten) a copy of the whole store as of one instant: a store opened on
/// the copy starts as an ordinary one and every job resumes from the checkpoints it holds.
/// Writers wait while the copy is taken; readers do not. The master key is not part of the
/// store and is never copied. A backend that cannot do this (PostgreSQL: use its own tools)
/// answers `Conflict` saying what to use instead.
#[async_trait]
pub trait BackupStore: Send + Sync + 'static {
    async fn backup_to(&self, dest_dir: PathBuf) -> StoreResult<BackupReport>;
    /// At a clean stop, once nothing writes any more: leaves everything stored in the store's
    /// own files (SQLite: both WALs copied into their databases and emptied), so a data
    /// directory copied or moved with the server stopped is whole even without its `-wal`
    /// files. PostgreSQL's server owns its files: nothing to do.
    async fn flush_to_files(&self) -> StoreResult<()>;
}
