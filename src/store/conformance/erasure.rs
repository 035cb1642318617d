//! `ErasureStore`: erasure records, the profile step with its exits, event deletes and the
//! suppression list.

use super::*;

pub(super) async fn erase_a_person(store: &dyn Store) {
    let vip = audience("era1", "era-vip");
    store.insert_audience(vip.clone()).await.unwrap();
    store
        .append_events(
            "era",
            vec![event("era-e1", 1), event("era-e2", 2), event("era-e3", 3)],
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = store
        .list_events("era", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([profile("ep1", 3), profile("ep2", 1)]),
            identities: vec![
                ident("email", "a@example.com", "ep1"),
                ident("user_id", "u1", "ep1"),
                ident("email", "b@example.com", "ep2"),
            ],
            redirects: vec![("ep0".into(), "ep1".into())],
            memberships_added: vec![Membership {
                audience_id: "era1".into(),
                profile_id: "ep1".into(),
                entered_at: Utc::now(),
            }],
            changes: vec![change(&vip, "ep1", ChangeKind::Enter)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let head = store.audience_change_head().await.unwrap();

    let identities = store.profile_identities("ep1").await.unwrap();
    let record = store
        .begin_erasure("ep1", identities.clone(), true)
        .await
        .unwrap();
    assert_eq!(record.state, ErasureState::Pending);
    assert_eq!(record.identities, identities);
    let pending = store.pending_erasures().await.unwrap();
    assert_eq!(
        pending.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&record.id]
    );

    let hashes = vec![
        ("email".to_owned(), "aa".repeat(32)),
        ("user_id".to_owned(), "bb".repeat(32)),
    ];
    let step = || ProfileErasure {
        erasure_id: record.id.clone(),
        suppressions: hashes.clone(),
        fence: None,
    };
    let counts = store.erase_profile(step()).await.unwrap();
    assert_eq!(
        (
            counts.identities_deleted,
            counts.audiences_exited,
            counts.suppressed
        ),
        (2, 1, 2)
    );
    // The exit went to the outbox with the reason and the entry time.
    let changes = store.list_audience_changes(head, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Exit);
    assert_eq!(changes[0].profile_id, "ep1");
    assert_eq!(changes[0].reason.as_deref(), Some("deleted"));
    assert!(changes[0].entered_at.is_some());
    assert!(matches!(
        store.get_profile("ep1").await,
        Err(StoreError::NotFound { .. })
    ));
    // A redirect to it no longer resolves either.
    assert!(store.get_profile("ep0").await.is_err());
    assert!(store.profile_identities("ep1").await.unwrap().is_empty());
    assert_eq!(store.list_members("era1", None, 10).await.unwrap(), vec![]);
    let counts_after = store.list_audiences().await.unwrap();
    let (_, members) = counts_after.iter().find(|(a, _)| a.id == "era1").unwrap();
    assert_eq!(*members, 0);
    // The other profile is untouched.
    assert_eq!(store.get_profile("ep2").await.unwrap().id, "ep2");

    // Run again (a restart between steps): nothing more is deleted or sent.
    let again = store.erase_profile(step()).await.unwrap();
    assert_eq!(again, counts);
    assert_eq!(store.audience_change_head().await.unwrap(), head + 1);

    assert_eq!(
        store
            .delete_events(vec![seqs[0], seqs[1], 999_999])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.delete_events(vec![seqs[0]]).await.unwrap(), 0);
    let left = store.list_events("era", 10, None).await.unwrap();
    assert_eq!(left.len(), 1);
    let stream = store.list_streams().await.unwrap();
    assert_eq!(stream.iter().find(|s| s.name == "era").unwrap().events, 1);

    let done = store.finish_erasure(&record.id, 2).await.unwrap();
    assert_eq!(done.state, ErasureState::Done);
    assert!(done.identities.is_empty(), "values are forgotten");
    assert_eq!(done.counts.events_deleted, 2);
    assert_eq!(done.counts.audiences_exited, 1);
    assert!(store.pending_erasures().await.unwrap().is_empty());
    assert_eq!(store.get_erasure(&record.id).await.unwrap(), done);

    let list = store.list_suppressions().await.unwrap();
    let mut pairs: Vec<_> = list
        .iter()
        .map(|s| (s.field.clone(), s.hash.clone()))
        .collect();
    pairs.sort();
    assert_eq!(pairs, hashes);
    store.delete_suppression(&list[0].id).await.unwrap();
    assert_eq!(store.list_suppressions().await.unwrap().len(), 1);
    assert!(matches!(
        store.delete_suppression(&list[0].id).await,
        Err(StoreError::NotFound { .. })
    ));

    store.count_suppressed("job-x", 3).await.unwrap();
    store.count_suppressed("job-x", 2).await.unwrap();
    store.count_suppressed("collect", 1).await.unwrap();
    store.count_suppressed("collect", 0).await.unwrap();
    assert_eq!(
        store.suppressed_counts().await.unwrap(),
        [("collect".to_owned(), 1), ("job-x".to_owned(), 5)]
    );
    assert!(matches!(
        store.get_erasure("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) async fn dead_letters_carrying_a_value_go(store: &dyn Store) {
    store
        .insert_authorization(auth("era-a", "era-auth"))
        .await
        .unwrap();
    store.insert_job(job("era-job", "era-a")).await.unwrap();
    let letter = |seq: &str, raw: &str| NewDeadLetter {
        shard_id: "s0".into(),
        sequence_number: seq.into(),
        sub_sequence_number: None,
        position: 0,
        partition_key: "pk".into(),
        reason: "bad".into(),
        raw: raw.as_bytes().to_vec(),
    };
    let checkpoint = reading_shard();
    store
        .register_shards("era-job", std::slice::from_ref(&checkpoint))
        .await
        .unwrap();
    store
        .commit_shard_batch(Arc::new(ShardBatch {
            job_id: "era-job".into(),
            stream: "era".into(),
            events: vec![],
            dead_letters: vec![
                letter("1", "{\"email\": \"gone@example.com\""),
                letter("2", "{\"email\": \"kept@example.com\""),
            ],
            records_in: 2,
            suppressed: 0,
            checkpoint: ShardCheckpoint {
                sequence_number: Some("2".into()),
                records: 2,
                ..checkpoint
            },
            fence: None,
        }))
        .await
        .unwrap();
    let n = store
        .delete_dead_letters_containing(vec!["gone@example.com".into(), String::new()])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let left = store.list_dead_letters("era-job", 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].letter.sequence_number, "2");
}
