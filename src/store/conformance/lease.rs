//! `LeaseStore`: heartbeats, leases changing hands, and fenced writes refused once their
//! lease moved.

use std::time::{Duration, Instant};

use super::*;

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        address: format!("127.0.0.1:{}", 7000 + id.len()),
        version: "0.1.0".into(),
        started_at: Utc::now(),
        last_heartbeat: Utc::now(),
    }
}

/// Tries to take `name` for `owner` until it succeeds (the holder's lease must expire first).
async fn acquire_within(store: &dyn Store, name: &str, owner: &str, deadline: Duration) -> Lease {
    let give_up = Instant::now() + deadline;
    loop {
        if let Some(lease) = store
            .acquire(name, owner, Duration::from_secs(30))
            .await
            .unwrap()
        {
            return lease;
        }
        assert!(Instant::now() < give_up, "{owner} never got {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn nodes_and_leases(store: &dyn Store) {
    let before = Utc::now();
    store.heartbeat(&node("n1")).await.unwrap();
    store.heartbeat(&node("n2")).await.unwrap();
    store.heartbeat(&node("n1")).await.unwrap();
    let nodes = store.list_nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    assert!(nodes[0].last_heartbeat >= before - chrono::Duration::seconds(5));
    store.remove_node("n2").await.unwrap();
    assert_eq!(store.list_nodes().await.unwrap().len(), 1);

    // Free: taken, token 1. Held: refused to others, extended for its owner.
    let ttl = Duration::from_millis(300);
    let first = store
        .acquire("processor", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.owner.as_str(), first.token), ("n1", 1));
    assert_eq!(store.acquire("processor", "n2", ttl).await.unwrap(), None);
    let renewed = store
        .acquire("processor", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.token, 1);
    assert!(renewed.expires_at >= first.expires_at);

    // Expired: another node takes it, with a new token.
    let second = acquire_within(store, "processor", "n2", Duration::from_secs(10)).await;
    assert_eq!((second.owner.as_str(), second.token), ("n2", 2));
    // The old holder's hand-back changes nothing now.
    store.release(&first).await.unwrap();
    assert_eq!(store.acquire("processor", "n1", ttl).await.unwrap(), None);
    // Handed back: free at once, and the token still moves on.
    store.release(&second).await.unwrap();
    let third = store
        .acquire("processor", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.token, 3);

    let leases = store.list_leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].owner.as_str(), leases[0].token), ("n1", 3));
}

pub(super) async fn fenced_writes_fail_once_the_lease_moved(store: &dyn Store) {
    store
        .insert_authorization(auth("af", "fenced"))
        .await
        .unwrap();
    store.insert_job(job("jf", "af")).await.unwrap();
    let checkpoint = ShardCheckpoint {
        sequence_number: Some("1".into()),
        records: 1,
        millis_behind_latest: Some(0),
        ..reading_shard()
    };
    store
        .register_shards("jf", std::slice::from_ref(&checkpoint))
        .await
        .unwrap();
    let ttl = Duration::from_millis(200);
    let old = store
        .acquire("import/jf/s0", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    let batch = |n: i64, fence: &Lease| ShardBatch {
        job_id: "jf".into(),
        stream: "fenced".into(),
        events: vec![event(&format!("fenced-{n}"), n)],
        dead_letters: vec![],
        records_in: 1,
        suppressed: 0,
        checkpoint: ShardCheckpoint {
            sequence_number: Some(n.to_string()),
            ..checkpoint.clone()
        },
        fence: Some(fence.fence()),
    };
    store
        .commit_shard_batch(Arc::new(batch(1, &old)))
        .await
        .unwrap();
    let new = acquire_within(store, "import/jf/s0", "n2", Duration::from_secs(10)).await;

    // The old holder's page is refused whole: no event, no checkpoint move.
    let refused = store.commit_shard_batch(Arc::new(batch(2, &old))).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { ref lease }) if lease == "import/jf/s0"),
        "{refused:?}"
    );
    let cp = &store.list_checkpoints("jf").await.unwrap()[0];
    assert_eq!(cp.sequence_number.as_deref(), Some("1"));
    assert_eq!(
        store.list_events("fenced", 10, None).await.unwrap().len(),
        1
    );
    store
        .commit_shard_batch(Arc::new(batch(2, &new)))
        .await
        .unwrap();

    // The same for the processor's batches and export rounds.
    let processor = store
        .acquire("processor", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    let taken = acquire_within(store, "processor", "n2", Duration::from_secs(10)).await;
    let profile_batch = |lease: &Lease| ProfileBatch {
        cursor: Some(1),
        fence: Some(lease.fence()),
        ..Default::default()
    };
    assert!(matches!(
        store
            .commit_profile_batch(Arc::new(profile_batch(&processor)))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(store.processor_position().await.unwrap().cursor, 0);
    store
        .commit_profile_batch(Arc::new(profile_batch(&taken)))
        .await
        .unwrap();
    assert_eq!(store.processor_position().await.unwrap().cursor, 1);
    // A rebuild's reset too.
    assert!(matches!(
        store.reset_profiles(Some(processor.fence())).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(store.processor_position().await.unwrap().cursor, 1);
    store.reset_profiles(Some(taken.fence())).await.unwrap();
    assert_eq!(store.processor_position().await.unwrap().cursor, 0);

    let export = store
        .acquire("export/jf", "n1", ttl)
        .await
        .unwrap()
        .unwrap();
    let export_next = acquire_within(store, "export/jf", "n2", Duration::from_secs(10)).await;
    let round = |lease: &Lease| ExportRound {
        progress: ExportProgress {
            cursor: 7,
            backfill: None,
        },
        fence: Some(lease.fence()),
        ..Default::default()
    };
    assert!(matches!(
        store
            .commit_export_round("jf", Arc::new(round(&export)))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(store.get_export_progress("jf").await.unwrap(), None);
    store
        .commit_export_round("jf", Arc::new(round(&export_next)))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_export_progress("jf")
            .await
            .unwrap()
            .unwrap()
            .cursor,
        7
    );
}
