//! The PostgreSQL backend: every role on one database, for deployments that want their data in
//! a managed database (backups, replicas, failover). The roles' own rules still hold (e.g. one
//! profile processor at a time); what PostgreSQL adds is concurrent writers, which the ordering
//! contract and the migrations below are built for.
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool. Explicit SQL, as in the SQLite
//! backend, needs no database at compile time and builds far lighter than sqlx; the pool caches
//! each connection's prepared statements (`prepare_cached`). Connections are plain TCP (no TLS
//! yet): run it on a trusted network.
//!
//! Types: BIGINT positions and counters, TIMESTAMPTZ times (microseconds, what SQLite's RFC 3339
//! text keeps), BYTEA for profile states and raw dead letters, TEXT for JSON that must come back
//! exactly as written (event fields keep their key order; JSONB would not). Ids and other text
//! that is ordered or paged by are `COLLATE "C"` (byte order, like Rust and SQLite).
//!
//! # Positions in commit order
//!
//! Each log (events, audience changes) has a row in `log_heads` holding the last position
//! handed out. A transaction that appends locks its log's row as its last step before inserting
//! the rows (see `positions.rs`) and numbers them from it; the lock is held until commit, so
//! writers take positions one after another in the order they commit, and once a reader has
//! seen position N no row below N can still commit (the `EventLog` / `OutboxStore` contract).
//! A sequence (`BIGSERIAL`) would not do: two transactions draw 5 and 6, 6 commits first, and a
//! reader that saw 6 skips 5 for ever. A row lock rather than `pg_advisory_xact_lock`: the
//! counter it guards is in the same row, rolled back with the rows it numbered (no gaps), and
//! the lock shows in `pg_locks` as the table it protects. Everything else in such a transaction
//! (dead letters, checkpoints, profiles) is written before the lock is taken, so
//! the serialized part is one or two statements and the commit.
//!
//! # Set-up
//!
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?pool_max=N]` (any libpq-style option that
//! tokio-postgres knows may follow; `connect_timeout` defaults to 5 s and the session's
//! `idle_in_transaction_session_timeout` to 10 s, see [`IDLE_IN_TRANSACTION_LIMIT`]). `pool_max` bounds the connections this process opens
//! (default [`DEFAULT_POOL_MAX`]); each concurrent writer and reader takes its own.
//! Migrations (`migrations/NNNN_*.sql`) run at open, in one transaction under an advisory lock
//! (`PostgresStore::migrate`), so nodes that start together apply them once.

mod catalog;
mod control;
mod erasure;
mod event_log;
mod import;
mod lease;
mod members;
mod outbox;
mod positions;
mod profiles;
mod retention;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{StoreError, StoreResult};

/// Versioned migrations, applied in order; `tributary_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_cluster.sql"),
    include_str!("migrations/0003_profile_batches.sql"),
    include_str!("migrations/0004_lifecycle.sql"),
    include_str!("migrations/0005_member_lists.sql"),
];

/// Connections one store opens at most, unless the URL's `pool_max` says otherwise.
pub const DEFAULT_POOL_MAX: usize = 8;

/// The URL query parameter that sets the pool's size (taken out before the driver parses it).
const POOL_MAX_PARAM: &str = "pool_max";

/// How long opening a connection may take (unless the URL's `connect_timeout` says otherwise):
/// past it a call fails and is retried, rather than waiting on an unreachable server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server ends a transaction whose client has gone silent for this long (unless the URL's
/// `options` set `idle_in_transaction_session_timeout`). A fenced write holds its lease's row
/// (`FOR SHARE`) until commit, so a node cut off mid-commit would otherwise keep another node
/// from taking the lease over until TCP gave up, hours later. Equal to the default lease
/// timeout: a takeover then waits no longer than the lease itself. No Tributary transaction
/// stays idle between statements for anywhere near this long.
const IDLE_IN_TRANSACTION_LIMIT: Duration = Duration::from_secs(10);

/// How long a call waits for a free connection of the pool before failing (and being retried
/// by its caller): connections held by calls stuck on a cut-off server must not stall the
/// rest for ever.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The advisory lock key that serializes migrations between nodes ("tributar" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7472_6962_7574_6172;

/// A PostgreSQL URL Tributary cannot use.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{POOL_MAX_PARAM}={0:?} in the store URL is not a positive number")]
    PoolMax(String),
    #[error("the PostgreSQL store URL is not valid: {0}")]
    Driver(#[source] tokio_postgres::Error),
}

/// Every store role on one PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Opens `postgres://…` / `postgresql://…` (see the module doc) and runs pending migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let (config, pool_max) = parse_url(url).map_err(StoreError::backend)?;
        Self::connect(config, pool_max).await
    }

    /// Opens a store on `config` with at most `pool_max` connections.
    pub async fn connect(config: tokio_postgres::Config, pool_max: usize) -> StoreResult<Self> {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A closed connection is replaced at checkout; one that breaks while in use
                // fails that call with a `Backend` error (worth retrying). A test query on every
                // checkout would cost a round trip per call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_max.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(StoreError::backend)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A connection of its own for one call (a transaction, or a read).
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(StoreError::backend)
    }

    /// Applies pending migrations in one transaction holding an advisory lock: a node that
    /// starts while another migrates waits, then finds them applied. A transaction-scoped lock
    /// is released at commit, rollback or disconnect, so a pooled connection never keeps it.
    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(db)?;
        // After the lock: this statement's snapshot sees what an earlier node committed.
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tributary_migrations (
                 version     INTEGER PRIMARY KEY,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db)?;
        let applied: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM tributary_migrations",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db)?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "the database was written by a newer Tributary (schema version {applied}, this build knows {}); upgrade Tributary",
                MIGRATIONS.len()
            )));
        }
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(sql).await.map_err(db)?;
            let version = i32::try_from(version + 1).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO tributary_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

/// The driver's configuration and the pool size from a store URL.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, usize), UrlError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pool_max = DEFAULT_POOL_MAX;
    let mut driver_params = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some((POOL_MAX_PARAM, value)) => {
                pool_max = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| UrlError::PoolMax(value.to_owned()))?;
            }
            _ => driver_params.push(param),
        }
    }
    let driver_url = match driver_params.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", driver_params.join("&")),
    };
    let mut config = tokio_postgres::Config::from_str(&driver_url).map_err(UrlError::Driver)?;
    if config.get_application_name().is_none() {
        config.application_name("tributary");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let options = config.get_options().unwrap_or_default();
    if !options.contains("idle_in_transaction_session_timeout") {
        let with_idle_limit = format!(
            "{options} -c idle_in_transaction_session_timeout={}",
            IDLE_IN_TRANSACTION_LIMIT.as_millis()
        );
        config.options(with_idle_limit.trim_start());
    }
    Ok((config, pool_max))
}

/// Statement parameters, in `$1, $2, …` order.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The rows of `sql`, run on a client or in a transaction. Every statement is prepared once
/// per connection and kept (`prepare_cached`): later calls skip the parse and plan round trip.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Vec<Row>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    client.query(&stmt, params).await.map_err(db)
}

/// The one row `sql` returns.
async fn query_one(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<Row> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    client.query_one(&stmt, params).await.map_err(db)
}

/// The row `sql` returns, if any.
async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Option<Row>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    client.query_opt(&stmt, params).await.map_err(db)
}

/// Runs `sql`; returns how many rows it changed.
async fn execute(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    execute_raw(client, sql, params).await.map_err(db)
}

/// [`execute`], with the driver's error kept for callers that map some of them (a unique
/// violation to `Conflict`).
async fn execute_raw(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = client.prepare_cached(sql).await?;
    client.execute(&stmt, params).await
}

pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(e)
}

/// Whether `e` is a unique-constraint violation (mapped to `Conflict` where a caller chose the
/// key, e.g. a label or a slug).
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// `NotFound` of `what` `id`.
fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// `Ok` when a statement changed a row, else `NotFound` of `what` `id`.
fn found(changed: u64, what: &'static str, id: &str) -> StoreResult<()> {
    match changed {
        0 => Err(not_found(what, id)),
        _ => Ok(()),
    }
}

/// A bound for `LIMIT`: PostgreSQL takes BIGINT.
fn limit(n: u32) -> i64 {
    i64::from(n)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
