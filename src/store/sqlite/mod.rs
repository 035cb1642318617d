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

mod catalog;
mod control;
mod erasure;
mod event_log;
mod import;
mod lease;
mod outbox;
mod profiles;
mod reconcile;
mod retention;
mod rows;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction};

use super::*;
use rows::*;

/// One schema change, as a part for each file it changes. Each part commits together with its
/// own file's `PRAGMA user_version` (the number of the last migration whose part for that file
/// ran): SQLite makes a transaction over two WAL files atomic per file, not across both, so a
/// crash (or a lost `-wal`) between the two files' commits must leave each file knowing
/// exactly what it has.
struct Migration {
    main: Option<&'static str>,
    cdp: Option<&'static str>,
}

const fn main_part(sql: &'static str) -> Migration {
    Migration {
        main: Some(sql),
        cdp: None,
    }
}

const fn cdp_part(sql: &'static str) -> Migration {
    Migration {
        main: None,
        cdp: Some(sql),
    }
}

/// Versioned migrations, applied in order (see [`Migration`]).
const MIGRATIONS: &[Migration] = &[
    main_part(include_str!("migrations/0001_foundation.sql")),
    cdp_part(include_str!("migrations/0002_cdp.sql")),
    main_part(include_str!("migrations/0003_export.sql")),
    cdp_part(include_str!("migrations/0004_exit_entered_at.sql")),
    main_part(include_str!("migrations/0005_event_origin_columns.sql")),
    cdp_part(include_str!("migrations/0006_memberships_in_profiles.sql")),
    cdp_part(include_str!("migrations/0007_binary_profile_states.sql")),
    main_part(include_str!("migrations/0008_cluster.sql")),
    Migration {
        main: Some(include_str!("migrations/0009_lifecycle.sql")),
        cdp: Some(include_str!("migrations/0009_lifecycle_cdp.sql")),
    },
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

/// `PATH` + `suffix` (SQLite names its side files `NAME.db-wal`, `NAME.db-shm`).
fn suffixed(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// A WAL or SHM file left by an older version with a wider mode becomes 0600; absent is fine.
fn narrow_if_present(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        crate::secrets::create_private_file(path)
    } else {
        Ok(())
    }
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
            .map_err(StoreError::backend)?
    }

    fn open_blocking(path: &Path) -> StoreResult<Self> {
        configure_sqlite_once();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::secrets::create_private_dir(dir).map_err(|e| {
                StoreError::backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // Made 0600 before SQLite opens them: SQLite would create them 0644, and gives the WAL
        // and SHM files the mode of their database file.
        for file in [path.to_owned(), cdp_path(path)] {
            for private in [
                file.clone(),
                suffixed(&file, "-wal"),
                suffixed(&file, "-shm"),
            ] {
                let made = if private == file {
                    crate::secrets::create_private_file(&private)
                } else {
                    narrow_if_present(&private)
                };
                made.map_err(|e| {
                    StoreError::backend(format!(
                        "cannot make {} private (mode 0600): {e}",
                        private.display()
                    ))
                })?;
            }
            // SQLite opens a file it cannot write read-only without a word, and then fails
            // later with "unable to open database file": say what is wrong up front.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|e| {
                    StoreError::backend(format!(
                        "cannot write to {}: {e}; Tributary's data directory must be writable by the user it runs as (is its file system mounted read-only?)",
                        file.display()
                    ))
                })?;
        }
        let mut writer = connect(path, WRITER_CACHE_KIB, WRITER_CDP_CACHE_KIB)?;
        migrate(&mut writer)?;
        reconcile::reconcile_files(&mut writer)?;
        writer
            .execute_batch(&format!(
                "PRAGMA cdp.wal_autocheckpoint = {CDP_WRITER_CHECKPOINT_PAGES};
                 PRAGMA cdp.journal_size_limit = {CDP_WAL_KEEP_BYTES};
                 PRAGMA main.journal_size_limit = {MAIN_WAL_KEEP_BYTES};"
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
        .map_err(StoreError::backend)?
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
        .map_err(StoreError::backend)?
    }
}

impl SqliteStore {
    /// Copies both WAL files into their databases and empties them (a TRUNCATE checkpoint):
    /// after an erasure, so the old page images of deleted rows leave the WAL too, and at a
    /// clean stop. Best effort while readers hold old snapshots: what they pin is copied by a
    /// later checkpoint (and at close).
    async fn empty_wals(&self) -> StoreResult<()> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            for (schema, checkpoint) in [
                ("main", "PRAGMA main.wal_checkpoint(TRUNCATE)"),
                ("cdp", "PRAGMA cdp.wal_checkpoint(TRUNCATE)"),
            ] {
                let busy: i64 = conn
                    .query_row(checkpoint, [], |r| r.get(0))
                    .map_err(db)?;
                if busy != 0 {
                    tracing::info!(schema, "a reader kept the WAL from being emptied; a later checkpoint overwrites the rest");
                }
            }
            Ok(())
        })
        .await
        .map_err(StoreError::backend)?
    }

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

/// Copies the CDP file's WAL (and, once a second, the main file's) into the database on its
/// own thread and connection, after commits, so that a commit does not wait for that copy and
/// its fsyncs: the profile
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
                let mut main_checkpointed = std::time::Instant::now();
                for () in requests {
                    if let Err(e) = conn.execute_batch("PRAGMA cdp.wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "checkpointing the CDP file failed; the next commit retries");
                    }
                    // The writer's automatic checkpoint threshold is one per connection, in
                    // pages: set for the CDP file's small pages, it would let the main file's
                    // 64 KiB pages pile up to 625 MiB of WAL. The main file is copied back from
                    // here instead, at most once a second.
                    if main_checkpointed.elapsed() >= MAIN_CHECKPOINT_EVERY {
                        main_checkpointed = std::time::Instant::now();
                        if let Err(e) = conn.execute_batch("PRAGMA main.wal_checkpoint(PASSIVE);") {
                            tracing::warn!(error = %e, "checkpointing the main store file failed; retried in a second");
                        }
                    }
                }
            })
            .map_err(|e| StoreError::backend(format!("cannot start the checkpoint thread: {e}")))?;
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
/// How often the [`Checkpointer`] copies the main file's WAL back (after a commit).
const MAIN_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// What the main file's WAL is cut back to when it restarts.
const MAIN_WAL_KEEP_BYTES: u64 = 64 * 1024 * 1024;
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
        StoreError::backend(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    let cdp = cdp_path(path);
    conn.execute("ATTACH DATABASE ?1 AS cdp", [cdp.to_string_lossy()])
        .map_err(|e| {
            StoreError::backend(format!(
                "cannot open SQLite database {}: {e}",
                cdp.display()
            ))
        })?;
    // A page cache per connection: the profile processor's lookups (identities, profiles,
    // memberships) hit the same upper b-tree pages batch after batch.
    // WAL: readers do not block the writer. NORMAL sync is crash-safe for the process (a
    // SIGKILL loses nothing committed); a power cut may drop the last commits, all together.
    // page_size first: it only takes effect on a file with no table yet, and setting
    // auto_vacuum on an empty file fixes its page size too (at 4 KiB; files made while
    // auto_vacuum came first have 4 KiB pages).
    // secure_delete: deleted content (an erased person's events and profile) is overwritten
    // in the files, not left in free pages. auto_vacuum: takes effect on new files only (an
    // existing one keeps reusing its free pages; retention's incremental vacuum returns them).
    conn.execute_batch(&format!(
        "PRAGMA main.page_size = {MAIN_PAGE_SIZE};
         PRAGMA cdp.page_size = {CDP_PAGE_SIZE};
         PRAGMA main.auto_vacuum = INCREMENTAL;
         PRAGMA cdp.auto_vacuum = INCREMENTAL;
         PRAGMA main.secure_delete = ON;
         PRAGMA cdp.secure_delete = ON;
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

/// One file's migration version (`schema`: `main` or `cdp`; see [`Migration`]).
fn user_version(conn: &Connection, schema: &str) -> StoreResult<usize> {
    conn.pragma_query_value(
        Some(rusqlite::DatabaseName::Attached(schema)),
        "user_version",
        |r| r.get(0),
    )
    .map_err(db)
}

fn set_user_version(conn: &Connection, schema: &str, version: usize) -> StoreResult<()> {
    conn.pragma_update(
        Some(rusqlite::DatabaseName::Attached(schema)),
        "user_version",
        version,
    )
    .map_err(db)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let main = user_version(conn, "main")?;
    let mut cdp = user_version(conn, "cdp")?;
    if main.max(cdp) > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database was written by a newer Tributary (schema version {}, this build knows {}); upgrade Tributary",
            main.max(cdp),
            MIGRATIONS.len()
        )));
    }
    if cdp == 0 && main > 0 {
        // Made before each file kept its own version: both were migrated together.
        set_user_version(conn, "cdp", main)?;
        cdp = main;
    }
    for (i, migration) in MIGRATIONS.iter().enumerate() {
        for (schema, part, applied) in [("main", migration.main, main), ("cdp", migration.cdp, cdp)]
        {
            let Some(sql) = part.filter(|_| applied <= i) else {
                continue;
            };
            let tx = conn.transaction().map_err(db)?;
            tx.execute_batch(sql).map_err(db)?;
            set_user_version(&tx, schema, i + 1)?;
            tx.commit().map_err(db)?;
        }
    }
    Ok(())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

fn now_text() -> String {
    to_text(&Utc::now())
}

/// A database at the schema version before the migration whose text contains `marker`,
/// for tests that a migration keeps older data.
#[cfg(test)]
pub(super) fn database_before(path: &Path, marker: &str) -> Connection {
    let conn = connect(path, 1024, 1024).unwrap();
    let before = MIGRATIONS
        .iter()
        .position(|m| {
            [m.main, m.cdp]
                .iter()
                .flatten()
                .any(|sql| sql.contains(marker))
        })
        .unwrap();
    for m in &MIGRATIONS[..before] {
        for sql in [m.main, m.cdp].iter().flatten() {
            conn.execute_batch(sql).unwrap();
        }
    }
    for schema in ["main", "cdp"] {
        set_user_version(&conn, schema, before).unwrap();
    }
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failure that made each file keep its own version: a migration's transaction over
    /// both files committed in the CDP file but not in the main one (a crash between the two,
    /// or the main file's `-wal` lost). The next open must not run the CDP part again
    /// (`duplicate column name: reason`) and must run the main part.
    #[test]
    fn a_migration_committed_in_one_file_only_is_finished_in_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tributary.db");
        let mut conn = database_before(&path, "CREATE TABLE suppressed_counts");
        let last = MIGRATIONS.last().unwrap();
        conn.execute_batch(last.cdp.unwrap()).unwrap();
        set_user_version(&conn, "cdp", MIGRATIONS.len()).unwrap();

        migrate(&mut conn).unwrap();
        for schema in ["main", "cdp"] {
            assert_eq!(
                user_version(&conn, schema).unwrap(),
                MIGRATIONS.len(),
                "{schema}"
            );
        }
        conn.execute(
            "INSERT INTO suppressed_counts (source, count) VALUES ('x', 1)",
            [],
        )
        .unwrap();
        // And a store from before per-file versions (the CDP file's version 0) is taken as
        // migrated together with the main file: nothing runs twice.
        set_user_version(&conn, "cdp", 0).unwrap();
        migrate(&mut conn).unwrap();
    }

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

    /// New files get the page sizes chosen for them and incremental auto_vacuum (the order of
    /// those pragmas matters: auto_vacuum first left both files at 4 KiB pages).
    #[tokio::test]
    async fn new_files_get_their_page_sizes_and_incremental_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let files = store
            .read(|conn| {
                let pragma =
                    |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(db);
                Ok([
                    (
                        pragma("PRAGMA main.page_size")?,
                        pragma("PRAGMA main.auto_vacuum")?,
                    ),
                    (
                        pragma("PRAGMA cdp.page_size")?,
                        pragma("PRAGMA cdp.auto_vacuum")?,
                    ),
                ])
            })
            .await
            .unwrap();
        // auto_vacuum 2 = INCREMENTAL.
        assert_eq!(
            files,
            [
                (i64::from(MAIN_PAGE_SIZE), 2),
                (i64::from(CDP_PAGE_SIZE), 2)
            ]
        );
    }

    /// A new, empty store in a temporary directory, for the conformance suite.
    async fn fresh_store() -> (tempfile::TempDir, DynStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, Arc::new(store))
    }

    mod conformance {
        crate::conformance_tests!(
            super::fresh_store,
            reopen = |dir: std::path::PathBuf| async move {
                let store = super::SqliteStore::open(&dir.join("t.db")).await.unwrap();
                Some(std::sync::Arc::new(store) as crate::store::DynStore)
            }
        );
    }

    /// The main file's WAL is copied back while the store runs, not only once it reaches the
    /// CDP file's page threshold (which, in 64 KiB pages, was 625 MiB).
    #[tokio::test]
    async fn the_main_files_wal_is_checkpointed_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let padding = "x".repeat(1000);
        let events = |from: usize, n: usize| -> Vec<NewEvent> {
            (from..from + n)
                .map(|i| NewEvent {
                    event_id: format!("e{i}"),
                    fields: crate::store::EventFields::from_checked_object_text(&format!(
                        r#"{{"i":{i},"pad":"{padding}"}}"#
                    )),
                    origin: None,
                })
                .collect()
        };
        store.append_events("web", events(0, 2000)).await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut next = 2000;
        loop {
            // Each commit asks the checkpoint thread to run; the main file is copied at most
            // once a second.
            store.append_events("web", events(next, 1)).await.unwrap();
            next += 1;
            let now = std::fs::metadata(&path).unwrap().len();
            if now >= before + 1024 * 1024 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the main file did not grow from {before} bytes: its WAL was not checkpointed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
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
                upserts: vec![ProfileWrite::new(profile.clone())],
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
