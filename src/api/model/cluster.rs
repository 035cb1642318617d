//! `/api/cluster`: the nodes sharing the store and which of them holds which work.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// `false` for a node alone on its store (SQLite): `nodes` and `leases` are then empty.
    pub clustered: bool,
    /// The id of the node that answered.
    pub this_node: Option<String>,
    /// Every node that announced itself and has not left, in id order.
    pub nodes: Vec<NodeView>,
    /// Every piece of work ever leased, in name order.
    pub leases: Vec<LeaseView>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// Where its HTTP API listens.
    #[schema(example = "http://10.0.0.5:7878")]
    pub address: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// By the store's clock.
    pub last_heartbeat: DateTime<Utc>,
    /// Heard from within the lease timeout of the newest heartbeat.
    pub alive: bool,
}

/// One piece of work and the node holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    /// `processor`, `import/JOB/SHARD` or `export/JOB`.
    #[schema(example = "import/0190f5c2-7b1e-7c3a-9d2e-3f4a5b6c7d8e/shardId-000000000000")]
    pub name: String,
    /// The node that holds it, or held it last.
    pub owner: String,
    /// Grows each time the lease changes hands.
    pub token: i64,
    /// By the store's clock; a lease handed back has expired.
    pub expires_at: DateTime<Utc>,
}
