//! The behaviour every store backend must show. Each backend's tests call [`run_all`], so SQLite
//! today and PostgreSQL later are held to one contract.

use chrono::Utc;
use serde_json::json;

use super::*;

pub async fn run_all(store: &dyn Store) {
    authorizations(store).await;
    jobs_and_checkpoints(store).await;
    shard_batches_are_idempotent(store).await;
    event_log_pages_newest_first(store).await;
}

fn auth(id: &str, label: &str) -> Authorization {
    Authorization {
        id: id.into(),
        label: label.into(),
        description: "d".into(),
        credentials: Credentials::AwsKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            sealed_secret_access_key: vec![1, 2, 3],
        },
        created_at: Utc::now(),
    }
}

fn job(id: &str, auth_id: &str) -> Job {
    Job {
        id: id.into(),
        job_type: JobType::KinesisImport,
        label: format!("job {id}"),
        description: String::new(),
        authorization_id: auth_id.into(),
        config: json!({"stream": "web"}),
        state: JobState::Running,
        last_error: None,
        totals: JobTotals::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

async fn authorizations(store: &dyn Store) {
    store
        .insert_authorization(auth("a1", "prod"))
        .await
        .unwrap();
    let role = Authorization {
        credentials: Credentials::AwsRole {
            role_arn: "arn:aws:iam::1:role/x".into(),
            external_id: "ext".into(),
        },
        ..auth("a2", "delegated")
    };
    store.insert_authorization(role.clone()).await.unwrap();
    assert!(matches!(
        store.insert_authorization(auth("a3", "prod")).await,
        Err(StoreError::Conflict(_))
    ));
    let all = store.list_authorizations().await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    assert_eq!(
        store.get_authorization("a2").await.unwrap().credentials,
        role.credentials
    );
    assert!(matches!(
        store.get_authorization("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_authorization("a2").await.unwrap();
    assert!(matches!(
        store.delete_authorization("a2").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn jobs_and_checkpoints(store: &dyn Store) {
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

    let shard = |id: &str, parents: &[&str]| ShardCheckpoint {
        shard_id: id.into(),
        parent_shard_ids: parents.iter().map(|p| p.to_string()).collect(),
        state: ShardState::WaitingForParent,
        start_position: StartPosition::AtTimestamp("2026-01-01T00:00:00Z".parse().unwrap()),
        sequence_number: None,
        sub_sequence_number: None,
        records: 0,
        millis_behind_latest: None,
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
    assert!(matches!(cps[1].start_position, StartPosition::AtTimestamp(_)));
}

fn event(id: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        fields: json!({"n": n}).as_object().unwrap().clone(),
        origin: Some(KinesisOrigin {
            stream: "clicks".into(),
            shard_id: "s0".into(),
            sequence_number: format!("{n}"),
            sub_sequence_number: 0,
            partition_key: "pk".into(),
            approximate_arrival_timestamp: None,
        }),
    }
}

async fn shard_batches_are_idempotent(store: &dyn Store) {
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
    };
    let first = store.commit_shard_batch(std::sync::Arc::new(batch.clone())).await.unwrap();
    assert_eq!(
        first,
        BatchOutcome {
            events_inserted: 2,
            dead_letters_inserted: 1
        }
    );
    // A replay of the same batch (a crash between commit and the next read) adds nothing.
    let replay = store.commit_shard_batch(std::sync::Arc::new(batch)).await.unwrap();
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

async fn event_log_pages_newest_first(store: &dyn Store) {
    let n = store
        .append_events("web", (3..8).map(|i| event(&format!("e{i}"), i)).collect())
        .await
        .unwrap();
    assert_eq!(n, 5);
    let page = store.list_events("web", 3, None).await.unwrap();
    let ns: Vec<i64> = page
        .iter()
        .map(|e| e.fields["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [7, 6, 5]);
    let next = store
        .list_events("web", 10, Some(page[2].seq))
        .await
        .unwrap();
    let ns: Vec<i64> = next
        .iter()
        .map(|e| e.fields["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [4, 3, 2, 1]);
    assert_eq!(next[0].origin.as_ref().unwrap().stream, "clicks");
    let streams = store.list_streams().await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!((streams[0].name.as_str(), streams[0].events), ("web", 7));
    assert!(streams[0].last_event_at.is_some());

    store.delete_job("j1").await.unwrap();
    assert!(store.list_dead_letters("j1", 10).await.unwrap().is_empty());
    assert!(store.list_checkpoints("j1").await.unwrap().is_empty());
    store.delete_authorization("a1").await.unwrap();
}
