//! Nodes and leases in SQLite (the main file). A SQLite store serves one node, so leases here
//! are mostly bookkeeping, but they keep the same contract as a shared store's and pass the
//! same conformance section; [`check_fence`] guards the fenced writes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::rows::{collect, from_micros, RowResult};
use super::{db, SqliteStore};
use crate::store::*;

fn micros(t: &Timestamp) -> i64 {
    t.timestamp_micros()
}

fn lease_from_row(r: &Row<'_>) -> RowResult<Lease> {
    let (name, owner, token, expires_us): (String, String, i64, i64) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    Ok(from_micros(expires_us).map(|expires_at| Lease {
        name,
        owner,
        token,
        expires_at,
    }))
}

fn node_from_row(r: &Row<'_>) -> RowResult<NodeInfo> {
    let (id, address, version, started_us, heartbeat_us): (String, String, String, i64, i64) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        Ok(NodeInfo {
            id,
            address,
            version,
            started_at: from_micros(started_us)?,
            last_heartbeat: from_micros(heartbeat_us)?,
        })
    })())
}

/// Refuses a fenced write whose lease has changed hands (run inside the write's transaction).
pub(super) fn check_fence(tx: &Transaction<'_>, fence: Option<&Fence>) -> StoreResult<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let held: Option<(String, i64)> = tx
        .query_row(
            "SELECT owner, token FROM leases WHERE name = ?1",
            params![fence.lease],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    match held {
        Some((owner, token)) if owner == fence.owner && token == fence.token => Ok(()),
        _ => Err(StoreError::LeaseLost {
            lease: fence.lease.clone(),
        }),
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn heartbeat(&self, node: &NodeInfo) -> StoreResult<()> {
        let node = node.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO nodes (id, address, version, started_us, heartbeat_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                     version = excluded.version, started_us = excluded.started_us,
                     heartbeat_us = excluded.heartbeat_us",
                params![
                    node.id,
                    node.address,
                    node.version,
                    micros(&node.started_at),
                    micros(&Utc::now())
                ],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, address, version, started_us, heartbeat_us FROM nodes ORDER BY id",
                )
                .map_err(db)?;
            let rows = stmt.query_map([], node_from_row).map_err(db)?;
            collect(rows)
        })
        .await
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM nodes WHERE id = ?1", params![id])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> StoreResult<Option<Lease>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |tx| {
            let now = Utc::now();
            let expires = now + ttl;
            // Free, expired or ours: take it. The token moves on only when the owner changes.
            tx.execute(
                "INSERT INTO leases (name, owner, token, expires_us) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (name) DO UPDATE SET
                     token = CASE WHEN leases.owner = excluded.owner THEN leases.token
                                  ELSE leases.token + 1 END,
                     owner = excluded.owner,
                     expires_us = excluded.expires_us
                 WHERE leases.owner = excluded.owner OR leases.expires_us <= ?4",
                params![name, owner, micros(&expires), micros(&now)],
            )
            .map_err(db)?;
            let lease = tx
                .query_row(
                    "SELECT name, owner, token, expires_us FROM leases WHERE name = ?1",
                    params![name],
                    lease_from_row,
                )
                .map_err(db)??;
            Ok((lease.owner == owner).then_some(lease))
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> StoreResult<()> {
        let lease = lease.clone();
        self.write(move |tx| {
            // Expired, not deleted: the row keeps the token, so the next owner's is higher
            // and a write still fenced with this one is refused.
            tx.execute(
                "UPDATE leases SET expires_us = 0 WHERE name = ?1 AND owner = ?2 AND token = ?3",
                params![lease.name, lease.owner, lease.token],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_leases(&self) -> StoreResult<Vec<Lease>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT name, owner, token, expires_us FROM leases ORDER BY name")
                .map_err(db)?;
            let rows = stmt.query_map([], lease_from_row).map_err(db)?;
            collect(rows)
        })
        .await
    }
}
