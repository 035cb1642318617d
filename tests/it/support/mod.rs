//! The shared integration-test harness: local AWS peers on loopback, one set per test.
//!
//! | need                                   | use                                  |
//! |----------------------------------------|--------------------------------------|
//! | Kinesis data path (put, read, reshard) | [`Kinesalite`]                       |
//! | ListShards paging, UpdateShardCount…   | [`KinesisLocal`]                     |
//! | STS, IAM, least privilege              | [`Moto`]                             |
//! | throttling, 500s, partial PutRecords   | [`FaultProxy`] in front of kinesalite |
//! | KPL-aggregated records                 | [`kpl_aggregate`]                    |
//! | the `tributary` server itself          | [`TestServer`]                       |
//! | a node cut off from its database       | [`TcpRelay`] in front of PostgreSQL  |
//!
//! Every peer is a child process started on `127.0.0.1` with a free port, waited on with a
//! deadline (until it answers any HTTP request) and killed on drop. Peers also exit on their own
//! when the test process dies (they watch their stdin), so nothing outlives a crashed test.
//! Peers are installed by `scripts/setup-peers` into `$TRIBUTARY_PEERS_DIR`
//! (default `<repo>/.peers`).
#![allow(dead_code, unused_imports)]

mod api;
mod fault_proxy;
mod kinesis;
mod kpl;
mod peers;
mod process;
mod server;
mod tcp_relay;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use api::{
    create_keys_auth, eventually, id_of, job_view, metric, metric_samples, wait_state, WAIT,
};
pub use fault_proxy::{Fault, FaultCounts, FaultPlan, FaultProxy};
pub use kinesis::{
    create_stream, delete_stream, kinesis_client, kinesis_client_as, kinesis_client_no_retry,
    list_shards, merge_shards, put_records, read_all, split_shard, split_shard_in_half, sts_client,
    sts_client_as, wait_stream_active, ReadRecord, TEST_ACCESS_KEY_ID, TEST_REGION,
    TEST_SECRET_ACCESS_KEY,
};
pub use kpl::{kpl_aggregate, KPL_MAGIC};
pub use peers::{Kinesalite, KinesisLocal, Moto, MOTO_ACCOUNT_ID};
pub use server::{TestServer, TestServerBuilder, TEST_API_TOKEN, TEST_MASTER_KEY};
pub use tcp_relay::TcpRelay;

/// Repository root (where Cargo.toml of the `tributary` crate lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `scripts/setup-peers` installed the peers: `$TRIBUTARY_PEERS_DIR` or `<repo>/.peers`.
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("TRIBUTARY_PEERS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".peers"),
    }
}

/// `peers_dir()/<rel>`, or a panic telling how to install it.
pub fn peer_path(rel: &str) -> PathBuf {
    let path = peers_dir().join(rel);
    if !path.exists() {
        panic!(
            "{} is missing: run scripts/setup-peers first (peers dir: {}, set TRIBUTARY_PEERS_DIR to change it)",
            path.display(),
            peers_dir().display()
        );
    }
    path
}

/// A helper script under `scripts/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    repo_root().join("scripts").join("peers").join(name)
}

/// Polls `condition` until it returns true; panics with `what` once `timeout` has passed.
/// Polls quickly at first (10 ms) and backs off to 200 ms between checks.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Like [`wait_until`], for conditions that produce a value once they hold.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A port that was free on 127.0.0.1 a moment ago. Another process may take it before the
/// peer binds it; the peer launchers retry with a new port when that happens.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
