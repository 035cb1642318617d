//! What SQLite itself costs for one steady-state profile event, without any of Tributary's own
//! work: the reads and writes the processor cannot avoid while a profile is a row read and
//! rewritten, on the same bundled SQLite, page size and pragmas. Used by `sqlite_floor` on its
//! own and by `cdp` at its end, for the same workload in the same run.
//!
//! Per batch of 5,000 events: one identity lookup and one profile read per distinct person (a
//! reader, in one read transaction, keys sorted), each distinct person's row rewritten once in
//! place and the audience-change rows appended (the writer, one transaction per batch, WAL
//! checkpoints included). Rows are the sizes the `cdp` bench's profiles have (~175 B binary
//! state, ~265 B member list). Change rows are appended one per INSERT and, as the store does,
//! 64 per INSERT.
#![allow(dead_code)] // not every benchmark measures the floor

use std::collections::BTreeSet;
use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};
use rusqlite::{params, Connection};

use super::cpu_seconds;
use super::people::People;

const BATCH: usize = 5_000;

/// CPU µs per event of each part; `total` counts the change rows 64 per INSERT.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub lookup: f64,
    pub read: f64,
    pub update: f64,
    pub changes_one_by_one: f64,
    pub changes_64: f64,
    pub total: f64,
}

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

/// One batch of point reads as the processor's reader does them: distinct keys sorted, in one
/// read transaction, each finding one row whose first column is text.
fn point_reads<K: Ord + rusqlite::ToSql>(reader: &Connection, sql: &str, keys: BTreeSet<K>) {
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

impl Floor {
    pub fn print(&self) {
        println!(
            "  identity lookup        {:>6.1} µs CPU per event",
            self.lookup
        );
        println!("  profile read           {:>6.1} µs", self.read);
        println!(
            "  profile row rewritten  {:>6.1} µs (WAL and checkpoints included)",
            self.update
        );
        println!(
            "  change rows appended   {:>6.1} µs one per INSERT, {:.1} µs 64 per INSERT",
            self.changes_one_by_one, self.changes_64
        );
        println!(
            "  SQLite alone:          {:>6.1} µs CPU per event → at most {:.0} events/s on 2 cores, before any mapping, merging or evaluating",
            self.total,
            2e6 / self.total
        );
    }
}

/// Measures the floor for `people` (n profiles), `events` events and `changes_per_event`
/// audience changes per event, in a temporary database; prints the setup line.
pub fn measure(n: usize, events: usize, people: &People, changes_per_event: f64) -> Floor {
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
    let changes_per_batch = (BATCH as f64 * changes_per_event).round() as usize;
    println!(
        "sqlite floor: {n} profiles of ~{} B, {events} events, batches of {BATCH}, {changes_per_event:.1} changes per event (setup {:.0}s)",
        state.len() + members.len() + 36 + 2 * time.len(),
        t.elapsed().as_secs_f64()
    );
    let batch_of = |rng: &mut StdRng| -> BTreeSet<usize> {
        (0..BATCH).map(|_| people.pick(rng) as usize).collect()
    };

    let reader = open(&path, 4 * 1024);
    let lookup = per_event(events, |rng| {
        let keys = batch_of(rng)
            .into_iter()
            .map(|p| format!("user{p}@example.com"))
            .collect();
        point_reads(
            &reader,
            "SELECT profile_id FROM identities WHERE field = 'email' AND value = ?1",
            keys,
        );
    });
    let read = per_event(events, |rng| {
        let keys = batch_of(rng).into_iter().map(|p| &ids[p]).collect();
        point_reads(
            &reader,
            "SELECT state, created_at, updated_at, audiences FROM profiles WHERE id = ?1",
            keys,
        );
    });
    let update = per_event(events, |rng| {
        let batch: BTreeSet<&String> = batch_of(rng).into_iter().map(|p| &ids[p]).collect();
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
    let changes_one_by_one = per_event(events, |rng| {
        let tx = writer.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at, entered_at)
                     VALUES (?1, ?2, ?3, 'enter', ?4, NULL)",
                )
                .expect("prepare");
            for _ in 0..changes_per_batch {
                let id = &ids[people.pick(rng) as usize];
                stmt.execute(params!["01936f3e-aud", "a042", id, time])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    });
    let inserts_of_64 = changes_per_batch / 64;
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
            for _ in 0..inserts_of_64 {
                for row in 0..64 {
                    let id = &ids[people.pick(rng) as usize];
                    for (i, v) in ["01936f3e-aud", "a042", id, time].iter().enumerate() {
                        stmt.raw_bind_parameter(row * 4 + i + 1, v).expect("bind");
                    }
                }
                stmt.raw_execute().expect("insert");
            }
        }
        tx.commit().expect("commit");
    }) * if inserts_of_64 == 0 {
        0.0
    } else {
        changes_per_batch as f64 / (inserts_of_64 * 64) as f64
    };
    Floor {
        lookup,
        read,
        update,
        changes_one_by_one,
        changes_64,
        total: lookup + read + update + changes_64,
    }
}
