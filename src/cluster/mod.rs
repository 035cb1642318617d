//! Several nodes on one store: which node does which piece of work.
//!
//! A [`Membership`] hands out [`Claim`]s on named pieces of work (`processor`, `export/JOB`,
//! `import/JOB/SHARD`). Alone (SQLite, tests) every claim is granted at once, unfenced, and never
//! revoked, so a single node behaves as if there were no cluster. In a cluster a claim is a
//! lease in the store ([`LeaseStore`]): granted only to the node that rendezvous hashing
//! ([`hrw`]) picks among the live nodes, renewed in the background, and cancelled when the
//! lease is lost or should move to another node (one joined). The work's writes carry the
//! claim's [`Fence`], so a node that lost its lease without noticing cannot commit.

pub mod hrw;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{Fence, Lease, LeaseStore, NodeInfo, StoreResult};

/// The lease of the profile processor.
pub const PROCESSOR: &str = "processor";

/// The longest pause between two heartbeats of a node (see [`Cluster::tick_interval`]).
const MAX_TICK: Duration = Duration::from_secs(1);

/// How long a node waits between claim attempts when nothing tells it to try sooner.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// The lease of an export job.
pub fn export_lease(job_id: &str) -> String {
    format!("export/{job_id}")
}

/// The lease of one shard of an import job.
pub fn shard_lease(job_id: &str, shard_id: &str) -> String {
    format!("import/{job_id}/{shard_id}")
}

/// This node's view of the cluster; cheap to clone.
#[derive(Clone)]
pub struct Membership {
    /// `None`: alone.
    cluster: Option<Arc<Cluster>>,
}

/// The right to do one piece of work, until [`Claim::lost`] fires. Dropping it hands the
/// lease back.
pub struct Claim {
    fence: Option<Fence>,
    cancel: CancellationToken,
    /// In a cluster: where to hand the lease back on drop, and which grant this is.
    grant: Option<(Arc<Cluster>, String, u64)>,
}

impl Claim {
    /// What the work's writes carry (`None` alone).
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// Cancelled when the lease is lost or handed over; the work stops at its next
    /// consistent point and drops the claim.
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_lost(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some((cluster, name, id)) = self.grant.take() else {
            return;
        };
        self.cancel.cancel();
        let held = {
            let mut state = cluster.state.lock().expect("cluster state lock");
            match state.held.get(&name) {
                Some(h) if h.id == id => state.held.remove(&name),
                _ => None,
            }
        };
        cluster
            .metrics
            .cluster_leases_held
            .set(cluster.held_count() as i64);
        if let (Some(held), Ok(rt)) = (held, tokio::runtime::Handle::try_current()) {
            let releasing = cluster.clone();
            let task = rt.spawn(async move { releasing.release(&held.lease).await });
            let mut releases = cluster.releases.lock().expect("releases lock");
            releases.retain(|t| !t.is_finished());
            releases.push(task);
        }
    }
}

/// A node, its live peers and the leases it holds.
struct Cluster {
    store: Arc<dyn LeaseStore>,
    node: NodeInfo,
    ttl: Duration,
    metrics: Metrics,
    state: Mutex<State>,
    /// Bumped whenever the set of live nodes changes.
    changed: watch::Sender<u64>,
    stop: CancellationToken,
    /// Hand-backs of dropped claims under way: shutdown waits for them before the process exits.
    releases: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// Ids of the nodes whose last heartbeat is younger than the lease timeout, sorted.
    live: Vec<String>,
    held: HashMap<String, Held>,
    next_grant: u64,
}

struct Held {
    /// Tells a dropped claim from a newer one of the same name.
    id: u64,
    lease: Lease,
    cancel: CancellationToken,
    renewed: Instant,
    /// Should move to another node: no longer renewed, released when the claim is dropped.
    handing_over: bool,
}

/// Who is in the cluster and who holds what.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub this_node: String,
    pub nodes: Vec<(NodeInfo, bool)>,
    pub leases: Vec<Lease>,
}

impl Membership {
    /// One node alone: every claim is granted, unfenced, and never revoked.
    pub fn solo() -> Self {
        Self { cluster: None }
    }

    /// Joins the nodes sharing `store`: announces this node, learns who is alive, and keeps
    /// both up to date (every second, or third of `ttl` if shorter) and this node's leases
    /// renewed (every third of `ttl`) until [`Membership::shutdown`].
    pub async fn cluster(
        store: Arc<dyn LeaseStore>,
        node: NodeInfo,
        ttl: Duration,
        metrics: Metrics,
    ) -> StoreResult<Self> {
        let cluster = Arc::new(Cluster {
            store,
            node,
            ttl,
            metrics,
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            stop: CancellationToken::new(),
            releases: Mutex::default(),
        });
        cluster.tick().await?;
        tokio::spawn(cluster.clone().keep_up());
        Ok(Self {
            cluster: Some(cluster),
        })
    }

    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// This node's id in the cluster (`None` alone).
    pub fn node_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node.id.as_str())
    }

    /// Claims `name` if this node should do it and its lease is free; `None` otherwise (or
    /// while this node already holds a claim on it).
    pub async fn claim(&self, name: &str) -> StoreResult<Option<Claim>> {
        let Some(cluster) = &self.cluster else {
            return Ok(Some(Claim {
                fence: None,
                cancel: CancellationToken::new(),
                grant: None,
            }));
        };
        cluster.claim(name).await
    }

    /// Waits until [`Membership::claim`] grants `name`, trying again whenever the cluster
    /// changes and every second. Store errors only delay it.
    pub async fn claim_when_possible(&self, name: &str) -> Claim {
        loop {
            let mut changed = self.watch();
            match self.claim(name).await {
                Ok(Some(claim)) => return claim,
                Ok(None) => {}
                Err(e) => tracing::warn!(lease = name, error = %e, "cannot claim work; retrying"),
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep(CLAIM_RETRY) => {}
            }
        }
    }

    /// Resolves when the set of live nodes changes (never, alone).
    pub async fn changed(&self) {
        let mut rx = self.watch();
        let _ = rx.changed().await;
        if self.cluster.is_none() {
            std::future::pending::<()>().await;
        }
    }

    fn watch(&self) -> watch::Receiver<u64> {
        match &self.cluster {
            Some(c) => c.changed.subscribe(),
            // A receiver whose sender is gone: `changed()` fails at once, so callers fall back
            // to their timers; [`Membership::changed`] waits for ever instead.
            None => watch::channel(0).1,
        }
    }

    /// The nodes (with whether each is alive) and every lease; `None` alone.
    pub async fn snapshot(&self) -> StoreResult<Option<Snapshot>> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let nodes = cluster.store.list_nodes().await?;
        let live = live_nodes(&nodes, cluster.ttl);
        Ok(Some(Snapshot {
            this_node: cluster.node.id.clone(),
            nodes: nodes
                .into_iter()
                .map(|n| {
                    let alive = live.contains(&n.id);
                    (n, alive)
                })
                .collect(),
            leases: cluster.store.list_leases().await?,
        }))
    }

    /// Leaves the cluster: stops renewing, cancels every claim, hands every lease back and
    /// forgets this node, so the others take the work over at once.
    pub async fn shutdown(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        cluster.stop.cancel();
        let held: Vec<Held> = {
            let mut state = cluster.state.lock().expect("cluster state lock");
            state.held.drain().map(|(_, h)| h).collect()
        };
        for h in &held {
            h.cancel.cancel();
        }
        for h in held {
            cluster.release(&h.lease).await;
        }
        let pending = std::mem::take(&mut *cluster.releases.lock().expect("releases lock"));
        for task in pending {
            let _ = task.await;
        }
        cluster.metrics.cluster_leases_held.set(0);
        if let Err(e) = cluster.store.remove_node(&cluster.node.id).await {
            tracing::warn!(error = %e, "cannot remove this node from the cluster; it expires");
        }
    }
}

/// The nodes heard from within `ttl` of the newest heartbeat. Measured against the newest
/// heartbeat (the store's clock, like every heartbeat) so nodes' clocks need not agree.
fn live_nodes(nodes: &[NodeInfo], ttl: Duration) -> Vec<String> {
    let Some(newest) = nodes.iter().map(|n| n.last_heartbeat).max() else {
        return Vec::new();
    };
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let mut live: Vec<String> = nodes
        .iter()
        .filter(|n| n.last_heartbeat > newest - ttl)
        .map(|n| n.id.clone())
        .collect();
    live.sort();
    live
}

/// What a renewal found.
enum Renewal {
    Kept(Lease),
    Lost,
    HandOver,
}

impl Cluster {
    fn held_count(&self) -> usize {
        self.state.lock().expect("cluster state lock").held.len()
    }

    /// Whether this node should do `name`: it wins it among the live nodes.
    fn should_hold(&self, name: &str) -> bool {
        let state = self.state.lock().expect("cluster state lock");
        hrw::winner(&state.live, name).is_none_or(|w| w == self.node.id)
    }

    async fn claim(self: &Arc<Self>, name: &str) -> StoreResult<Option<Claim>> {
        if self.stop.is_cancelled() || !self.should_hold(name) {
            return Ok(None);
        }
        if self
            .state
            .lock()
            .expect("cluster state lock")
            .held
            .contains_key(name)
        {
            return Ok(None);
        }
        let Some(lease) = self.store.acquire(name, &self.node.id, self.ttl).await? else {
            return Ok(None);
        };
        let cancel = CancellationToken::new();
        let id = {
            let mut state = self.state.lock().expect("cluster state lock");
            if state.held.contains_key(name) {
                // Claimed meanwhile by another task of this node: that claim keeps it.
                return Ok(None);
            }
            state.next_grant += 1;
            let id = state.next_grant;
            state.held.insert(
                name.to_owned(),
                Held {
                    id,
                    lease: lease.clone(),
                    cancel: cancel.clone(),
                    renewed: Instant::now(),
                    handing_over: false,
                },
            );
            id
        };
        self.metrics
            .cluster_lease_changes
            .with_label_values(&["acquired"])
            .inc();
        self.metrics
            .cluster_leases_held
            .set(self.held_count() as i64);
        tracing::info!(lease = name, token = lease.token, "lease acquired");
        Ok(Some(Claim {
            fence: Some(lease.fence()),
            cancel,
            grant: Some((self.clone(), name.to_owned(), id)),
        }))
    }

    async fn release(&self, lease: &Lease) {
        match self.store.release(lease).await {
            Ok(()) => {
                self.metrics
                    .cluster_lease_changes
                    .with_label_values(&["released"])
                    .inc();
                tracing::info!(lease = %lease.name, "lease released");
            }
            Err(e) => {
                tracing::warn!(lease = %lease.name, error = %e, "cannot release a lease; it expires")
            }
        }
    }

    /// Heartbeats, learns who is alive and renews or hands over this node's leases, every
    /// third of the lease timeout, until stopped.
    async fn keep_up(self: Arc<Self>) {
        let every = self.tick_interval();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // A store that does not answer (a link that drops packets rather than resetting)
            // must not stop this loop: past the timeout its claims stop like on an error.
            match tokio::time::timeout(self.tick_timeout(), self.tick()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot reach the store to renew leases");
                    self.drop_unrenewed();
                }
                Err(_) => {
                    tracing::warn!(
                        timeout = ?self.tick_timeout(),
                        "the store did not answer in time to renew leases"
                    );
                    self.drop_unrenewed();
                }
            }
        }
    }

    /// How often a node heartbeats and looks at who is alive: a third of the lease timeout,
    /// at most a second, so nodes notice soon when one joins or leaves. Leases are renewed
    /// only every third of the timeout (see [`Cluster::tick`]).
    fn tick_interval(&self) -> Duration {
        (self.ttl / 3).min(MAX_TICK)
    }

    /// How long one round of [`Cluster::keep_up`] may take: a third of the lease timeout, so a
    /// node whose store hangs still notices its leases expiring.
    fn tick_timeout(&self) -> Duration {
        self.ttl / 3
    }

    /// One round of [`Cluster::keep_up`].
    async fn tick(&self) -> StoreResult<()> {
        self.store.heartbeat(&self.node).await?;
        let live = live_nodes(&self.store.list_nodes().await?, self.ttl);
        let names: Vec<(String, u64, Instant)> = {
            let mut state = self.state.lock().expect("cluster state lock");
            if state.live != live {
                tracing::info!(nodes = ?live, "live nodes changed");
                state.live = live.clone();
                self.changed.send_modify(|n| *n += 1);
            }
            state
                .held
                .iter()
                .filter(|(_, h)| !h.handing_over)
                .map(|(name, h)| (name.clone(), h.id, h.renewed))
                .collect()
        };
        // Renewed when the next tick would come later than a third of the timeout after the
        // last renewal.
        let renew_after = (self.ttl / 3).saturating_sub(self.tick_interval());
        for (name, id, renewed) in names {
            let renewal = if hrw::winner(&live, &name).is_some_and(|w| w != self.node.id) {
                Renewal::HandOver
            } else if renewed.elapsed() < renew_after {
                continue;
            } else {
                match self.store.acquire(&name, &self.node.id, self.ttl).await? {
                    Some(lease) => Renewal::Kept(lease),
                    None => Renewal::Lost,
                }
            };
            self.settle(&name, id, renewal);
        }
        self.metrics
            .cluster_leases_held
            .set(self.held_count() as i64);
        Ok(())
    }

    /// Applies a renewal's outcome to the claim it was for (if that claim is still held).
    fn settle(&self, name: &str, id: u64, renewal: Renewal) {
        let mut state = self.state.lock().expect("cluster state lock");
        let Some(held) = state.held.get_mut(name).filter(|h| h.id == id) else {
            return;
        };
        match renewal {
            Renewal::Kept(lease) if lease.token == held.lease.token => {
                held.lease = lease;
                held.renewed = Instant::now();
            }
            // Taken again after someone else had it: the claim's fence is stale.
            Renewal::Kept(_) | Renewal::Lost => {
                held.cancel.cancel();
                state.held.remove(name);
                self.metrics
                    .cluster_lease_changes
                    .with_label_values(&["lost"])
                    .inc();
                tracing::warn!(lease = name, "lease lost to another node");
            }
            Renewal::HandOver => {
                tracing::info!(
                    lease = name,
                    "handing work over to the node that should do it"
                );
                held.handing_over = true;
                held.cancel.cancel();
            }
        }
    }

    /// The store is unreachable: claims not renewed for a lease timeout may be another
    /// node's by now, so their work stops (its fenced writes would fail anyway).
    fn drop_unrenewed(&self) {
        let mut state = self.state.lock().expect("cluster state lock");
        let ttl = self.ttl;
        state.held.retain(|name, h| {
            let keep = h.renewed.elapsed() < ttl;
            if !keep {
                h.cancel.cancel();
                self.metrics
                    .cluster_lease_changes
                    .with_label_values(&["lost"])
                    .inc();
                tracing::warn!(lease = %name, "lease not renewed in time; its work stops");
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests;
