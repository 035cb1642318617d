//! Tributary's own store, cut by role: each part of the system holds only the roles it uses.
//!
//! | role | what | written by |
//! |---|---|---|
//! | [`ControlStore`] | authorizations, jobs | the API |
//! | [`ImportStore`] | shard checkpoints, dead letters, page commits | import jobs |
//! | [`EventLog`] | the events of every stream, in order | import jobs, `POST /api/collect` |
//! | [`CatalogStore`] | stream mappings, audience definitions | the API |
//! | [`ProfileStore`] | profiles, identities, memberships, the processor's cursor | the profile processor |
//! | [`OutboxStore`] | the audience-change outbox, export progress | the processor; export jobs |
//! | [`LeaseStore`] | nodes, and which node holds which piece of work | every node |
//! | [`ErasureStore`] | erasure records, the suppression list | the API, the profile processor's node |
//! | [`RetentionStore`] | per-stream retention, pruning, sizes | the API, the retention task |
//! | [`BackupStore`] | a consistent copy of the running store | the API |
//!
//! [`Store`] is all of them at once, for the code that wires the parts together. The log-like
//! roles ([`EventLog`], [`OutboxStore`]) state an ordering contract that readers rely on.
//!
//! The embedded SQLite backend is in [`sqlite`]. SQL and types are kept portable (TEXT ids and
//! RFC 3339 timestamps, JSON as TEXT, BLOB for bytes); every backend passes the same
//! `conformance` suite, a section per role.

mod backup;
mod catalog;
#[cfg(test)]
pub mod conformance;
mod control;
mod erasure;
mod error;
mod event_log;
mod import;
mod lease;
mod outbox;
pub mod postgres;
mod profiles;
mod retention;
pub mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use backup::*;
pub use catalog::*;
pub use control::*;
pub use erasure::*;
pub use error::{StoreError, StoreResult};
pub use event_log::*;
pub use import::*;
pub use lease::*;
pub use outbox::*;
pub use profiles::*;
pub use retention::*;

pub type Timestamp = DateTime<Utc>;

/// Every role at once: what the server wires together and hands out piece by piece.
pub trait Store:
    ControlStore
    + ImportStore
    + EventLog
    + CatalogStore
    + ProfileStore
    + OutboxStore
    + LeaseStore
    + ErasureStore
    + RetentionStore
    + BackupStore
{
}

impl<T> Store for T where
    T: ControlStore
        + ImportStore
        + EventLog
        + CatalogStore
        + ProfileStore
        + OutboxStore
        + LeaseStore
        + ErasureStore
        + RetentionStore
        + BackupStore
{
}

pub type DynStore = Arc<dyn Store>;

/// Whether the store named by `url` can be shared by several nodes (PostgreSQL); SQLite
/// serves one.
pub fn is_shared(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store named by `url` (`sqlite://PATH`, or `postgres://…` / `postgresql://…`, see
/// [`postgres`]), running pending migrations.
pub async fn open(url: &str) -> StoreResult<DynStore> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(std::path::Path::new(path)).await?;
        return Ok(Arc::new(store));
    }
    if is_shared(url) {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
