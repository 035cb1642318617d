//! `ProfileStore`: the processor's cursor, profile batches, identities, the rebuild reset.

use super::*;

pub(super) async fn cdp_mappings_and_events_after(store: &dyn Store) {
    assert!(matches!(
        store.get_mapping("web").await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .put_mapping("web", "SELECT a AS a KIND string FROM web INTO user BY a")
        .await
        .unwrap();
    let m = store.put_mapping("web", "v2").await.unwrap();
    assert_eq!(store.get_mapping("web").await.unwrap(), m);
    assert_eq!(store.list_mappings().await.unwrap().len(), 1);

    let max = store.max_event_seq().await.unwrap();
    store
        .append_events("clicks", vec![event("c1", 1), event("c2", 2)])
        .await
        .unwrap();
    let page = store
        .events_after(max, 10, vec!["clicks".into()])
        .await
        .unwrap();
    assert_eq!((page.scanned, page.last_seq), (2, Some(page.events[1].seq)));
    let none_wanted = store.events_after(max, 1, vec![]).await.unwrap();
    assert_eq!(
        (
            none_wanted.events.len(),
            none_wanted.scanned,
            none_wanted.last_seq
        ),
        (0, 2, page.last_seq)
    );
    let skipped = store
        .events_after(max, 10, vec!["other".into()])
        .await
        .unwrap();
    assert_eq!(
        (skipped.events.len(), skipped.scanned, skipped.last_seq),
        (0, 2, page.last_seq)
    );
    let after = page.events;
    assert_eq!(after.len(), 2);
    assert!(after[0].seq < after[1].seq);
    assert_eq!(after[0].stream, "clicks");
    assert_eq!(store.count_events(max, after[1].seq).await.unwrap(), 2);
    let total: u64 = store
        .list_streams()
        .await
        .unwrap()
        .iter()
        .map(|s| s.events)
        .sum();
    assert_eq!(store.count_events(0, max).await.unwrap(), total - 2);

    let pos = store.processor_position().await.unwrap();
    assert_eq!(
        pos,
        ProcessorPosition {
            cursor: 0,
            rebuild_target: None
        }
    );
    let lag = store.processor_lag().await.unwrap();
    assert!(lag.contains(&("clicks".to_string(), 2)));
    // The cursor moves with a batch.
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            cursor: Some(after[1].seq),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        store.processor_position().await.unwrap().cursor,
        after[1].seq
    );
    assert!(store.processor_lag().await.unwrap().is_empty());

    // Bookkeeping entries travel with batches and leave the cursor alone.
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            state: vec![
                ("reevaluate:a".into(), Some("p9".into())),
                ("reevaluate:b".into(), Some(String::new())),
                ("other".into(), Some("x".into())),
            ],
            ..Default::default()
        }))
        .await
        .unwrap();
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            state: vec![("reevaluate:b".into(), None)],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        store.processor_state("reevaluate:").await.unwrap(),
        [("reevaluate:a".to_string(), "p9".to_string())]
    );
    assert_eq!(
        store.processor_position().await.unwrap().cursor,
        after[1].seq
    );
}

pub(super) async fn cdp_profile_batches(store: &dyn Store) {
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([profile("p1", 1), profile("p2", 2), profile("p3", 3)]),
            identities: vec![
                ident("email", "a@x.io", "p1"),
                ident("email", "b@x.io", "p2"),
                ident("user_id", "u3", "p3"),
            ],
            ..Default::default()
        }))
        .await
        .unwrap();
    let found = store
        .lookup_identities(vec![
            ("email".into(), "a@x.io".into()),
            ("email".into(), "zzz".into()),
            ("user_id".into(), "u3".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![ident("email", "a@x.io", "p1"), ident("user_id", "u3", "p3")]
    );
    let got = store
        .get_profiles(vec!["p2".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].state, profile("p2", 2).state);
    assert_eq!(store.count_profiles().await.unwrap(), 3);

    // p2 merges into p1, later p1 into p3: p2 still resolves (to p3).
    let mut merged = profile("p1", 3);
    merged.created_at = got[0].created_at;
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([merged]),
            deletes: vec!["p2".into()],
            identities: vec![ident("email", "b@x.io", "p1")],
            redirects: vec![("p2".into(), "p1".into())],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(store.get_profile("p2").await.unwrap().id, "p1");
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([profile("p3", 6)]),
            deletes: vec!["p1".into()],
            identities: vec![
                ident("email", "a@x.io", "p3"),
                ident("email", "b@x.io", "p3"),
            ],
            redirects: vec![("p1".into(), "p3".into())],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(store.get_profile("p2").await.unwrap().id, "p3");
    assert_eq!(store.get_profile("p1").await.unwrap().id, "p3");
    // States are stored as the writer encoded them.
    let p3 = profile("p3", 7);
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([p3.clone()]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(store.get_profile("p3").await.unwrap().state, p3.state);
    assert!(matches!(
        store.get_profile("p9").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.profile_identities("p3").await.unwrap(),
        vec![
            ("email".to_string(), "a@x.io".to_string()),
            ("email".to_string(), "b@x.io".to_string()),
            ("user_id".to_string(), "u3".to_string())
        ]
    );
    let page = store.list_profiles(None, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|(p, _)| p.id.as_str()).collect::<Vec<_>>(),
        ["p3"]
    );
    assert!(store
        .list_profiles(Some("p3".into()), 10)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn cdp_reset_for_rebuild(store: &dyn Store) {
    let before = store.list_audience_changes(0, 1000).await.unwrap().len();
    let target = store.reset_profiles(None).await.unwrap();
    assert_eq!(target, store.max_event_seq().await.unwrap());
    let pos = store.processor_position().await.unwrap();
    assert_eq!(
        pos,
        ProcessorPosition {
            cursor: 0,
            rebuild_target: Some(target)
        }
    );
    assert_eq!(store.count_profiles().await.unwrap(), 0);
    assert!(store
        .lookup_identities(vec![("email".into(), "a@x.io".into())])
        .await
        .unwrap()
        .is_empty());
    // Every member exited, in the outbox.
    let changes = store.list_audience_changes(0, 1000).await.unwrap();
    assert_eq!(changes.len(), before + 2);
    assert!(changes[before..].iter().all(|c| c.kind == ChangeKind::Exit));
    assert_eq!(store.list_audiences().await.unwrap()[0].1, 0);
    store.finish_rebuild().await.unwrap();
    assert_eq!(
        store.processor_position().await.unwrap().rebuild_target,
        None
    );
    store.delete_audience("vip").await.unwrap();
}

/// A profile written with its whole member list gets exactly that list, entry times included:
/// the list of the batch's last write of it that has one, whatever the stored rows were.
pub(super) async fn member_lists_are_written_whole(store: &dyn Store) {
    for (id, slug) in [("ml-a1", "ml1"), ("ml-a2", "ml2"), ("ml-a3", "ml3")] {
        store.insert_audience(audience(id, slug)).await.unwrap();
    }
    let at = |secs: i64| chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
    let list = |entries: &[(&str, i64)]| -> MemberList {
        entries
            .iter()
            .map(|(a, secs)| (Arc::from(*a), at(*secs)))
            .collect()
    };
    let added = |a: &str, secs: i64| Membership {
        audience_id: a.into(),
        profile_id: "mp1".into(),
        entered_at: at(secs),
    };
    let stored = || async {
        store
            .profile_memberships(vec!["mp1".into()])
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.audience_id, m.entered_at))
            .collect::<Vec<_>>()
    };
    let counts = || async {
        store
            .list_audiences()
            .await
            .unwrap()
            .into_iter()
            .filter(|(a, _)| a.id.starts_with("ml-"))
            .map(|(a, n)| (a.id, n))
            .collect::<Vec<_>>()
    };
    let write =
        |entries: &[(&str, i64)]| ProfileWrite::new(profile("mp1", 1)).with_members(list(entries));
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: vec![write(&[("ml-a1", 0), ("ml-a2", 0)])],
            memberships_added: vec![added("ml-a1", 0), added("ml-a2", 0)],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        stored().await,
        [("ml-a1".to_string(), at(0)), ("ml-a2".to_string(), at(0))]
    );

    // a1 left, a3 joined, and the writer says a2 began at 10 (e.g. a merge kept the earlier
    // entry of the merged-away profile): the list's time is stored.
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: vec![write(&[("ml-a2", 10), ("ml-a3", 20)])],
            memberships_added: vec![added("ml-a3", 20)],
            memberships_removed: vec![("ml-a1".into(), "mp1".into())],
            ..Default::default()
        }))
        .await
        .unwrap();
    let expected = [("ml-a2".to_string(), at(10)), ("ml-a3".to_string(), at(20))];
    assert_eq!(stored().await, expected);
    assert_eq!(
        counts().await,
        [
            ("ml-a1".to_string(), 0),
            ("ml-a2".to_string(), 1),
            ("ml-a3".to_string(), 1)
        ]
    );

    // Two writes of the profile in one batch: the last one's list is the profile's, and no
    // entry of the earlier one stays.
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: vec![
                write(&[("ml-a1", 30)]),
                write(&[("ml-a2", 10), ("ml-a3", 20)]),
            ],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(stored().await, expected);
    assert_eq!(
        counts().await,
        [
            ("ml-a1".to_string(), 0),
            ("ml-a2".to_string(), 1),
            ("ml-a3".to_string(), 1)
        ]
    );

    // A deleted audience's memberships go with it.
    store.delete_audience("ml3").await.unwrap();
    assert_eq!(stored().await, [("ml-a2".to_string(), at(10))]);
    assert!(store
        .list_members("ml-a3", None, 10)
        .await
        .unwrap()
        .is_empty());
}
