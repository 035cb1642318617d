//! The two SQLite files checked against each other at open.
//!
//! Each file is consistent on its own through its WAL, but the commits a WAL holds are lost
//! with it: a `-wal` file deleted after a crash (or a file restored from a different moment)
//! leaves one file behind the other. Two such disagreements would otherwise go unnoticed and
//! make silent errors:
//! - the profiles (CDP file) have applied events the event log (main file) no longer has. The
//!   import reads those records from Kinesis again (its checkpoints went back with the log)
//!   and the processor would apply them a second time, so the profiles are rebuilt from the
//!   log instead (every membership exits, then the log is replayed; see
//!   [`ProfileStore::reset_profiles`](crate::store::ProfileStore::reset_profiles));
//! - an export job (main file) has published audience changes the outbox (CDP file) no longer
//!   has. The processor makes those changes again, numbered from where the outbox now ends,
//!   and the job would skip them as already sent, so its position goes back to the outbox's
//!   end (downstream may receive them twice; never not at all).
//!
//! Both are compared with the tables' AUTOINCREMENT high-water marks (`sqlite_sequence`),
//! which retention's deletes do not lower.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::db;
use super::profiles::{cursor, reset_profiles_in};
use crate::store::StoreResult;

/// What [`reconcile_files`] found and mended.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reconciled {
    /// The profiles were ahead of the event log and are being rebuilt up to this `seq`.
    pub rebuild_target: Option<i64>,
    /// Export jobs moved back to the outbox's end.
    pub exports_moved_back: usize,
}

/// Checks the files against each other and mends what disagrees: one transaction per file
/// mended (a transaction over both files is atomic per file only), each found again at the
/// next open should a crash come between them.
pub(super) fn reconcile_files(conn: &mut Connection) -> StoreResult<Reconciled> {
    let mut found = Reconciled::default();
    let tx = conn.transaction().map_err(db)?;

    let log_end = high_water(
        &tx,
        "SELECT seq FROM main.sqlite_sequence WHERE name = 'events'",
    )?;
    let applied = cursor(&tx)?;
    if applied > log_end {
        let target = reset_profiles_in(&tx)?;
        tracing::error!(
            applied,
            log_end,
            "the profiles have applied events up to #{applied} but the event log ends at #{log_end}: \
             tributary.db lost its last commits (was its -wal file deleted after a crash, or the file \
             restored from a backup older than tributary-cdp.db?); the import reads the lost records \
             again, and the profiles are being rebuilt from the event log so that none is counted \
             twice (every audience member exits and enters again downstream)"
        );
        found.rebuild_target = Some(target);
    }
    tx.commit().map_err(db)?;

    let tx = conn.transaction().map_err(db)?;

    let outbox_end = high_water(
        &tx,
        "SELECT seq FROM cdp.sqlite_sequence WHERE name = 'audience_changes'",
    )?;
    let moved = tx
        .execute(
            "UPDATE export_progress
                SET progress = json_set(progress, '$.cursor', ?1), updated_at = ?2
              WHERE json_extract(progress, '$.cursor') > ?1",
            params![outbox_end, super::now_text()],
        )
        .map_err(db)?;
    if moved > 0 {
        tracing::error!(
            jobs = moved,
            outbox_end,
            "{moved} export job(s) had sent audience changes past the outbox's end (#{outbox_end}): \
             tributary-cdp.db lost its last commits (was its -wal file deleted after a crash?); \
             the profile processor makes those changes again and the jobs send them from #{outbox_end} \
             on, so downstream may receive some twice"
        );
        found.exports_moved_back = moved;
    }
    tx.commit().map_err(db)?;
    Ok(found)
}

/// An AUTOINCREMENT table's largest `seq` ever given (0 before the first row).
fn high_water(tx: &Transaction<'_>, sql: &str) -> StoreResult<i64> {
    let seq: Option<i64> = tx.query_row(sql, [], |r| r.get(0)).optional().map_err(db)?;
    Ok(seq.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose profiles have applied `cursor` and whose export job has sent up to
    /// `export_cursor`, with `events` events and `changes` outbox rows.
    fn files_with(
        dir: &std::path::Path,
        events: i64,
        changes: i64,
        cursor: i64,
        export_cursor: i64,
    ) -> Connection {
        let path = dir.join("tributary.db");
        let mut conn = super::super::connect(&path, 256, 256).unwrap();
        super::super::migrate(&mut conn).unwrap();
        let now = super::super::now_text();
        conn.execute(
            "INSERT INTO authorizations (id, label, method, created_at) VALUES ('a', 'a', 'keys', ?1)",
            [&now],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO jobs (id, job_type, label, authorization_id, config, state, created_at, updated_at)
             VALUES ('exp', 'export', 'exp', 'a', '{}', 'running', ?1, ?1)",
            [&now],
        )
        .unwrap();
        for n in 1..=events {
            conn.execute(
                "INSERT INTO events (event_id, stream, fields, stored_at) VALUES (?1, 'web', '{}', ?2)",
                params![format!("e{n}"), now],
            )
            .unwrap();
        }
        for n in 1..=changes {
            conn.execute(
                "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at)
                 VALUES ('a', 'a', ?1, 'enter', ?2)",
                params![format!("p{n}"), now],
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE cdp_state SET value = ?1 WHERE key = 'cursor'",
            [cursor.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO export_progress (job_id, progress, updated_at) VALUES ('exp', ?1, ?2)",
            params![
                format!("{{\"cursor\":{export_cursor},\"backfill\":null}}"),
                now
            ],
        )
        .unwrap();
        conn
    }

    #[test]
    fn files_that_agree_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = files_with(dir.path(), 5, 3, 5, 3);
        assert_eq!(reconcile_files(&mut conn).unwrap(), Reconciled::default());
        assert_eq!(cursor(&conn).unwrap(), 5);
    }

    #[test]
    fn profiles_ahead_of_the_event_log_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        // Applied up to #7, but the log (its WAL lost) ends at #4.
        let mut conn = files_with(dir.path(), 4, 0, 7, 0);
        let found = reconcile_files(&mut conn).unwrap();
        assert_eq!(found.rebuild_target, Some(4));
        assert_eq!(cursor(&conn).unwrap(), 0);
        // Once mended, a second open finds nothing.
        assert_eq!(reconcile_files(&mut conn).unwrap(), Reconciled::default());
    }

    #[test]
    fn an_export_ahead_of_the_outbox_goes_back_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        // Sent up to #9, but the outbox (its WAL lost) ends at #6.
        let mut conn = files_with(dir.path(), 2, 6, 2, 9);
        let found = reconcile_files(&mut conn).unwrap();
        assert_eq!(found.exports_moved_back, 1);
        assert_eq!(found.rebuild_target, None);
        let progress: String = conn
            .query_row(
                "SELECT progress FROM export_progress WHERE job_id = 'exp'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let progress: serde_json::Value = serde_json::from_str(&progress).unwrap();
        assert_eq!(progress["cursor"], 6);
        assert_eq!(progress["backfill"], serde_json::Value::Null);
    }

    #[test]
    fn retention_emptying_the_log_is_not_a_disagreement() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = files_with(dir.path(), 5, 0, 5, 0);
        conn.execute("DELETE FROM events", []).unwrap();
        assert_eq!(reconcile_files(&mut conn).unwrap(), Reconciled::default());
        assert_eq!(cursor(&conn).unwrap(), 5);
    }
}
