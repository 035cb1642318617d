//! `RetentionStore`: settings per stream, pruning oldest first within limits, and sizes.

use super::*;

pub(super) async fn settings_pruning_and_sizes(store: &dyn Store) {
    assert!(store.list_stream_retention().await.unwrap().is_empty());
    store.set_stream_retention("ret", Some(60)).await.unwrap();
    store.set_stream_retention("ret", Some(3600)).await.unwrap();
    store.set_stream_retention("forever", None).await.unwrap();
    let list = store.list_stream_retention().await.unwrap();
    assert_eq!(
        list.iter()
            .map(|r| (r.stream.as_str(), r.max_age_secs))
            .collect::<Vec<_>>(),
        [("forever", None), ("ret", Some(3600))]
    );

    store
        .append_events(
            "ret",
            (1..=5).map(|i| event(&format!("ret{i}"), i)).collect(),
        )
        .await
        .unwrap();
    store
        .append_events("other", vec![event("oth1", 1)])
        .await
        .unwrap();
    let seqs = oldest_first(store, "ret").await;
    let future = Utc::now() + chrono::Duration::hours(1);
    let past = Utc::now() - chrono::Duration::hours(1);
    // Nothing is old enough.
    assert_eq!(
        store.prune_events("ret", past, i64::MAX, 10).await.unwrap(),
        0
    );
    // The limit, then the processor's cursor, bound what goes.
    assert_eq!(
        store
            .prune_events("ret", future, i64::MAX, 2)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .prune_events("ret", future, seqs[2], 10)
            .await
            .unwrap(),
        1
    );
    let left = oldest_first(store, "ret").await;
    assert_eq!(left, seqs[3..]);
    let streams = store.list_streams().await.unwrap();
    assert_eq!(streams.iter().find(|s| s.name == "ret").unwrap().events, 2);
    assert_eq!(
        streams.iter().find(|s| s.name == "other").unwrap().events,
        1
    );

    // The outbox: only up to the acknowledged position.
    let a = audience("ret-a", "ret-a");
    store.insert_audience(a.clone()).await.unwrap();
    store
        .commit_profile_batch(Arc::new(ProfileBatch {
            changes: (0..3)
                .map(|i| change(&a, &format!("rp{i}"), ChangeKind::Enter))
                .collect(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let head = store.audience_change_head().await.unwrap();
    let oldest = store.oldest_audience_change().await.unwrap().unwrap();
    assert_eq!(
        store
            .prune_audience_changes(future, head - 1, 100)
            .await
            .unwrap(),
        (head - oldest) as u64
    );
    assert_eq!(store.oldest_audience_change().await.unwrap(), Some(head));
    assert_eq!(
        store.prune_audience_changes(past, head, 100).await.unwrap(),
        0
    );

    assert_eq!(store.prune_dead_letters(future, 100).await.unwrap(), 0);
    store.reclaim_space().await.unwrap();
    let sizes = store.store_sizes().await.unwrap();
    assert!(sizes.event_log_bytes() > 0, "{sizes:?}");
    let rows: std::collections::HashMap<_, _> = sizes.rows.into_iter().collect();
    assert_eq!(rows["events"], 3);
    assert_eq!(rows["audience_changes"], 1);
}

/// The positions of `stream`'s events (at most 10), oldest first.
async fn oldest_first(store: &dyn Store, stream: &str) -> Vec<i64> {
    let page = store.list_events(stream, 10, None).await.unwrap();
    page.iter().rev().map(|e| e.seq).collect()
}
