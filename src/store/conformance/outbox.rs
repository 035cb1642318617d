//! `OutboxStore`: the audience-change outbox, export progress, backfill pages, and the
//! ordering contract under concurrent writers.

use super::*;

pub(super) async fn cdp_audiences_and_outbox(store: &dyn Store) {
    let vip = audience("aud1", "vip");
    store.insert_audience(vip.clone()).await.unwrap();
    store
        .insert_audience(audience("aud2", "all"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_audience(audience("aud3", "vip")).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = vip.clone();
    changed.filter = "visits > 5".into();
    store.update_audience(changed.clone()).await.unwrap();
    assert_eq!(
        store.get_audience("vip").await.unwrap().filter,
        "visits > 5"
    );

    let before = store.list_audience_changes(0, 1000).await.unwrap().len();
    assert_eq!(before, 0);
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: writes([profile("p4", 1), profile("p5", 1)]),
            memberships_added: ["p3", "p4", "p5"]
                .iter()
                .map(|p| Membership {
                    audience_id: "aud1".into(),
                    profile_id: (*p).into(),
                    entered_at: Utc::now(),
                })
                .collect(),
            changes: vec![
                change(&vip, "p3", ChangeKind::Enter),
                change(&vip, "p4", ChangeKind::Enter),
                change(&vip, "p5", ChangeKind::Enter),
            ],
            ..Default::default()
        }))
        .await
        .unwrap();
    let counts = store.list_audiences().await.unwrap();
    assert_eq!(
        counts
            .iter()
            .map(|(a, n)| (a.slug.as_str(), *n))
            .collect::<Vec<_>>(),
        [("all", 0), ("vip", 3)]
    );
    let m = store.list_members("aud1", None, 2).await.unwrap();
    assert_eq!(
        m.iter().map(|m| m.profile_id.as_str()).collect::<Vec<_>>(),
        ["p3", "p4"]
    );
    let m = store
        .list_members("aud1", Some("p4".into()), 2)
        .await
        .unwrap();
    assert_eq!(
        m.iter().map(|m| m.profile_id.as_str()).collect::<Vec<_>>(),
        ["p5"]
    );
    let ms = store
        .profile_memberships(vec!["p4".into(), "p9".into()])
        .await
        .unwrap();
    assert_eq!(ms.len(), 1);

    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            memberships_removed: vec![("aud1".into(), "p4".into())],
            changes: vec![change(&vip, "p4", ChangeKind::Exit)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let all = store.list_audience_changes(0, 1000).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        all.iter()
            .map(|c| (c.profile_id.as_str(), c.kind))
            .collect::<Vec<_>>(),
        [
            ("p3", ChangeKind::Enter),
            ("p4", ChangeKind::Enter),
            ("p5", ChangeKind::Enter),
            ("p4", ChangeKind::Exit)
        ]
    );
    assert_eq!(all[0].audience_slug, "vip");
    let tail = store.list_audience_changes(all[1].seq, 2).await.unwrap();
    assert_eq!(tail, all[2..4].to_vec());
    assert_eq!(store.list_audiences().await.unwrap()[1].1, 2);

    // A merged-away profile leaves its memberships.
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            deletes: vec!["p5".into()],
            redirects: vec![("p5".into(), "p3".into())],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(store.list_members("aud1", None, 10).await.unwrap().len(), 1);

    // A profile written with its whole member list; the added entry only counts.
    let joined = Membership {
        audience_id: "aud1".into(),
        profile_id: "p6".into(),
        entered_at: Utc::now(),
    };
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: vec![ProfileWrite::new(profile("p6", 1)).with_members(vec![(
                joined.audience_id.as_str().into(),
                joined.entered_at,
            )])],
            memberships_added: vec![joined],
            changes: vec![change(&vip, "p6", ChangeKind::Enter)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let m = store.list_members("aud1", None, 10).await.unwrap();
    assert_eq!(
        m.iter().map(|m| m.profile_id.as_str()).collect::<Vec<_>>(),
        ["p3", "p6"]
    );
    assert_eq!(store.list_audiences().await.unwrap()[1].1, 2);

    // A batch of many changes (a store may write them many rows per statement) keeps each
    // row as given, in order; times change along the batch.
    let last = store.list_audience_changes(0, 1000).await.unwrap();
    let after = last.last().map_or(0, |c| c.seq);
    let base = chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
    let many: Vec<NewAudienceChange> = (0..150)
        .map(|i| {
            let kind = [ChangeKind::Enter, ChangeKind::Exit][i % 2];
            NewAudienceChange {
                profile_id: format!("q{i:03}"),
                kind,
                at: base + chrono::Duration::seconds(i as i64 / 50),
                entered_at: (kind == ChangeKind::Exit)
                    .then(|| base - chrono::Duration::microseconds(i as i64)),
                ..change(&vip, "", kind)
            }
        })
        .collect();
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            changes: many.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let written = store.list_audience_changes(after, 1000).await.unwrap();
    assert_eq!(
        written
            .iter()
            .map(|c| (c.profile_id.clone(), c.kind, c.at, c.entered_at))
            .collect::<Vec<_>>(),
        many.iter()
            .map(|c| (c.profile_id.clone(), c.kind, c.at, c.entered_at))
            .collect::<Vec<_>>()
    );
    assert!(written.iter().all(|c| c.audience_slug == "vip"));
    store.delete_audience("all").await.unwrap();
    assert!(matches!(
        store.delete_audience("all").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) async fn export_progress_and_backfill_pages(store: &dyn Store) {
    store
        .insert_authorization(auth("ax", "export-auth"))
        .await
        .unwrap();
    store
        .insert_job(Job {
            job_type: JobType::KinesisExport,
            ..job("jx", "ax")
        })
        .await
        .unwrap();
    assert_eq!(store.get_export_progress("jx").await.unwrap(), None);

    // Whatever members the CDP tests left: pages of one must walk them all, in order.
    let mut expected: Vec<String> = Vec::new();
    for audience in ["aud1", "aud2"] {
        let members = store.list_members(audience, None, 100).await.unwrap();
        expected.extend(members.into_iter().map(|m| m.profile_id));
    }
    assert!(
        !expected.is_empty(),
        "the CDP conformance steps leave members behind"
    );
    let ids = vec!["aud2".to_string(), "aud1".to_string()];
    let head = store.audience_change_head().await.unwrap();
    assert!(head >= 3);
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = store
            .backfill_page(ids.clone(), after.clone(), 1)
            .await
            .unwrap();
        assert_eq!(page.head, head);
        let Some(last) = page.members.last() else {
            break;
        };
        after = Some((last.audience_id.clone(), last.profile_id.clone()));
        seen.extend(page.members.iter().map(|m| m.profile_id.clone()));
    }
    assert_eq!(seen, expected);

    let progress = ExportProgress {
        cursor: head,
        backfill: Some(BackfillProgress {
            total: 3,
            sent: 3,
            done: true,
            after,
        }),
    };
    let round = ExportRound {
        progress: progress.clone(),
        changes_read: 3,
        records_sent: 2,
        dead_letters: vec![NewDeadLetter {
            shard_id: "-".into(),
            sequence_number: "change-1".into(),
            sub_sequence_number: None,
            position: 0,
            partition_key: "p3".into(),
            reason: "record of 2000000 bytes exceeds Kinesis' 1 MiB".into(),
            raw: vec![b'{'],
        }],
        fence: None,
    };
    store
        .commit_export_round("jx", Arc::new(round))
        .await
        .unwrap();
    assert_eq!(
        store.get_export_progress("jx").await.unwrap(),
        Some(progress)
    );
    let totals = store.get_job("jx").await.unwrap().totals;
    assert_eq!(
        totals,
        JobTotals {
            records_in: 3,
            events_out: 2,
            dead_letters: 1
        }
    );
    assert_eq!(store.list_dead_letters("jx", 10).await.unwrap().len(), 1);

    store.delete_job("jx").await.unwrap();
    assert_eq!(store.get_export_progress("jx").await.unwrap(), None);
    store.delete_authorization("ax").await.unwrap();
}

/// Writers commit batches of audience changes concurrently while a reader follows the outbox
/// with [`OutboxStore::list_audience_changes`], as an export job does: it must see every
/// change once, positions only increasing.
pub(super) async fn readers_never_skip_concurrent_writers(store: DynStore) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 40;
    let aud = audience("ordering", "ordering");
    let start = store.audience_change_head().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (store, aud) = (store.clone(), aud.clone());
        tasks.spawn(async move {
            let mut written = Vec::new();
            for b in 0..BATCHES {
                let changes: Vec<NewAudienceChange> = (0..3)
                    .map(|i| change(&aud, &format!("w{w}-b{b}-{i}"), ChangeKind::Enter))
                    .collect();
                written.extend(changes.iter().map(|c| c.profile_id.clone()));
                let batch = ProfileBatch {
                    changes,
                    ..Default::default()
                };
                store.commit_profile_batch(Arc::new(batch)).await.unwrap();
                tokio::task::yield_now().await;
            }
            written
        });
    }
    let (mut written, mut seen) = (Vec::new(), Vec::new());
    let mut cursor = start;
    while !tasks.is_empty() {
        while let Some(done) = tasks.try_join_next() {
            written.extend(done.unwrap());
        }
        cursor = read_changes(&*store, cursor, &mut seen).await;
        tokio::task::yield_now().await;
    }
    loop {
        let next = read_changes(&*store, cursor, &mut seen).await;
        if next == cursor {
            break;
        }
        cursor = next;
    }
    assert_eq!(written.len(), WRITERS * BATCHES * 3);
    let seen_set: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(seen_set.len(), seen.len(), "the reader saw a change twice");
    let missed: Vec<&String> = written.iter().filter(|id| !seen_set.contains(id)).collect();
    assert!(missed.is_empty(), "the reader skipped changes: {missed:?}");
}

/// Reads the changes after `cursor` into `seen`; returns the new cursor.
async fn read_changes(store: &dyn Store, cursor: i64, seen: &mut Vec<String>) -> i64 {
    let page = store.list_audience_changes(cursor, 50).await.unwrap();
    let mut next = cursor;
    for c in &page {
        assert!(c.seq > next, "positions went back: {} after {next}", c.seq);
        next = c.seq;
    }
    seen.extend(page.into_iter().map(|c| c.profile_id));
    next
}
