//! Nodes and leases in PostgreSQL, timed by the database's clock. [`check_fence`] runs in a
//! fenced write's transaction and holds the lease row (`FOR SHARE`) until that commit, so a
//! takeover either waits for the write or the write sees the new token and is refused.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::rows::get;
use super::{db, execute, query, query_opt, PostgresStore};
use crate::store::*;

/// How long taking or renewing a lease waits for a fenced write that holds its row.
const LOCK_WAIT: Duration = Duration::from_secs(1);

const LEASE_COLUMNS: &str = "name, owner, token, expires_at";
const NODE_COLUMNS: &str = "id, address, version, started_at, last_heartbeat";

fn lease_from_row(r: &Row) -> StoreResult<Lease> {
    Ok(Lease {
        name: get(r, 0)?,
        owner: get(r, 1)?,
        token: get(r, 2)?,
        expires_at: get(r, 3)?,
    })
}

fn node_from_row(r: &Row) -> StoreResult<NodeInfo> {
    Ok(NodeInfo {
        id: get(r, 0)?,
        address: get(r, 1)?,
        version: get(r, 2)?,
        started_at: get(r, 3)?,
        last_heartbeat: get(r, 4)?,
    })
}

/// Refuses a fenced write whose lease has changed hands (run inside the write's transaction).
pub(super) async fn check_fence(tx: &impl GenericClient, fence: Option<&Fence>) -> StoreResult<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let held = query_opt(
        tx,
        "SELECT 1 FROM leases WHERE name = $1 AND owner = $2 AND token = $3 FOR SHARE",
        &[&fence.lease, &fence.owner, &fence.token],
    )
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost {
            lease: fence.lease.clone(),
        }),
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn heartbeat(&self, node: &NodeInfo) -> StoreResult<()> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO nodes (id, address, version, started_at, last_heartbeat)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                 version = excluded.version, started_at = excluded.started_at,
                 last_heartbeat = now()",
            &[&node.id, &node.address, &node.version, &node.started_at],
        )
        .await?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        let client = self.client().await?;
        query(
            &client,
            &format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY id"),
            &[],
        )
        .await?
        .iter()
        .map(node_from_row)
        .collect()
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        let client = self.client().await?;
        execute(&client, "DELETE FROM nodes WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> StoreResult<Option<Lease>> {
        let mut client = self.client().await?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let tx = client.transaction().await.map_err(db)?;
        // A fenced write holds the row until it commits (see `check_fence`); one from a node cut
        // off mid-commit holds it until the server ends that session. Waiting for it here would
        // pin this connection and the caller: give up after a moment, the caller retries.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            LOCK_WAIT.as_millis()
        ))
        .await
        .map_err(db)?;
        // Free, expired or ours: take it. The token moves on only when the owner changes.
        let row = query_opt(
            &tx,
            &format!(
                "INSERT INTO leases (name, owner, token, expires_at)
                 VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET
                     token = CASE WHEN leases.owner = excluded.owner THEN leases.token
                                  ELSE leases.token + 1 END,
                     owner = excluded.owner,
                     expires_at = excluded.expires_at
                 WHERE leases.owner = excluded.owner OR leases.expires_at <= now()
                 RETURNING {LEASE_COLUMNS}"
            ),
            &[&name, &owner, &ttl_ms],
        )
        .await?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn release(&self, lease: &Lease) -> StoreResult<()> {
        let client = self.client().await?;
        // Expired, not deleted: the row keeps the token, so the next owner's is higher and a
        // write still fenced with this one is refused.
        execute(
            &client,
            "UPDATE leases SET expires_at = to_timestamp(0)
              WHERE name = $1 AND owner = $2 AND token = $3",
            &[&lease.name, &lease.owner, &lease.token],
        )
        .await?;
        Ok(())
    }

    async fn list_leases(&self) -> StoreResult<Vec<Lease>> {
        let client = self.client().await?;
        query(
            &client,
            &format!("SELECT {LEASE_COLUMNS} FROM leases ORDER BY name"),
            &[],
        )
        .await?
        .iter()
        .map(lease_from_row)
        .collect()
    }
}
