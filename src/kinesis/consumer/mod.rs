//! The shard consumer of an import job: discovers shards with ListShards, runs one reader task
//! per readable shard (parents before children), re-lists periodically and whenever a shard
//! ends, and stops every reader at a consistent point on pause, delete or shutdown.
//!
//! It needs only kinesis:ListShards, GetShardIterator and GetRecords. Checkpoints live in
//! Tributary's store, committed with the events they cover.

pub mod batch;
pub mod lineage;
mod reader;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::{AwsAccess, AwsError, AwsErrorKind};
use crate::cluster::{shard_lease, Membership};
use crate::kinesis::api::{list_shards, ShardInfo};
use crate::kinesis::backoff::sleep_unless_cancelled as sleep;
use crate::kinesis::backoff::Backoff;
use crate::metrics::Metrics;
use crate::store::{ImportStore, ShardCheckpoint, ShardState, StartPosition, StoreError};
use reader::{read_shard, ReaderExit, ShardContext};

/// New shards appear only through resharding, which we also notice when a shard ends; the
/// periodic listing catches the rest.
const RELIST_INTERVAL: Duration = Duration::from_secs(30);
/// With several nodes: how often a node looks for shards it should read (orphaned by a node
/// that died, children of parents another node finished).
const CLUSTER_RECHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Decoded pages a job holds at once: one committing while the next decodes keeps the single
/// store writer busy; more would only add memory.
const PAGES_IN_FLIGHT: usize = 2;

/// What the consumer reads and writes with.
pub struct ConsumerHandles {
    pub store: Arc<dyn ImportStore>,
    pub aws: AwsAccess,
    pub metrics: Metrics,
    /// Which shards this node reads: alone, all of them; with several nodes, those it claims.
    pub membership: Membership,
    /// Drops events that must not be stored (suppressed identifiers); `None` keeps all.
    pub filter: Option<Arc<dyn EventFilter>>,
}

/// Decides which decoded events are not stored: those carrying an identifier on the
/// suppression list (implemented over the CDP's list by the jobs layer). How many went is
/// counted in the page's commit ([`crate::store::ShardBatch::suppressed`]).
pub trait EventFilter: Send + Sync + 'static {
    /// Removes the events of `stream` to drop from `events`; returns how many went. Runs on a
    /// blocking thread, with the page's decoding.
    fn drop_suppressed(&self, stream: &str, events: &mut Vec<crate::store::NewEvent>) -> u64;
}

/// Which stream to read, as whom, into which event stream.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub job_id: String,
    pub authorization_id: String,
    pub event_stream: String,
    pub region: String,
    pub role_arn: Option<String>,
    pub kinesis_stream: String,
    /// Used only for shards without a checkpoint.
    pub start_position: StartPosition,
}

/// Why an import stopped for good. The text becomes the job's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("Tributary's store failed: {0}")]
    Store(#[from] StoreError),
    /// A page commit kept failing, retried with backoff.
    #[error("cannot write to Tributary's store: {0}; check disk space and the database, then resume the job")]
    Commit(#[source] StoreError),
    #[error("{what} crashed: {source}")]
    Crashed {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Runs the import until cancelled (`Ok`) or until a failure retrying cannot fix.
pub async fn run_import(
    handles: ConsumerHandles,
    config: &ConsumerConfig,
    cancel: CancellationToken,
) -> Result<(), ConsumeError> {
    let Some(sdk) = retry(&cancel, || async {
        handles
            .aws
            .sdk_config(
                &config.authorization_id,
                &config.region,
                config.role_arn.as_deref(),
            )
            .await
            .map_err(AwsError::from)
    })
    .await?
    else {
        return Ok(());
    };
    let ctx = Arc::new(ShardContext {
        store: handles.store,
        pages_in_flight: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_FLIGHT)),
        // Two SDK attempts: quick recovery from a dropped connection; everything else is
        // classified and retried by the reader with its own backoff.
        client: handles.aws.connector().kinesis(&sdk, 2),
        metrics: handles.metrics,
        filter: handles.filter,
        job_id: config.job_id.clone(),
        event_stream: config.event_stream.clone(),
        kinesis_stream: config.kinesis_stream.clone(),
    });
    let mut consumer = Consumer {
        membership: handles.membership,
        ctx: ctx.clone(),
        config,
        known: BTreeMap::new(),
        listed: Vec::new(),
        running: HashSet::new(),
        start_at_tip: HashSet::new(),
        readers: JoinSet::new(),
        readers_cancel: cancel.child_token(),
    };
    let result = consumer.run(&cancel).await;
    consumer.readers_cancel.cancel();
    while consumer.readers.join_next().await.is_some() {}
    result
}

struct Consumer<'a> {
    membership: Membership,
    ctx: Arc<ShardContext>,
    config: &'a ConsumerConfig,
    known: BTreeMap<String, ShardCheckpoint>,
    listed: Vec<ShardInfo>,
    running: HashSet<String>,
    /// Shards of a `latest` job registered by this run: their reader's first iterator is LATEST.
    /// The store keeps the registration instant instead (see [`lineage::register_new`]), which
    /// renewed iterators and later runs (resume, restart) start from.
    start_at_tip: HashSet<String>,
    readers: JoinSet<(String, Result<ReaderExit, ConsumeError>)>,
    readers_cancel: CancellationToken,
}

impl Consumer<'_> {
    /// The job's checkpoints as stored, by shard id.
    async fn stored_checkpoints<C>(&self) -> Result<C, ConsumeError>
    where
        C: FromIterator<(String, ShardCheckpoint)>,
    {
        Ok(self
            .ctx
            .store
            .list_checkpoints(&self.ctx.job_id)
            .await
            .map_err(ConsumeError::Store)?
            .into_iter()
            .map(|c| (c.shard_id.clone(), c))
            .collect())
    }

    async fn run(&mut self, cancel: &CancellationToken) -> Result<(), ConsumeError> {
        // The store unreachable for a while (a database restart, a network cut) delays the
        // job; it does not fail it: with several nodes that would stop it on all of them.
        let mut store_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        self.known = loop {
            match self.stored_checkpoints().await {
                Ok(known) => break known,
                Err(ConsumeError::Store(e)) if e.is_transient() => {
                    tracing::warn!(job = %self.ctx.job_id, error = %e, "cannot read the job's checkpoints; retrying");
                    if !sleep(cancel, store_backoff.next_delay()).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        };
        // With several nodes, shards move between them: look again often, and soon after the
        // nodes change.
        let every = if self.membership.is_clustered() {
            CLUSTER_RECHECK_INTERVAL
        } else {
            RELIST_INTERVAL
        };
        let mut relist = tokio::time::interval(every);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let membership = self.membership.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = membership.changed() => relist.reset_immediately(),
                _ = relist.tick() => match self.refresh_shards(cancel).await {
                    Ok(true) => store_backoff.reset(),
                    Ok(false) => return Ok(()),
                    Err(ConsumeError::Store(e)) if e.is_transient() => {
                        tracing::warn!(job = %self.ctx.job_id, error = %e, "cannot read or register the job's shards; retrying");
                        relist.reset_after(store_backoff.next_delay());
                    }
                    Err(e) => return Err(e),
                },
                Some(joined) = self.readers.join_next(), if !self.readers.is_empty() => {
                    let (shard_id, result) = joined.map_err(|source| ConsumeError::Crashed {
                        what: "a shard reader",
                        source,
                    })?;
                    self.running.remove(&shard_id);
                    match result {
                        Ok(ReaderExit::Finished) => {
                            if let Some(cp) = self.known.get_mut(&shard_id) {
                                cp.state = ShardState::Finished;
                            }
                            // Its children may be readable now.
                            relist.reset_immediately();
                        }
                        Ok(ReaderExit::Cancelled) => {}
                        // Another node reads it now.
                        Err(ConsumeError::Store(StoreError::LeaseLost { .. })) => {}
                        Err(ConsumeError::Aws(e)) if e.kind == AwsErrorKind::NotFound => self.shard_not_found(&shard_id, e, cancel).await?,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Lists shards, registers new ones and starts readers for every readable shard.
    /// `Ok(false)` when cancelled while retrying.
    async fn refresh_shards(&mut self, cancel: &CancellationToken) -> Result<bool, ConsumeError> {
        if self.membership.is_clustered() {
            // Other nodes register shards and finish parents.
            let stored: BTreeMap<String, ShardCheckpoint> = self.stored_checkpoints().await?;
            self.known = stored;
        }
        let client = self.ctx.client.clone();
        let stream = self.ctx.kinesis_stream.clone();
        let Some(listed) = retry(cancel, || list_shards(&client, &stream)).await? else {
            return Ok(false);
        };
        let first_listing_at_tip =
            self.known.is_empty() && self.config.start_position == StartPosition::Latest;
        let new = lineage::register_new(
            &listed,
            &self.known,
            &self.config.start_position,
            chrono::Utc::now(),
        );
        if first_listing_at_tip {
            self.start_at_tip
                .extend(new.iter().map(|c| c.shard_id.clone()));
        }
        if !new.is_empty() {
            self.ctx
                .store
                .register_shards(&self.ctx.job_id, &new)
                .await
                .map_err(ConsumeError::Store)?;
            tracing::info!(job = %self.ctx.job_id, shards = new.len(), "found new shards");
            self.known
                .extend(new.into_iter().map(|c| (c.shard_id.clone(), c)));
        }
        self.listed = listed;
        let to_start: Vec<String> = lineage::ready(&self.known, &self.listed)
            .into_iter()
            .filter(|id| !self.running.contains(id))
            .collect();
        if to_start.is_empty() {
            return Ok(true);
        }
        // Readers resume from the stored checkpoints, not our possibly older copies: read once,
        // after the claims (a shard's previous reader committed before handing it over).
        let mut claims = Vec::with_capacity(to_start.len());
        for shard_id in to_start {
            let lease = shard_lease(&self.ctx.job_id, &shard_id);
            if let Some(claim) = self
                .membership
                .claim(&lease)
                .await
                .map_err(ConsumeError::Store)?
            {
                claims.push((shard_id, claim));
            }
        }
        if claims.is_empty() {
            return Ok(true);
        }
        let mut stored: HashMap<String, ShardCheckpoint> = self.stored_checkpoints().await?;
        for (shard_id, claim) in claims {
            let cp = self
                .known
                .get_mut(&shard_id)
                .expect("ready shards are known");
            if cp.state == ShardState::WaitingForParent {
                cp.state = ShardState::Reading;
                self.ctx
                    .store
                    .set_shard_state(&self.ctx.job_id, &shard_id, ShardState::Reading)
                    .await
                    .map_err(ConsumeError::Store)?;
            }
            let mut checkpoint = stored.remove(&shard_id).unwrap_or_else(|| cp.clone());
            checkpoint.state = cp.state;
            // Once: a later reader of this shard (if any) starts from the stored position.
            let at_tip =
                self.start_at_tip.remove(&shard_id) && checkpoint.sequence_number.is_none();
            let (ctx, token) = (self.ctx.clone(), self.readers_cancel.child_token());
            self.running.insert(shard_id.clone());
            self.readers.spawn(async move {
                let reading = read_shard(
                    ctx,
                    checkpoint,
                    at_tip,
                    claim.fence().cloned(),
                    token.clone(),
                );
                tokio::pin!(reading);
                let result = tokio::select! {
                    result = &mut reading => result,
                    // Lost or handed over: stop at a consistent point, then hand it back.
                    _ = claim.token().cancelled() => {
                        token.cancel();
                        reading.await
                    }
                };
                drop(claim);
                (shard_id, result)
            });
        }
        Ok(true)
    }

    /// A shard that vanished while the stream still lists others aged out of retention: count
    /// it as read. If the stream itself is gone, the job fails.
    async fn shard_not_found(
        &mut self,
        shard_id: &str,
        err: AwsError,
        cancel: &CancellationToken,
    ) -> Result<(), ConsumeError> {
        let client = self.ctx.client.clone();
        let stream = self.ctx.kinesis_stream.clone();
        let Some(listed) = retry(cancel, || list_shards(&client, &stream)).await? else {
            return Ok(());
        };
        if listed.iter().any(|s| s.shard_id == shard_id) {
            return Err(err.into());
        }
        tracing::warn!(job = %self.ctx.job_id, shard = shard_id, "shard no longer exists (past retention); treating it as read");
        self.ctx
            .store
            .set_shard_state(&self.ctx.job_id, shard_id, ShardState::Finished)
            .await
            .map_err(ConsumeError::Store)?;
        if let Some(cp) = self.known.get_mut(shard_id) {
            cp.state = ShardState::Finished;
        }
        Ok(())
    }
}

/// Calls `f` until it succeeds, retrying throttles and outages with backoff. `Ok(None)` when
/// cancelled meanwhile.
async fn retry<T, F, Fut>(cancel: &CancellationToken, mut f: F) -> Result<Option<T>, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
    loop {
        match f().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.kind.is_retryable() => {
                tracing::warn!(error = %e, "AWS call failed; retrying");
                if !sleep(cancel, backoff.next_delay()).await {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
