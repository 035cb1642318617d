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
    cdp_mappings_and_events_after(store).await;
    cdp_profile_batches(store).await;
    cdp_audiences_and_outbox(store).await;
    export_progress_and_backfill_pages(store).await;
    cdp_reset_for_rebuild(store).await;
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
    assert!(matches!(
        cps[1].start_position,
        StartPosition::AtTimestamp(_)
    ));
}

fn event(id: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        fields: json!({"n": n}).as_object().unwrap().clone().into(),
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

// ----- CDP ------------------------------------------------------------------------------------

async fn cdp_mappings_and_events_after(store: &dyn Store) {
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

fn profile(id: &str, visits: i64) -> Profile {
    let mut state = tributary_lang::ProfileState::new();
    state.fields.insert(
        "visits".into(),
        tributary_lang::FieldState::Count { count: visits },
    );
    Profile {
        id: id.into(),
        state,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn ident(field: &str, value: &str, profile_id: &str) -> IdentityRow {
    IdentityRow {
        field: field.into(),
        value: value.into(),
        profile_id: profile_id.into(),
    }
}

async fn cdp_profile_batches(store: &dyn Store) {
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upserts: vec![profile("p1", 1), profile("p2", 2), profile("p3", 3)],
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
            upserts: vec![merged],
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
            upserts: vec![profile("p3", 6)],
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
    // States the writer encoded itself are stored as given.
    let p3 = profile("p3", 7);
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            upsert_states: vec![p3.state.to_bytes()],
            upserts: vec![p3.clone()],
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

fn audience(id: &str, slug: &str) -> Audience {
    Audience {
        id: id.into(),
        slug: slug.into(),
        name: format!("{slug} name"),
        description: String::new(),
        filter: "visits > 1".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn change(a: &Audience, profile_id: &str, kind: ChangeKind) -> NewAudienceChange {
    NewAudienceChange {
        audience_id: a.id.clone(),
        audience_slug: a.slug.clone(),
        profile_id: profile_id.into(),
        kind,
        at: Utc::now(),
        entered_at: (kind == ChangeKind::Exit).then(Utc::now),
    }
}

async fn cdp_audiences_and_outbox(store: &dyn Store) {
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
            upserts: vec![profile("p4", 1), profile("p5", 1)],
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
            upserts: vec![profile("p6", 1)],
            member_lists: [(
                "p6".to_string(),
                vec![(joined.audience_id.as_str().into(), joined.entered_at)],
            )]
            .into(),
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

async fn cdp_reset_for_rebuild(store: &dyn Store) {
    let before = store.list_audience_changes(0, 1000).await.unwrap().len();
    let target = store.reset_profiles().await.unwrap();
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

async fn export_progress_and_backfill_pages(store: &dyn Store) {
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
