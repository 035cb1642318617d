//! The embedded SQLite backend: one writer connection (SQLite allows one writer at a time, so a
//! queue in front of it is cheaper than lock contention) and a few readers, in WAL mode so
//! readers never block the writer. Blocking calls run on tokio's blocking pool.
//!
//! Two files, attached on every connection: the main one (`tributary.db`: authorizations, jobs,
//! checkpoints, the event log) and the CDP's (`tributary-cdp.db`, schema `cdp`: mappings,
//! profiles, identities, audiences, memberships, the change outbox). They are written in
//! opposite ways: the event log is appended in ~1 KiB rows, which pack best into large pages
//! (64 KiB pages take 40 % less CPU per imported record than 4 KiB ones, whose pages held two
//! rows and wasted a third); profiles are read and rewritten one small row at a time at random,
//! where every touched page is copied whole to the WAL, so small pages are cheapest. No
//! transaction writes both files: SQLite commits attached WAL files atomically each, not
//! together, so every write below touches the tables of one file only.

mod cdp;
mod export;
mod rows;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::*;
use rows::*;

/// Versioned migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_foundation.sql"),
    include_str!("migrations/0002_cdp.sql"),
    include_str!("migrations/0003_export.sql"),
    include_str!("migrations/0004_exit_entered_at.sql"),
    include_str!("migrations/0005_event_origin_columns.sql"),
    include_str!("migrations/0006_memberships_in_profiles.sql"),
    include_str!("migrations/0007_binary_profile_states.sql"),
];
const READERS: usize = 3;
/// Page sizes of new databases (an existing file keeps the size it was made with).
const MAIN_PAGE_SIZE: u32 = 64 * 1024;
/// The profile processor rewrites about one scattered profile page per event, and each is
/// written twice more (to the WAL, then back by the checkpoint): 2 KiB pages halve those
/// bytes against 4 KiB, while still holding three profile rows of the benchmark's size.
const CDP_PAGE_SIZE: u32 = 2 * 1024;

/// The CDP's file beside the main one: `DIR/NAME.db` → `DIR/NAME-cdp.db`.
pub fn cdp_path(path: &Path) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tributary".into());
    path.with_file_name(format!("{stem}-cdp.db"))
}

pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    checkpointer: Checkpointer,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn open_blocking(path: &Path) -> StoreResult<Self> {
        configure_sqlite_once();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut writer = connect(path, WRITER_CACHE_KIB, WRITER_CDP_CACHE_KIB)?;
        migrate(&mut writer)?;
        writer
            .execute_batch(&format!(
                "PRAGMA cdp.wal_autocheckpoint = {CDP_WRITER_CHECKPOINT_PAGES};
                 PRAGMA cdp.journal_size_limit = {CDP_WAL_KEEP_BYTES};"
            ))
            .map_err(db)?;
        let checkpointer = Checkpointer::start(connect(path, 256, 256)?)?;
        let readers = (0..READERS)
            .map(|_| connect(path, READER_CACHE_KIB, READER_CDP_CACHE_KIB).map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            checkpointer,
        })
    }

    /// Runs `f` in one write transaction: all of it commits, or none of it.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        let checkpoint = self.checkpointer.request.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            let out = f(&tx)?;
            tx.commit().map_err(db)?;
            // Full: a checkpoint is already due, and it will copy this commit too.
            let _ = checkpoint.try_send(());
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            // Take the first idle reader; when all are busy, wait on one chosen by thread.
            let guard = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| {
                    let i = thread_index() % readers.len();
                    readers[i].lock().unwrap_or_else(|p| p.into_inner())
                });
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

impl SqliteStore {
    /// Like `read`, inside one read transaction: every statement sees the same snapshot, and
    /// a run of point lookups takes the files' read locks once instead of per statement.
    async fn read_snapshot<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.read(move |conn| {
            conn.execute_batch("BEGIN DEFERRED").map_err(db)?;
            let result = f(conn);
            conn.execute_batch("COMMIT").map_err(db)?;
            result
        })
        .await
    }
}

/// Copies the CDP file's WAL into the database on its own thread and connection, after
/// commits, so that a commit does not wait for that copy and its fsyncs: the profile
/// processor writes about one scattered profile page per event, and copying them back was a
/// third of its commit time. Checkpoints are PASSIVE: they never block a reader or the writer.
/// Ends with the store (when the last request sender is dropped).
struct Checkpointer {
    request: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(conn: Connection) -> StoreResult<Self> {
        let (request, requests) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                for () in requests {
                    if let Err(e) = conn.execute_batch("PRAGMA cdp.wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "checkpointing the CDP file failed; the next commit retries");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { request })
    }
}

fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() as usize
}

/// WAL size (pages) at which the writer checkpoints the CDP file itself: a backstop should the
/// [`Checkpointer`] fall behind.
const CDP_WRITER_CHECKPOINT_PAGES: u32 = 10_000;
/// What the CDP file's WAL is cut back to when it restarts (it grows while readers keep
/// checkpoints from finishing).
const CDP_WAL_KEEP_BYTES: u64 = 64 * 1024 * 1024;
/// Page cache of the writer, which every commit walks (KiB). Bounded, like the readers', so
/// the store's memory does not grow with the database.
const WRITER_CACHE_KIB: i64 = 16 * 1024;
/// Page cache of each reader (KiB): together with the writer's, a bound on the store's memory.
const READER_CACHE_KIB: i64 = 6 * 1024;
/// The writer's cache of the CDP file. A processor batch dirties up to one profile page per
/// event, more than this holds (SQLite then writes some pages out mid-transaction, ~3 % of the
/// processor's CPU); 48 MiB avoided that but took the service past its 150 MiB memory target.
const WRITER_CDP_CACHE_KIB: i64 = 16 * 1024;
/// Each reader's cache of the CDP file (profile and identity lookups are scattered: a cache
/// helps with the b-trees' upper pages only).
const READER_CDP_CACHE_KIB: i64 = 4 * 1024;

/// Process-wide SQLite set-up, once, before the first connection; later calls are no-ops.
///
/// SQLite counts every allocation of every connection under one process-wide mutex unless
/// told not to (SQLITE_DEFAULT_MEMSTATUS=1 in the bundled build); with the processor reading
/// on one thread while its previous batch commits on another, that mutex made them take
/// turns. We never read those statistics, so they are turned off (only possible before SQLite
/// initializes). The other process-wide mutex they met, the shared page cache's, is compiled
/// out (`.cargo/config.toml`); a build without that is told about in the log.
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any connection exists (the first open
        // calls this first); if SQLite is already initialized it returns SQLITE_MISUSE and
        // changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite memory statistics stay on (SQLite already initialized)"
            );
        }
        if shares_one_page_cache() {
            tracing::warn!(
                "this build's SQLite shares one page cache between all connections (built \
                 without the flags in .cargo/config.toml), so the profile processor runs \
                 slower; build Tributary from the repository's root to get them"
            );
        }
    });
}

/// Whether the bundled SQLite was compiled with SQLITE_ENABLE_MEMORY_MANAGEMENT, which puts
/// every connection's page cache under one process-wide mutex (see `.cargo/config.toml`).
fn shares_one_page_cache() -> bool {
    // SAFETY: a NUL-terminated literal, which the function only reads.
    unsafe { rusqlite::ffi::sqlite3_compileoption_used(c"ENABLE_MEMORY_MANAGEMENT".as_ptr()) != 0 }
}

fn connect(path: &Path, cache_kib: i64, cdp_cache_kib: i64) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Backend(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    let cdp = cdp_path(path);
    conn.execute("ATTACH DATABASE ?1 AS cdp", [cdp.to_string_lossy()])
        .map_err(|e| {
            StoreError::Backend(format!(
                "cannot open SQLite database {}: {e}",
                cdp.display()
            ))
        })?;
    // A page cache per connection: the profile processor's lookups (identities, profiles,
    // memberships) hit the same upper b-tree pages batch after batch.
    // WAL: readers do not block the writer. NORMAL sync is crash-safe for the process (a
    // SIGKILL loses nothing committed); a power cut may drop the last commits, all together.
    // page_size first: it only takes effect on a file with no table yet.
    conn.execute_batch(&format!(
        "PRAGMA main.page_size = {MAIN_PAGE_SIZE};
         PRAGMA cdp.page_size = {CDP_PAGE_SIZE};
         PRAGMA main.journal_mode = WAL;
         PRAGMA cdp.journal_mode = WAL;
         PRAGMA main.synchronous = NORMAL;
         PRAGMA cdp.synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA main.cache_size = -{cache_kib};
         PRAGMA cdp.cache_size = -{cdp_cache_kib};"
    ))
    .map_err(db)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database was written by a newer Tributary (schema version {applied}, this build knows {}); upgrade Tributary",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.pragma_update(None, "user_version", i + 1).map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn now_text() -> String {
    to_text(&Utc::now())
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_authorization(&self, auth: Authorization) -> StoreResult<()> {
        self.write(move |tx| {
            let (method, key_id, sealed, role_arn, external_id) = match &auth.credentials {
                Credentials::AwsKeys { access_key_id, sealed_secret_access_key } => {
                    ("aws_keys", Some(access_key_id.as_str()), Some(sealed_secret_access_key.as_slice()), None, None)
                }
                Credentials::AwsRole { role_arn, external_id } => {
                    ("aws_role", None, None, Some(role_arn.as_str()), Some(external_id.as_str()))
                }
            };
            let result = tx.execute(
                "INSERT INTO authorizations (id, label, description, method, access_key_id, secret_sealed, role_arn, external_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![auth.id, auth.label, auth.description, method, key_id, sealed, role_arn, external_id, to_text(&auth.created_at)],
            );
            match result {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict(format!("an authorization labelled {:?} already exists; choose another label", auth.label)))
                }
                other => other.map(|_| ()).map_err(db),
            }
        })
        .await
    }

    async fn list_authorizations(&self) -> StoreResult<Vec<Authorization>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations ORDER BY created_at, id"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], authorization_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn get_authorization(&self, id: &str) -> StoreResult<Authorization> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AUTH_COLUMNS} FROM authorizations WHERE id = ?1"),
                [&id],
                authorization_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound {
                what: "authorization",
                id,
            })?
        })
        .await
    }

    async fn delete_authorization(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            let users: Vec<String> = tx
                .prepare("SELECT label FROM jobs WHERE authorization_id = ?1 ORDER BY label")
                .and_then(|mut s| s.query_map([&id], |r| r.get(0))?.collect())
                .map_err(db)?;
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "authorization {id} is used by job(s) {}; delete those jobs first",
                    users.join(", ")
                )));
            }
            match tx
                .execute("DELETE FROM authorizations WHERE id = ?1", [&id])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound {
                    what: "authorization",
                    id,
                }),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn insert_job(&self, job: Job) -> StoreResult<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO jobs (id, job_type, label, description, authorization_id, config, state, last_error, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    job.id, job.job_type.as_str(), job.label, job.description, job.authorization_id,
                    job.config.to_string(), job.state.as_str(), job.last_error,
                    to_text(&job.created_at), to_text(&job.updated_at)
                ],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at, id"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], job_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [&id],
                job_from_row,
            )
            .optional()
            .map_err(db)?
            .ok_or(StoreError::NotFound { what: "job", id })?
        })
        .await
    }

    async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        last_error: Option<&str>,
    ) -> StoreResult<()> {
        let (id, last_error) = (id.to_owned(), last_error.map(str::to_owned));
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE jobs SET state = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id, state.as_str(), last_error, now_text()],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "job", id });
            }
            Ok(())
        })
        .await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            match tx
                .execute("DELETE FROM jobs WHERE id = ?1", [&id])
                .map_err(db)?
            {
                0 => Err(StoreError::NotFound { what: "job", id }),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list_checkpoints(&self, job_id: &str) -> StoreResult<Vec<ShardCheckpoint>> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {CHECKPOINT_COLUMNS} FROM shard_checkpoints WHERE job_id = ?1 ORDER BY shard_id"))
                .map_err(db)?;
            let rows = stmt.query_map([&job_id], checkpoint_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn register_shards(&self, job_id: &str, shards: &[ShardCheckpoint]) -> StoreResult<()> {
        let (job_id, shards) = (job_id.to_owned(), shards.to_vec());
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO shard_checkpoints (job_id, shard_id, parent_shard_ids, state, sequence_number, sub_sequence_number, records, updated_at, start_position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (job_id, shard_id) DO NOTHING",
                )
                .map_err(db)?;
            for s in &shards {
                stmt.execute(params![
                    job_id, s.shard_id, serde_json::to_string(&s.parent_shard_ids).expect("strings serialize"),
                    s.state.as_str(), s.sequence_number, s.sub_sequence_number.map(|n| n as i64), s.records as i64, now_text(),
                    s.start_position.to_text()
                ])
                .map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn set_shard_state(
        &self,
        job_id: &str,
        shard_id: &str,
        state: ShardState,
    ) -> StoreResult<()> {
        let (job_id, shard_id) = (job_id.to_owned(), shard_id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE shard_checkpoints SET state = ?3, updated_at = ?4 WHERE job_id = ?1 AND shard_id = ?2",
                    params![job_id, shard_id, state.as_str(), now_text()],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "shard", id: shard_id });
            }
            Ok(())
        })
        .await
    }

    async fn commit_shard_batch(&self, batch: Arc<ShardBatch>) -> StoreResult<BatchOutcome> {
        self.write(move |tx| {
            let now = now_text();
            let events_inserted = insert_events(tx, &batch.stream, &batch.events, &now)?;
            let mut dead_letters_inserted = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO dead_letters (job_id, shard_id, sequence_number, sub_sequence_number, position, partition_key, reason, raw, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT DO NOTHING",
                    )
                    .map_err(db)?;
                for d in &batch.dead_letters {
                    dead_letters_inserted += stmt
                        .execute(params![
                            batch.job_id, d.shard_id, d.sequence_number,
                            d.sub_sequence_number.map_or(-1, |n| n as i64), d.position,
                            d.partition_key, d.reason, d.raw, now
                        ])
                        .map_err(db)? as u64;
                }
            }
            let cp = &batch.checkpoint;
            let n = tx
                .execute(
                    "UPDATE shard_checkpoints
                        SET state = ?3, sequence_number = COALESCE(?4, sequence_number),
                            sub_sequence_number = CASE WHEN ?4 IS NULL THEN sub_sequence_number ELSE ?5 END,
                            records = records + ?6, millis_behind_latest = ?7, updated_at = ?8
                      WHERE job_id = ?1 AND shard_id = ?2",
                    params![
                        batch.job_id, cp.shard_id, cp.state.as_str(), cp.sequence_number,
                        cp.sub_sequence_number.map(|n| n as i64), batch.records_in as i64,
                        cp.millis_behind_latest, now
                    ],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "shard checkpoint", id: cp.shard_id.clone() });
            }
            tx.execute(
                "UPDATE jobs SET records_in = records_in + ?2, events_out = events_out + ?3,
                                 dead_letters = dead_letters + ?4, updated_at = ?5 WHERE id = ?1",
                params![batch.job_id, batch.records_in as i64, events_inserted as i64, dead_letters_inserted as i64, now],
            )
            .map_err(db)?;
            Ok(BatchOutcome { events_inserted, dead_letters_inserted })
        })
        .await
    }

    async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64> {
        let stream = stream.to_owned();
        self.write(move |tx| insert_events(tx, &stream, &events, &now_text()))
            .await
    }

    async fn list_events(
        &self,
        stream: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params![stream, before.unwrap_or(i64::MAX), limit], event_from_row)
                .map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT name, events, last_event_at FROM streams ORDER BY name")
                .map_err(db)?;
            let rows = stmt.query_map([], stream_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn list_dead_letters(&self, job_id: &str, limit: u32) -> StoreResult<Vec<DeadLetter>> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE job_id = ?1 ORDER BY id DESC LIMIT ?2"))
                .map_err(db)?;
            let rows = stmt.query_map(params![job_id, limit], dead_letter_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    // ----- CDP (implemented in cdp.rs) ---------------------------------------------------

    async fn put_mapping(&self, stream: &str, text: &str) -> StoreResult<StreamMapping> {
        self.cdp_put_mapping(stream, text).await
    }
    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping> {
        self.cdp_get_mapping(stream).await
    }
    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>> {
        self.cdp_list_mappings().await
    }
    async fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
        streams: Vec<String>,
    ) -> StoreResult<EventsPage> {
        self.cdp_events_after(after_seq, limit, streams).await
    }
    async fn processor_position(&self) -> StoreResult<ProcessorPosition> {
        self.cdp_processor_position().await
    }
    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>> {
        self.cdp_processor_lag().await
    }
    async fn count_events(&self, after: i64, upto: i64) -> StoreResult<u64> {
        self.cdp_count_events(after, upto).await
    }
    async fn max_event_seq(&self) -> StoreResult<i64> {
        self.cdp_max_event_seq().await
    }
    async fn lookup_identities(
        &self,
        keys: Vec<(String, String)>,
    ) -> StoreResult<Vec<IdentityRow>> {
        self.cdp_lookup_identities(keys).await
    }
    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>> {
        self.cdp_get_profiles(ids).await
    }
    async fn get_profile(&self, id: &str) -> StoreResult<Profile> {
        self.cdp_get_profile(id).await
    }
    async fn list_profiles(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        self.cdp_list_profiles(after, limit).await
    }
    async fn count_profiles(&self) -> StoreResult<u64> {
        self.cdp_count_profiles().await
    }
    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>> {
        self.cdp_profile_identities(id).await
    }
    async fn get_profiles_with_memberships(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        self.cdp_get_profiles_with_memberships(ids).await
    }
    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>> {
        self.cdp_profile_memberships(ids).await
    }
    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()> {
        self.cdp_commit_profile_batch(batch).await
    }
    async fn reset_profiles(&self) -> StoreResult<i64> {
        self.cdp_reset_profiles().await
    }
    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        self.cdp_processor_state(prefix).await
    }
    async fn finish_rebuild(&self) -> StoreResult<()> {
        self.cdp_finish_rebuild().await
    }
    async fn insert_audience(&self, audience: Audience) -> StoreResult<()> {
        self.cdp_insert_audience(audience).await
    }
    async fn update_audience(&self, audience: Audience) -> StoreResult<()> {
        self.cdp_update_audience(audience).await
    }
    async fn get_audience(&self, slug: &str) -> StoreResult<Audience> {
        self.cdp_get_audience(slug).await
    }
    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>> {
        self.cdp_list_audiences().await
    }
    async fn delete_audience(&self, slug: &str) -> StoreResult<()> {
        self.cdp_delete_audience(slug).await
    }
    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Membership>> {
        self.cdp_list_members(audience_id, after, limit).await
    }
    async fn list_audience_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AudienceChange>> {
        self.cdp_list_audience_changes(after_seq, limit).await
    }

    async fn get_export_progress(&self, job_id: &str) -> StoreResult<Option<ExportProgress>> {
        self.export_get_progress(job_id).await
    }

    async fn commit_export_round(&self, job_id: &str, round: Arc<ExportRound>) -> StoreResult<()> {
        self.export_commit_round(job_id, round).await
    }

    async fn backfill_page(
        &self,
        audience_ids: Vec<String>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<BackfillPage> {
        self.export_backfill_page(audience_ids, after, limit).await
    }

    async fn audience_change_head(&self) -> StoreResult<i64> {
        self.export_change_head().await
    }
}

/// Inserts events, skipping ids already stored (a replay), and keeps the stream's summary in
/// step. Returns how many were new.
fn insert_events(
    tx: &Transaction<'_>,
    stream: &str,
    events: &[NewEvent],
    now: &str,
) -> StoreResult<u64> {
    let mut inserted = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (event_id, stream, fields, stored_at, kinesis_stream, shard_id,
                     sequence_number, sub_sequence_number, partition_key, arrival_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .map_err(db)?;
        for e in events {
            let (kinesis_stream, shard_id, sequence_number, sub, partition_key, arrival_ns) =
                origin_columns(e.origin.as_ref());
            inserted += stmt
                .execute(params![
                    e.event_id,
                    stream,
                    e.fields.as_str(),
                    now,
                    kinesis_stream,
                    shard_id,
                    sequence_number,
                    sub,
                    partition_key,
                    arrival_ns
                ])
                .map_err(db)? as u64;
        }
    }
    if inserted > 0 {
        tx.prepare_cached(
            "INSERT INTO streams (name, events, last_event_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET events = streams.events + excluded.events, last_event_at = excluded.last_event_at",
        )
        .and_then(|mut s| s.execute(params![stream, inserted as i64, now]))
        .map_err(db)?;
    }
    Ok(inserted)
}

/// A database at the schema version before the migration whose text contains `marker`,
/// for tests that a migration keeps older data.
#[cfg(test)]
pub(super) fn database_before(path: &Path, marker: &str) -> Connection {
    let conn = connect(path, 1024, 1024).unwrap();
    let before = MIGRATIONS.iter().position(|m| m.contains(marker)).unwrap();
    for sql in &MIGRATIONS[..before] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", before).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` builds the bundled SQLite without SQLITE_ENABLE_MEMORY_MANAGEMENT,
    /// so that connections do not share one page cache under one mutex. Fails if that setting
    /// stops reaching the build (e.g. libsqlite3-sys renames LIBSQLITE3_FLAGS).
    #[test]
    fn sqlite_is_built_with_a_page_cache_per_connection() {
        assert!(
            !shares_one_page_cache(),
            "SQLITE_ENABLE_MEMORY_MANAGEMENT is compiled in"
        );
    }

    #[tokio::test]
    async fn sqlite_passes_the_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn memberships_of_a_database_from_before_0006_move_into_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = database_before(&path, "Memberships move into the profile row");
            conn.execute_batch(
                "INSERT INTO audiences VALUES ('A1','vip','V','','x > 1','2026-01-01T00:00:00.000000Z','2026-01-01T00:00:00.000000Z');
                 INSERT INTO profiles VALUES ('p1','{}','2026-01-01T00:00:00.000000Z','2026-01-01T00:00:00.000000Z');
                 INSERT INTO profiles VALUES ('p2','{}','2026-01-01T00:00:00.000000Z','2026-01-01T00:00:00.000000Z');
                 INSERT INTO memberships VALUES ('A1','p2','2026-11-26T01:02:03.123456Z');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let members = store.list_members("A1", None, 10).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].profile_id, "p2");
        assert_eq!(
            to_text(&members[0].entered_at),
            "2026-11-26T01:02:03.123456Z"
        );
        assert_eq!(store.list_audiences().await.unwrap()[0].1, 1);
    }

    #[tokio::test]
    async fn profile_states_stored_as_json_are_read_and_rewritten_in_binary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut state = tributary_lang::ProfileState::new();
        state.fields.insert(
            "visits".into(),
            tributary_lang::FieldState::Count { count: 3 },
        );
        let stored_type = || {
            Connection::open(cdp_path(&path))
                .unwrap()
                .query_row(
                    "SELECT typeof(state) FROM profiles WHERE id = 'p1'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .unwrap()
        };
        // As versions before 0007 wrote it.
        Connection::open(cdp_path(&path))
            .unwrap()
            .execute(
                "INSERT INTO profiles (id, state, created_at, updated_at)
                 VALUES ('p1', ?1, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
                [serde_json::to_string(&state).unwrap()],
            )
            .unwrap();
        assert_eq!(stored_type(), "text");
        let mut profile = store.get_profile("p1").await.unwrap();
        assert_eq!(profile.state, state);

        profile.state.fields.insert(
            "visits".into(),
            tributary_lang::FieldState::Count { count: 4 },
        );
        store
            .commit_profile_batch(Arc::new(ProfileBatch {
                upserts: vec![profile.clone()],
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(stored_type(), "blob");
        assert_eq!(store.get_profile("p1").await.unwrap().state, profile.state);
    }

    #[tokio::test]
    async fn reopening_applies_no_migration_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path).await.unwrap());
        let again = SqliteStore::open(&path).await.unwrap();
        assert!(again.list_jobs().await.unwrap().is_empty());
    }
}
