//! Import throughput while retention deletes (issue 15): the store's event appends (pages of
//! 500 events of ~1 KiB, as the import commits them) for a fixed time, alone and while the
//! retention task's deletes run against older events in the same file (its batches of 500 and
//! its pause between them, `tributary::jobs::retention::PAUSE`). Runs alternate, each on a fresh store, so drift hits both alike.
//!
//! ```text
//! cargo bench --bench retention                       # 4 runs of 5 s each way
//! RETENTION_RUNS=6 RETENTION_SECS=10 cargo bench --bench retention
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tributary::jobs::retention;
use tributary::store::{EventFields, EventLog, NewEvent, RetentionStore};

const PAGE: usize = 500;
const OLD_EVENTS: usize = 300_000;

fn page(prefix: &str, n: &mut u64) -> Vec<NewEvent> {
    (0..PAGE)
        .map(|_| {
            *n += 1;
            let fields = serde_json::json!({
                "email": format!("user{}@example.org", *n % 10_000),
                "page": "/pricing", "pad": "x".repeat(900), "n": *n,
            });
            NewEvent {
                event_id: format!("{prefix}-{n}"),
                fields: EventFields::from(fields.as_object().unwrap().clone()),
                origin: None,
            }
        })
        .collect()
}

async fn run(secs: u64, with_retention: bool) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        tributary::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap(),
    );
    let mut n = 0;
    while (n as usize) < OLD_EVENTS {
        store
            .append_events("web", page("old", &mut n))
            .await
            .unwrap();
    }
    let old_upto = store.max_event_seq().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pruner = with_retention.then(|| {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut deleted = 0;
            let future = chrono::Utc::now() + chrono::Duration::hours(1);
            while !stop.load(Ordering::Relaxed) {
                deleted += store
                    .prune_events("web", future, old_upto, retention::BATCH)
                    .await
                    .unwrap();
                tokio::time::sleep(retention::PAUSE).await;
            }
            deleted
        })
    });
    let started = Instant::now();
    let mut appended = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        appended += store
            .append_events("web", page("new", &mut n))
            .await
            .unwrap();
    }
    let rate = appended as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let deleted = match pruner {
        Some(p) => p.await.unwrap(),
        None => 0,
    };
    (rate, deleted)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (runs, secs) = (env("RETENTION_RUNS", 4), env("RETENTION_SECS", 5));
    let (mut alone, mut with) = (Vec::new(), Vec::new());
    for i in 0..runs * 2 {
        let retention = i % 2 == 1;
        let (rate, deleted) = run(secs, retention).await;
        println!(
            "run {i}: retention {:<5} {rate:>9.0} events/s appended, {deleted} deleted meanwhile",
            if retention { "on" } else { "off" }
        );
        if retention {
            with.push(rate)
        } else {
            alone.push(rate)
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (a, w) = (median(&mut alone), median(&mut with));
    println!(
        "median: {a:.0} events/s alone, {w:.0} with retention deleting ({:+.1} %)",
        (w / a - 1.0) * 100.0
    );
}
