//! The PostgreSQL backend's own tests; the conformance suite runs on it too.

use super::testing::{fresh_postgres, TestDatabase};
use super::*;
use crate::store::*;

mod conformance {
    // PostgreSQL's backups are pg_dump's: no copy to reopen.
    crate::conformance_tests!(
        crate::store::postgres::testing::fresh_postgres,
        reopen = |_dir: std::path::PathBuf| async { None }
    );
}

async fn count_rows(store: &PostgresStore, sql: &str) -> i64 {
    let client = store.client().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_opening_an_empty_database_at_once_migrate_it_once() {
    let database = TestDatabase::create().await;
    let url = format!("{}?pool_max=2", database.url());
    let (first, second) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    let (first, second) = (first.unwrap(), second.unwrap());
    let versions = "SELECT COUNT(*) FROM tributary_migrations";
    assert_eq!(count_rows(&first, versions).await, MIGRATIONS.len() as i64);
    // The seed rows of the first migration are there once, not once per node.
    assert_eq!(
        count_rows(&second, "SELECT COUNT(*) FROM log_heads").await,
        2
    );
    assert_eq!(
        count_rows(&second, "SELECT COUNT(*) FROM cdp_state").await,
        1
    );
    let again = PostgresStore::connect(database.config(), 1).await.unwrap();
    assert_eq!(count_rows(&again, versions).await, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_tributary_is_refused() {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.config(), 1).await.unwrap();
    let newer = MIGRATIONS.len() as i32 + 1;
    let client = store.client().await.unwrap();
    client
        .execute(
            "INSERT INTO tributary_migrations (version) VALUES ($1)",
            &[&newer],
        )
        .await
        .unwrap();
    drop((client, store));
    let refused = PostgresStore::connect(database.config(), 1).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(ref m)) if m.contains("newer Tributary")),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn store_open_takes_a_postgres_url_with_a_pool_size() {
    let database = TestDatabase::create().await;
    let url = format!("{}?pool_max=2", database.url());
    let store = crate::store::open(&url).await.unwrap();
    assert!(store.list_jobs().await.unwrap().is_empty());
    let other_scheme = url.replacen("postgres://", "postgresql://", 1);
    let store = crate::store::open(&other_scheme).await.unwrap();
    assert!(store.list_jobs().await.unwrap().is_empty());
}

#[test]
fn the_pool_size_comes_from_the_url_and_other_options_reach_the_driver() {
    let (config, pool_max) =
        parse_url("postgres://u@db.example:6543/cdp?pool_max=3&connect_timeout=5").unwrap();
    assert_eq!(pool_max, 3);
    assert_eq!(config.get_dbname(), Some("cdp"));
    assert_eq!(config.get_ports(), [6543]);
    assert_eq!(
        config.get_connect_timeout(),
        Some(&std::time::Duration::from_secs(5))
    );
    assert_eq!(config.get_application_name(), Some("tributary"));

    let (config, pool_max) = parse_url("postgresql://u@h/db").unwrap();
    assert_eq!(pool_max, DEFAULT_POOL_MAX);
    assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    assert_eq!(
        config.get_options(),
        Some("-c idle_in_transaction_session_timeout=10000")
    );
    let (config, _) =
        parse_url("postgres://u@h/db?options=-c%20idle_in_transaction_session_timeout%3D60000")
            .unwrap();
    assert_eq!(
        config.get_options(),
        Some("-c idle_in_transaction_session_timeout=60000"),
        "the URL's own limit is kept"
    );
    for bad in ["0", "many", ""] {
        let err = parse_url(&format!("postgres://u@h/db?pool_max={bad}")).unwrap_err();
        assert!(matches!(err, UrlError::PoolMax(_)), "{err}");
    }
    assert!(matches!(
        parse_url("postgres://u@h/db?no_such_option=1"),
        Err(UrlError::Driver(_))
    ));
}

fn event(id: &str, origin: Option<KinesisOrigin>) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        fields: EventFields::from_checked_object_text(r#"{"b":1,"a":[true,null]}"#),
        origin,
    }
}

#[tokio::test]
async fn event_origins_round_trip_to_the_nanosecond() {
    let (_database, store) = fresh_postgres().await;
    let origin = |sequence_number: &str, arrival: Option<&str>| KinesisOrigin {
        stream: "clicks \"eu\"".into(),
        shard_id: "shardId-000000000003".into(),
        sequence_number: sequence_number.into(),
        sub_sequence_number: 7,
        partition_key: "user-é\n1".into(),
        approximate_arrival_timestamp: arrival.map(|t| t.parse().unwrap()),
    };
    let origins = vec![
        Some(origin("1", Some("2023-11-14T22:13:20.122999906Z"))),
        Some(origin("2", Some("1969-12-31T23:59:59.5Z"))),
        Some(origin("3", None)),
        None,
    ];
    let events = origins
        .iter()
        .enumerate()
        .map(|(n, o)| event(&format!("e{n}"), o.clone()));
    store.append_events("web", events.collect()).await.unwrap();
    let mut stored = store.list_events("web", 10, None).await.unwrap();
    stored.reverse();
    let stored_origins: Vec<_> = stored.iter().map(|e| e.origin.clone()).collect();
    assert_eq!(stored_origins, origins);
    assert_eq!(stored[0].fields["a"], serde_json::json!([true, null]));
}

/// `events_after` with no stream wanted counts the events it passes over by their positions:
/// they must have no gaps, whatever replays and repeated ids a batch carries.
#[tokio::test]
async fn event_positions_have_no_gaps_across_replays_and_repeats() {
    let (_database, store) = fresh_postgres().await;
    let first = vec![event("a", None), event("b", None), event("a", None)];
    assert_eq!(store.append_events("web", first).await.unwrap(), 2);
    let replay = vec![event("b", None), event("c", None), event("a", None)];
    assert_eq!(store.append_events("web", replay).await.unwrap(), 1);
    assert_eq!(store.append_events("web", vec![]).await.unwrap(), 0);
    assert_eq!(
        store
            .append_events("web", vec![event("d", None)])
            .await
            .unwrap(),
        1
    );
    let mut seqs: Vec<i64> = store
        .list_events("web", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    seqs.reverse();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let passed = store.events_after(0, 1, vec![]).await.unwrap();
    assert_eq!((passed.scanned, passed.last_seq), (4, Some(4)));
    assert_eq!(store.list_streams().await.unwrap()[0].events, 4);
}

/// Positions taken by a transaction that rolls back are handed out again: no gap, and no
/// committed one reused.
#[tokio::test]
async fn a_rolled_back_append_leaves_no_gap() {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.config(), 2).await.unwrap();
    store
        .append_events("web", vec![event("a", None)])
        .await
        .unwrap();
    {
        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let now = chrono::Utc::now();
        let numbered = super::event_log::insert_events(&tx, "web", &[event("b", None)], &now).await;
        assert_eq!(numbered.unwrap(), 1);
        tx.rollback().await.unwrap();
    }
    store
        .append_events("web", vec![event("c", None)])
        .await
        .unwrap();
    let stored: Vec<(i64, String)> = store
        .list_events("web", 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event_id))
        .collect();
    assert_eq!(stored, [(2, "c".to_string()), (1, "a".to_string())]);
}

#[tokio::test]
async fn unique_violations_are_conflicts_and_other_failures_keep_the_driver_error() {
    let (_database, store) = fresh_postgres().await;
    let auth = |id: &str| Authorization {
        id: id.into(),
        label: "prod".into(),
        description: String::new(),
        credentials: Credentials::AwsRole {
            role_arn: "arn:aws:iam::1:role/x".into(),
            external_id: "e".into(),
        },
        created_at: chrono::Utc::now(),
    };
    store.insert_authorization(auth("a1")).await.unwrap();
    let err = store.insert_authorization(auth("a2")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "an authorization labelled \"prod\" already exists; choose another label"
    );
    // A job of an authorization that does not exist: a foreign key, not a conflict.
    let job = Job {
        id: "j1".into(),
        job_type: JobType::KinesisImport,
        label: "j".into(),
        description: String::new(),
        authorization_id: "missing".into(),
        config: serde_json::json!({}),
        state: JobState::Running,
        last_error: None,
        totals: JobTotals::default(),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let err = store.insert_job(job).await.unwrap_err();
    let StoreError::Backend { source } = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    let driver = source
        .downcast_ref::<tokio_postgres::Error>()
        .expect("the driver's error is kept");
    assert_eq!(
        driver.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
}

fn test_audience(id: &str) -> Audience {
    Audience {
        id: id.into(),
        slug: id.into(),
        name: id.into(),
        description: String::new(),
        filter: "visits > 1".into(),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

fn test_profile(id: &str) -> Profile {
    let now = chrono::Utc::now();
    Profile {
        id: id.into(),
        state: tributary_lang::ProfileState::new(),
        created_at: now,
        updated_at: now,
    }
}

fn entered(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

/// Every member of `audience_id`, read `page` at a time.
async fn all_members(store: &dyn Store, audience_id: &str, page: u32) -> Vec<(String, Timestamp)> {
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let members = store.list_members(audience_id, after, page).await.unwrap();
        let full = members.len() == page as usize;
        after = members.last().map(|m| m.profile_id.clone());
        all.extend(members.into_iter().map(|m| (m.profile_id, m.entered_at)));
        if !full {
            return all;
        }
    }
}

/// An audience's members are listed alike whether found through the index or by walking the
/// profiles (`members::members_after` picks by the audience's size against the page's and the
/// profiles': 3 members among fewer than 90 profiles are walked in pages of 1 and looked up in
/// pages of 100).
#[tokio::test]
async fn members_are_listed_alike_through_the_index_and_by_walking() {
    let (_database, store) = fresh_postgres().await;
    for id in ["a", "b"] {
        store.insert_audience(test_audience(id)).await.unwrap();
    }
    let with = |id: &str, list: &[(&str, i64)]| {
        ProfileWrite::new(test_profile(id)).with_members(
            list.iter()
                .map(|(a, secs)| (std::sync::Arc::from(*a), entered(*secs)))
                .collect(),
        )
    };
    let batch = ProfileBatch {
        upserts: vec![
            with("p1", &[("a", 1)]),
            with("p2", &[("b", 2)]),
            with("p3", &[("b", 3), ("a", 3)]),
            with("p4", &[]),
            with("p5", &[("a", 5), ("gone", 5)]),
        ],
        ..Default::default()
    };
    store
        .commit_profile_batch(std::sync::Arc::new(batch))
        .await
        .unwrap();
    let expected: Vec<(String, Timestamp)> = [("p1", 1), ("p3", 3), ("p5", 5)]
        .iter()
        .map(|(p, secs)| (p.to_string(), entered(*secs)))
        .collect();
    for page in [1, 2, 10, 100] {
        assert_eq!(
            all_members(&*store, "a", page).await,
            expected,
            "pages of {page}"
        );
    }
    assert!(store
        .list_members("gone", None, 10)
        .await
        .unwrap()
        .is_empty());
    // Lists are stored in audience creation order, whatever order they were written in.
    let p3: Vec<String> = store
        .profile_memberships(vec!["p3".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.audience_id)
        .collect();
    assert_eq!(p3, ["a", "b"]);

    // A deleted audience's entries stay in the lists and are never read again.
    store.delete_audience("a").await.unwrap();
    assert!(store.list_members("a", None, 10).await.unwrap().is_empty());
    let lists = store.list_profiles(None, 10).await.unwrap();
    let audiences_of = |id: &str| -> Vec<String> {
        let (_, list) = lists.iter().find(|(p, _)| p.id == id).unwrap();
        list.iter().map(|(a, _)| a.to_string()).collect()
    };
    assert_eq!(audiences_of("p3"), ["b"]);
    assert!(audiences_of("p5").is_empty());
    store.insert_audience(test_audience("a")).await.unwrap();
    assert!(store.list_members("a", None, 10).await.unwrap().is_empty());
}

/// Migration 0005 moves each profile's membership rows into its row, in audience creation
/// order, entry times kept.
#[tokio::test]
async fn membership_rows_move_into_their_profiles() {
    let database = TestDatabase::create().await;
    let (client, connection) = database
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE tributary_migrations (
                 version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    for (version, sql) in MIGRATIONS.iter().enumerate().take(4) {
        client.batch_execute(sql).await.unwrap();
        let version = version as i32 + 1;
        client
            .execute(
                "INSERT INTO tributary_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO audiences (id, slug, name, filter, created_at, updated_at, member_count)
             VALUES ('z', 'z', 'z', 'f', now(), now(), 1), ('y', 'y', 'y', 'f', now(), now(), 2);
             INSERT INTO memberships (audience_id, profile_id, entered_at) VALUES
                 ('y', 'p1', '2023-11-14 22:13:21+00'), ('z', 'p1', '2023-11-14 22:13:22+00'),
                 ('y', 'p2', '2023-11-14 22:13:23+00');",
        )
        .await
        .unwrap();
    let state = tributary_lang::ProfileState::new().to_bytes();
    client
        .execute(
            "INSERT INTO profiles (id, state, created_at, updated_at)
             VALUES ('p1', $1, now(), now()), ('p2', $1, now(), now())",
            &[&state],
        )
        .await
        .unwrap();
    let store = PostgresStore::connect(database.config(), 1).await.unwrap();
    let memberships: Vec<(String, String, Timestamp)> = store
        .profile_memberships(vec!["p1".into(), "p2".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.profile_id, m.audience_id, m.entered_at))
        .collect();
    let row = |p: &str, a: &str, secs| (p.to_string(), a.to_string(), entered(secs));
    assert_eq!(
        memberships,
        [row("p1", "z", 2), row("p1", "y", 1), row("p2", "y", 3)]
    );
    let members = all_members(&store, "y", 10).await;
    assert_eq!(
        members,
        [("p1".into(), entered(1)), ("p2".into(), entered(3))]
    );
    assert_eq!(
        count_rows(
            &store,
            "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'memberships'"
        )
        .await,
        0
    );
}
