//! What SQLite itself costs for one steady-state profile event (issue 4), without any of
//! Tributary's own work: the reads and writes the processor cannot avoid while a profile is a
//! row read and rewritten per event, on the same bundled SQLite, page size and pragmas.
//!
//! ```text
//! cargo bench --bench sqlite_floor                       # 1,000,000 profiles
//! FLOOR_PROFILES=200000 cargo bench --bench sqlite_floor
//! ```
//! Per event: one identity lookup and one profile read (a reader, in batches of 5,000 in one
//! read transaction, keys sorted), the profile row rewritten in place and five audience-change
//! rows appended (the writer, one transaction per 5,000 events, WAL checkpoints included).
//! Rows are the sizes the `cdp` bench's profiles have (~175 B binary state, ~265 B member
//! list). Change rows are appended one per INSERT and, as the store does, 64 per INSERT.

mod support;
use support::cpu_seconds;

use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};
use rusqlite::{params, Connection};

const BATCH: usize = 5_000;
const CHANGES_PER_EVENT: usize = 5;

fn open(path: &std::path::Path, cache_kib: u32) -> Connection {
    let page_size = std::env::var("FLOOR_PAGE_SIZE").unwrap_or_else(|_| "2048".into());
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -{cache_kib};"
    ))
    .expect("pragmas");
    conn
}

/// One batch of point reads as the processor's reader does them: keys sorted, in one read
/// transaction, each finding one row whose first column is text.
fn point_reads<K: Ord + rusqlite::ToSql>(reader: &Connection, sql: &str, mut keys: Vec<K>) {
    keys.sort_unstable();
    reader.execute_batch("BEGIN").expect("begin");
    let mut stmt = reader.prepare_cached(sql).expect("prepare");
    for k in &keys {
        let _: String = stmt.query_row([k], |r| r.get(0)).expect("found");
    }
    reader.execute_batch("COMMIT").expect("commit");
}

/// Runs `f` over `events` events in batches and returns CPU µs per event.
fn per_event(events: usize, mut f: impl FnMut(&mut StdRng)) -> f64 {
    let mut rng = StdRng::seed_from_u64(11);
    let cpu = cpu_seconds();
    for _ in 0..events / BATCH {
        f(&mut rng);
    }
    (cpu_seconds() - cpu) * 1e6 / events as f64
}

fn main() {
    let n: usize = std::env::var("FLOOR_PROFILES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let events = 100_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("floor.db");
    let mut writer = open(&path, 16 * 1024);
    writer
        .execute_batch(
            "CREATE TABLE profiles (id TEXT PRIMARY KEY, state TEXT NOT NULL,
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL, audiences TEXT NOT NULL);
             CREATE TABLE identities (field TEXT NOT NULL, value TEXT NOT NULL,
                 profile_id TEXT NOT NULL, PRIMARY KEY (field, value)) WITHOUT ROWID;
             CREATE TABLE audience_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 audience_id TEXT NOT NULL, audience_slug TEXT NOT NULL, profile_id TEXT NOT NULL,
                 kind TEXT NOT NULL, at TEXT NOT NULL, entered_at TEXT);",
        )
        .expect("schema");
    let state = "s".repeat(175);
    let grown = "g".repeat(175 + 48);
    let members = "m".repeat(265);
    let time = "2026-11-26T06:00:00.000000Z";
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let t = Instant::now();
    {
        let tx = writer.transaction().expect("tx");
        {
            let mut profile = tx
                .prepare("INSERT INTO profiles VALUES (?1, ?2, ?3, ?3, ?4)")
                .expect("prepare");
            let mut identity = tx
                .prepare("INSERT INTO identities VALUES ('email', ?1, ?2)")
                .expect("prepare");
            for (i, id) in ids.iter().enumerate() {
                profile
                    .execute(params![id, state, time, members])
                    .expect("insert");
                identity
                    .execute(params![format!("user{i}@example.com"), id])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    println!(
        "sqlite floor: {n} profiles of ~{} B, {events} events, batches of {BATCH} (setup {:.0}s)",
        state.len() + members.len() + 36 + 2 * time.len(),
        t.elapsed().as_secs_f64()
    );

    let reader = open(&path, 4 * 1024);
    let lookup = per_event(events, |rng| {
        let keys: Vec<String> = (0..BATCH)
            .map(|_| format!("user{}@example.com", rng.gen_range(0..n)))
            .collect();
        point_reads(
            &reader,
            "SELECT profile_id FROM identities WHERE field = 'email' AND value = ?1",
            keys,
        );
    });
    let read = per_event(events, |rng| {
        let batch: Vec<&String> = (0..BATCH).map(|_| &ids[rng.gen_range(0..n)]).collect();
        point_reads(
            &reader,
            "SELECT state, created_at, updated_at, audiences FROM profiles WHERE id = ?1",
            batch,
        );
    });
    let update = per_event(events, |rng| {
        let mut batch: Vec<&String> = (0..BATCH).map(|_| &ids[rng.gen_range(0..n)]).collect();
        batch.sort_unstable();
        let tx = writer.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE profiles SET state = ?2, updated_at = ?3, audiences = ?4 WHERE id = ?1",
                )
                .expect("prepare");
            for id in batch {
                // Rows change size as profiles grow, as they do in the processor.
                let len = state.len() + rng.gen_range(0..48);
                stmt.execute(params![id, &grown[..len], time, members])
                    .expect("update");
            }
        }
        tx.commit().expect("commit");
    });
    let changes = per_event(events, |rng| {
        let tx = writer.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at, entered_at)
                     VALUES (?1, ?2, ?3, 'enter', ?4, NULL)",
                )
                .expect("prepare");
            for _ in 0..BATCH * CHANGES_PER_EVENT {
                let id = &ids[rng.gen_range(0..n)];
                stmt.execute(params!["01936f3e-aud", "a042", id, time])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    });
    let changes_64 = per_event(events, |rng| {
        let tx = writer.transaction().expect("tx");
        {
            let values = vec!["(?, ?, ?, 'enter', ?, NULL)"; 64].join(", ");
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at, entered_at)
                     VALUES {values}"
                ))
                .expect("prepare");
            for _ in 0..BATCH * CHANGES_PER_EVENT / 64 {
                for row in 0..64 {
                    let id = &ids[rng.gen_range(0..n)];
                    for (i, v) in ["01936f3e-aud", "a042", id, time].iter().enumerate() {
                        stmt.raw_bind_parameter(row * 4 + i + 1, v).expect("bind");
                    }
                }
                stmt.raw_execute().expect("insert");
            }
        }
        tx.commit().expect("commit");
    }) * (BATCH * CHANGES_PER_EVENT) as f64
        / (BATCH * CHANGES_PER_EVENT / 64 * 64) as f64;
    let total = lookup + read + update + changes_64;
    println!("  identity lookup        {lookup:>6.1} µs CPU per event");
    println!("  profile read           {read:>6.1} µs");
    println!("  profile row rewritten  {update:>6.1} µs (WAL and checkpoints included)");
    println!("  {CHANGES_PER_EVENT} change rows appended {changes:>6.1} µs one per INSERT, {changes_64:.1} µs 64 per INSERT");
    println!(
        "  SQLite alone:          {total:>6.1} µs CPU per event → at most {:.0} events/s on 2 cores, before any mapping, merging or evaluating",
        2e6 / total
    );
    println!("  (50,000 events/s on 2 cores leaves 40 µs CPU per event for everything)");
}
