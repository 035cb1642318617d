//! `BackupStore`: a copy of the whole store that opens as an ordinary one, or a `Conflict`
//! naming the tool to use instead.

use std::future::Future;
use std::path::{Path, PathBuf};

use super::*;

/// `reopen` opens a store on a backup directory, or answers `None` for a backend whose backups
/// are made by its own tools (PostgreSQL's `pg_dump`).
pub(super) async fn a_copy_opens_as_an_ordinary_store<F, Fut>(store: &dyn Store, reopen: F)
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Option<DynStore>>,
{
    store
        .insert_authorization(auth("a1", "prod"))
        .await
        .unwrap();
    store.insert_job(job("j1", "a1")).await.unwrap();
    let mut checkpoint = reading_shard();
    store
        .register_shards("j1", std::slice::from_ref(&checkpoint))
        .await
        .unwrap();
    checkpoint.sequence_number = Some("2".into());
    checkpoint.sub_sequence_number = Some(0);
    store
        .commit_shard_batch(Arc::new(ShardBatch {
            job_id: "j1".into(),
            stream: "web".into(),
            events: vec![event("e1", 1), event("e2", 2)],
            dead_letters: Vec::new(),
            checkpoint,
            records_in: 2,
            suppressed: 0,
            fence: None,
        }))
        .await
        .unwrap();

    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("backup");
    let report = match store.backup_to(dest.clone()).await {
        Err(StoreError::Conflict(message)) => {
            // The answer says what to use instead, and nothing was written.
            assert!(message.contains("back"), "{message}");
            assert!(
                !dest.exists() || is_empty(&dest),
                "a refused backup wrote files"
            );
            assert!(
                reopen(dest).await.is_none(),
                "a backend that refuses backups reopens one"
            );
            return;
        }
        other => other.unwrap(),
    };
    assert!(!report.files.is_empty());
    let mut bytes = 0;
    for file in &report.files {
        assert_eq!(
            file.parent(),
            Some(dest.as_path()),
            "{} is outside dest_dir",
            file.display()
        );
        bytes += std::fs::metadata(file).unwrap().len();
    }
    assert_eq!(
        report.bytes, bytes,
        "the report's bytes are the files' sizes"
    );

    // Writes after the copy are not in it.
    store
        .append_events("web", vec![event("e3", 3)])
        .await
        .unwrap();

    // Files already there are never overwritten.
    let before: Vec<u64> = report
        .files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    let err = store.backup_to(dest.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("exists")),
        "{err}"
    );
    let after: Vec<u64> = report
        .files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    assert_eq!(
        before, after,
        "a second backup into the same directory changed the first"
    );

    let copy = reopen(dest)
        .await
        .expect("a backend that makes backups opens them");
    assert_eq!(copy.list_authorizations().await.unwrap().len(), 1);
    let cps = copy.list_checkpoints("j1").await.unwrap();
    assert_eq!(
        cps[0].sequence_number.as_deref(),
        Some("2"),
        "jobs resume from the copy's checkpoints"
    );
    let events = copy.list_events("web", 10, None).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["e2", "e1"],
        "the copy holds the store as of the backup"
    );
    // The copy is an ordinary store: it takes writes.
    assert_eq!(
        copy.append_events("web", vec![event("e4", 4)])
            .await
            .unwrap(),
        1
    );
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}
