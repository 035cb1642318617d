//! Membership over a real lease store (SQLite, which keeps the same lease contract as
//! PostgreSQL) with a short lease timeout. Every wait has a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::store::sqlite::SqliteStore;
use crate::store::{DynStore, ProfileBatch, ProfileStore, StoreError};

const TTL: Duration = Duration::from_millis(600);
const DEADLINE: Duration = Duration::from_secs(10);

async fn store() -> (tempfile::TempDir, DynStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (dir, Arc::new(store))
}

fn info(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        address: format!("http://{id}"),
        version: "test".into(),
        started_at: Utc::now(),
        last_heartbeat: Utc::now(),
    }
}

async fn join(store: &DynStore, id: &str) -> Membership {
    Membership::cluster(store.clone(), info(id), TTL, Metrics::new())
        .await
        .unwrap()
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {DEADLINE:?}"))
}

/// A name of work that `node` wins against `other`.
fn won_by(node: &str, other: &str) -> String {
    let nodes = vec![node.to_owned(), other.to_owned()];
    (0..)
        .map(|i| format!("import/job/shard-{i}"))
        .find(|w| hrw::winner(&nodes, w) == Some(node))
        .unwrap()
}

async fn fenced_write(store: &DynStore, fence: &Fence) -> Result<(), StoreError> {
    let profiles: &dyn ProfileStore = &**store;
    profiles
        .commit_profile_batch(Arc::new(ProfileBatch {
            fence: Some(fence.clone()),
            ..Default::default()
        }))
        .await
}

#[tokio::test]
async fn alone_every_claim_is_granted_unfenced() {
    let solo = Membership::solo();
    let a = solo.claim("processor").await.unwrap().unwrap();
    let b = solo.claim("processor").await.unwrap().unwrap();
    assert!(a.fence().is_none() && b.fence().is_none());
    assert!(!a.is_lost());
    assert!(solo.snapshot().await.unwrap().is_none());
    let changed = tokio::time::timeout(Duration::from_millis(50), solo.changed()).await;
    assert!(changed.is_err(), "alone, the cluster never changes");
}

#[tokio::test]
async fn a_node_claims_once_and_others_wait_for_it() {
    let (_dir, store) = store().await;
    let a = join(&store, "a").await;
    let claim = a.claim("processor").await.unwrap().expect("alone, a wins");
    assert!(
        a.claim("processor").await.unwrap().is_none(),
        "one claim per node"
    );
    let fence = claim.fence().unwrap().clone();
    fenced_write(&store, &fence).await.unwrap();
    let snapshot = a.snapshot().await.unwrap().unwrap();
    assert_eq!(snapshot.leases.len(), 1);
    assert_eq!(snapshot.leases[0].owner, "a");
    drop(claim);
    within("the lease is handed back on drop", async {
        loop {
            let lease = store.list_leases().await.unwrap().remove(0);
            if lease.expires_at <= Utc::now() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    a.shutdown().await;
}

#[tokio::test]
async fn a_joining_node_takes_over_the_work_it_wins() {
    let (_dir, store) = store().await;
    let work = won_by("b", "a");
    let a = join(&store, "a").await;
    let first = a.claim(&work).await.unwrap().expect("alone, a wins");
    let old = first.fence().unwrap().clone();
    let b = join(&store, "b").await;
    within("a hands the work over", first.token().cancelled()).await;
    drop(first);
    let second = within("b claims it", b.claim_when_possible(&work)).await;
    let new = second.fence().unwrap();
    assert_eq!(new.owner, "b");
    assert!(new.token > old.token);
    assert!(matches!(
        fenced_write(&store, &old).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(a.claim(&work).await.unwrap().is_none(), "b should do it");
    // Work a wins stays with a.
    let mine = won_by("a", "b");
    assert!(a.claim(&mine).await.unwrap().is_some());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn work_of_a_dead_node_moves_and_its_writes_are_refused() {
    let (_dir, store) = store().await;
    let work = won_by("a", "b");
    let a = join(&store, "a").await;
    let b = join(&store, "b").await;
    let held = a.claim(&work).await.unwrap().expect("a wins it");
    assert!(b.claim(&work).await.unwrap().is_none());
    // a stops heartbeating and renewing, without handing anything back: a crash.
    a.cluster.as_ref().unwrap().stop.cancel();
    let taken = within("b takes the work of dead a", b.claim_when_possible(&work)).await;
    assert_eq!(taken.fence().unwrap().owner, "b");
    assert!(matches!(
        fenced_write(&store, held.fence().unwrap()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    fenced_write(&store, taken.fence().unwrap()).await.unwrap();
    std::mem::forget(held); // a crashed: it hands nothing back
    b.shutdown().await;
}

#[tokio::test]
async fn a_clean_shutdown_hands_everything_back_at_once() {
    let (_dir, store) = store().await;
    let work = won_by("a", "b");
    let a = join(&store, "a").await;
    let b = join(&store, "b").await;
    let held = a.claim(&work).await.unwrap().unwrap();
    let mut changed = b.watch();
    a.shutdown().await;
    assert!(held.is_lost());
    assert_eq!(store.list_nodes().await.unwrap().len(), 1);
    within("b sees a leave", changed.changed()).await.unwrap();
    // No lease timeout to wait for: b is now the only live node and a's lease is free.
    let taken = b.claim(&work).await.unwrap().expect("free at once");
    assert!(taken.fence().unwrap().token > held.fence().unwrap().token);
    b.shutdown().await;
}
