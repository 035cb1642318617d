//! `EventLog`: paging, and the ordering contract under concurrent writers.

use super::*;

pub(super) async fn event_log_pages_newest_first(store: &dyn Store) {
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

/// What a reader following the log saw while writers appended.
#[derive(Debug, Default)]
pub struct FollowReport {
    /// Every event id the writers stored.
    pub written: Vec<String>,
    /// The event ids the reader saw, in the order it saw them.
    pub seen: Vec<String>,
}

impl FollowReport {
    /// Ids written that the reader never saw: a skip.
    pub fn missed(&self) -> Vec<&str> {
        let seen: std::collections::HashSet<&str> = self.seen.iter().map(String::as_str).collect();
        self.written
            .iter()
            .map(String::as_str)
            .filter(|id| !seen.contains(id))
            .collect()
    }
}

/// `writers` tasks append `batches` small batches each to stream `ordering`, concurrently,
/// while one reader follows the log with [`EventLog::events_after`] exactly as the profile
/// processor does (its cursor is the last position it read). The reader checks that
/// positions only increase; once every writer is done it reads to the end once more.
pub async fn follow_while_appending(
    log: Arc<dyn EventLog>,
    writers: usize,
    batches: usize,
) -> FollowReport {
    const STREAM: &str = "ordering";
    let start = log.max_event_seq().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.spawn(async move {
            let mut written = Vec::new();
            for b in 0..batches {
                let events: Vec<NewEvent> = (0..3)
                    .map(|i| event(&format!("w{w}-b{b}-{i}"), i))
                    .collect();
                written.extend(events.iter().map(|e| e.event_id.clone()));
                log.append_events(STREAM, events).await.unwrap();
                tokio::task::yield_now().await;
            }
            written
        });
    }
    let mut report = FollowReport::default();
    let mut cursor = start;
    while !tasks.is_empty() {
        while let Some(done) = tasks.try_join_next() {
            report.written.extend(done.unwrap());
        }
        read_page(&*log, STREAM, &mut cursor, &mut report.seen).await;
        tokio::task::yield_now().await;
    }
    while read_page(&*log, STREAM, &mut cursor, &mut report.seen).await > 0 {}
    report
}

/// Reads the page after `cursor` and moves it on, as a follower does; returns how many events
/// the page looked at.
async fn read_page(
    log: &dyn EventLog,
    stream: &str,
    cursor: &mut i64,
    seen: &mut Vec<String>,
) -> usize {
    let page = log
        .events_after(*cursor, 50, vec![stream.into()])
        .await
        .unwrap();
    for e in &page.events {
        assert!(
            e.seq > *cursor,
            "positions went back: {} after {cursor}",
            e.seq
        );
        *cursor = e.seq;
        seen.push(e.event_id.clone());
    }
    if let Some(last) = page.last_seq {
        *cursor = (*cursor).max(last);
    }
    page.scanned
}

pub(super) async fn readers_never_skip_concurrent_writers(store: DynStore) {
    let report = follow_while_appending(store, 4, 40).await;
    assert_eq!(report.written.len(), 4 * 40 * 3);
    assert_eq!(
        report.missed(),
        Vec::<&str>::new(),
        "the reader skipped events"
    );
    let unique: std::collections::HashSet<&String> = report.seen.iter().collect();
    assert_eq!(
        unique.len(),
        report.seen.len(),
        "the reader saw an event twice"
    );
}

/// The check above must be able to fail: a log that hands out positions before its writes
/// become visible (what a naive concurrent backend does) is caught skipping.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_check_catches_a_log_that_publishes_out_of_order() {
    let report =
        follow_while_appending(Arc::new(naive::PositionsBeforeCommit::default()), 4, 40).await;
    assert!(
        !report.missed().is_empty(),
        "a log publishing out of order went unnoticed"
    );
}

mod naive {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use crate::store::*;

    /// Takes its positions first and publishes the rows later, every other batch after a
    /// pause: commit order differs from position order, as with two database transactions
    /// that took sequence numbers and then committed the other way round.
    #[derive(Default)]
    pub struct PositionsBeforeCommit {
        next: AtomicI64,
        rows: Mutex<BTreeMap<i64, StoredEvent>>,
    }

    #[async_trait]
    impl EventLog for PositionsBeforeCommit {
        async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64> {
            let n = events.len() as i64;
            let first = self.next.fetch_add(n, Ordering::SeqCst) + 1;
            if (first / n) % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            let mut rows = self.rows.lock().unwrap();
            for (i, e) in events.into_iter().enumerate() {
                let seq = first + i as i64;
                rows.insert(
                    seq,
                    StoredEvent {
                        seq,
                        event_id: e.event_id,
                        stream: stream.into(),
                        fields: serde_json::from_str(e.fields.as_str()).unwrap(),
                        origin: e.origin,
                        stored_at: chrono::Utc::now(),
                    },
                );
            }
            Ok(n as u64)
        }

        async fn events_after(
            &self,
            after_seq: i64,
            limit: u32,
            _streams: Vec<String>,
        ) -> StoreResult<EventsPage> {
            let rows = self.rows.lock().unwrap();
            let events: Vec<StoredEvent> = rows
                .range(after_seq + 1..)
                .take(limit as usize)
                .map(|(_, e)| e.clone())
                .collect();
            Ok(EventsPage {
                scanned: events.len(),
                last_seq: events.last().map(|e| e.seq),
                events,
            })
        }

        async fn max_event_seq(&self) -> StoreResult<i64> {
            Ok(self
                .rows
                .lock()
                .unwrap()
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0))
        }

        async fn list_events(
            &self,
            _: &str,
            _: u32,
            _: Option<i64>,
        ) -> StoreResult<Vec<StoredEvent>> {
            unreachable!("not used by the ordering check")
        }

        async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>> {
            unreachable!("not used by the ordering check")
        }

        async fn count_events(&self, _: i64, _: i64) -> StoreResult<u64> {
            unreachable!("not used by the ordering check")
        }
    }
}
