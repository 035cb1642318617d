//! `ImportStore`: shard checkpoints, idempotent page commits, dead letters.

use super::*;

pub(super) async fn jobs_and_checkpoints(store: &dyn Store) {
    store.insert_job(job("j1", "a1")).await.unwrap();
    let err = store.delete_authorization("a1").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("job j1")),
        "{err}"
    );
    store
        .set_job_state("j1", JobState::Failed, Some("stream deleted"))
        .await
        .unwrap();
    let j = store.get_job("j1").await.unwrap();
    assert_eq!(
        (j.state, j.last_error.as_deref()),
        (JobState::Failed, Some("stream deleted"))
    );

    let shard = |id: &str, parents: &[&str]| {
        ShardCheckpoint::unread(
            id.into(),
            parents.iter().map(|p| p.to_string()).collect(),
            ShardState::WaitingForParent,
            StartPosition::AtTimestamp("2026-01-01T00:00:00Z".parse().unwrap()),
        )
    };
    store
        .register_shards("j1", &[shard("s0", &[]), shard("s1", &["s0"])])
        .await
        .unwrap();
    store
        .set_shard_state("j1", "s0", ShardState::Reading)
        .await
        .unwrap();
    // Registering again must not reset progress.
    store
        .register_shards("j1", &[shard("s0", &[])])
        .await
        .unwrap();
    let cps = store.list_checkpoints("j1").await.unwrap();
    assert_eq!(cps.len(), 2);
    assert_eq!(cps[0].state, ShardState::Reading);
    assert_eq!(cps[1].parent_shard_ids, ["s0"]);
    assert!(matches!(
        cps[1].start_position,
        StartPosition::AtTimestamp(_)
    ));
}

pub(super) async fn shard_batches_are_idempotent(store: &dyn Store) {
    let batch = ShardBatch {
        job_id: "j1".into(),
        stream: "web".into(),
        events: vec![event("e1", 1), event("e2", 2)],
        dead_letters: vec![NewDeadLetter {
            shard_id: "s0".into(),
            sequence_number: "3".into(),
            sub_sequence_number: None,
            position: 0,
            partition_key: "pk".into(),
            reason: "not JSON".into(),
            raw: vec![0xff],
        }],
        records_in: 3,
        suppressed: 2,
        checkpoint: ShardCheckpoint {
            shard_id: "s0".into(),
            parent_shard_ids: vec![],
            state: ShardState::Reading,
            start_position: StartPosition::TrimHorizon,
            sequence_number: Some("3".into()),
            sub_sequence_number: None,
            records: 3,
            millis_behind_latest: Some(0),
        },
        fence: None,
    };
    let first = store
        .commit_shard_batch(std::sync::Arc::new(batch.clone()))
        .await
        .unwrap();
    assert_eq!(
        first,
        BatchOutcome {
            events_inserted: 2,
            dead_letters_inserted: 1
        }
    );
    // Dropped events are counted in the page's commit.
    assert_eq!(
        store.suppressed_counts().await.unwrap(),
        vec![("j1".to_string(), 2)]
    );
    // A replay of the same batch (a crash between commit and the next read) adds nothing.
    let replay = store
        .commit_shard_batch(std::sync::Arc::new(batch))
        .await
        .unwrap();
    assert_eq!(replay, BatchOutcome::default());

    let j = store.get_job("j1").await.unwrap();
    assert_eq!(
        j.totals,
        JobTotals {
            records_in: 6,
            events_out: 2,
            dead_letters: 1
        }
    );
    let cp = &store.list_checkpoints("j1").await.unwrap()[0];
    assert_eq!(cp.sequence_number.as_deref(), Some("3"));
    let letters = store.list_dead_letters("j1", 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter.raw, vec![0xff]);
    assert_eq!(letters[0].letter.sub_sequence_number, None);
}
