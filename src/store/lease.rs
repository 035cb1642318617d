//! Leases: which node does which piece of work (a shard of an import job, an export job, the
//! profile processor), until when. Nodes that share one store take, renew and hand back
//! leases here, and announce themselves with heartbeats.
//!
//! A lease's `token` grows every time the lease changes hands. A write made under a lease
//! carries a [`Fence`] (the lease's name and the token it was made under) and is refused with
//! [`StoreError::LeaseLost`](super::StoreError::LeaseLost) once the lease has moved on: a node
//! that was paused or cut off past its lease cannot overwrite what its successor wrote.
//!
//! Expiry is measured by the store's clock, so nodes' clocks need not agree.

use std::time::Duration;

use async_trait::async_trait;

use super::{StoreResult, Timestamp};

/// One piece of work held by one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased, e.g. `import/JOB/SHARD`, `export/JOB`, `processor`.
    pub name: String,
    /// The node id holding it.
    pub owner: String,
    /// Grows each time the lease changes hands; writes carry it (see [`Fence`]).
    pub token: i64,
    pub expires_at: Timestamp,
}

impl Lease {
    /// The fence that writes made under this lease carry.
    pub fn fence(&self) -> Fence {
        Fence {
            lease: self.name.clone(),
            owner: self.owner.clone(),
            token: self.token,
        }
    }
}

/// Carried by a write made under a lease: the write commits only while the lease still has
/// this owner and token (it may have expired meanwhile, as long as nobody took it over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub owner: String,
    pub token: i64,
}

/// A node of the cluster as it last announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Where its HTTP API listens.
    pub address: String,
    pub version: String,
    pub started_at: Timestamp,
    /// Set by the store on every heartbeat (its clock).
    pub last_heartbeat: Timestamp,
}

/// Nodes and the leases they hold.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Records that `node` is alive now (creates it on its first heartbeat). Its
    /// `last_heartbeat` is ignored: the store sets it.
    async fn heartbeat(&self, node: &NodeInfo) -> StoreResult<()>;
    /// Every node that ever announced itself, in id order (the caller decides who is alive
    /// from `last_heartbeat`).
    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>>;
    /// Forgets a node (a clean shutdown, or one silent for long).
    async fn remove_node(&self, id: &str) -> StoreResult<()>;
    /// Takes lease `name` for `owner` for `ttl` when it is free, expired or already
    /// `owner`'s (then it is extended and keeps its token). `None` while another node holds it.
    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> StoreResult<Option<Lease>>;
    /// Hands a lease back at once, if `lease` still holds it (a stale one changes nothing).
    async fn release(&self, lease: &Lease) -> StoreResult<()>;
    /// Every lease, in name order, expired ones included.
    async fn list_leases(&self) -> StoreResult<Vec<Lease>>;
}
