//! The CDP core: stream mappings, identity resolution and the profile processor that turns
//! the event log into profiles and audience changes.
//!
//! [`Cdp`] is the one handle every caller (API routes, the processor task, the schedule)
//! shares. It serializes everything that writes profiles, identities, memberships or audience
//! changes behind one lock — the processor's batches, audience re-evaluations and rebuilds —
//! so each of those steps reads current state and commits it in one transaction.

#[cfg(test)]
mod aging_tests;
pub mod erasure;
pub mod identity;
pub mod processor;
pub mod profile_cache;
pub mod registry;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tributary_lang::{dates, parse_mapping, Mapping, ParseError};

use crate::audiences::{AudienceError, AudienceSet};
use crate::metrics::Metrics;
use crate::store::{
    Audience, CatalogStore, DynStore, ErasureStore, EventLog, Fence, OutboxStore, ProfileStore,
    StoreError, StoreResult, StoredEvent, StreamMapping,
};
pub use registry::MappingRegistry;

/// Processor state key prefix of an audience re-evaluation requested through a node not
/// running the processor (`reevaluate-request:SLUG`); that node turns it into a restart.
const REEVALUATE_REQUEST_KEY: &str = "reevaluate-request:";

/// Processor state key of a rebuild requested through a node not running the processor.
const REBUILD_KEY: &str = "rebuild:requested";

/// How often, with several nodes, mappings and audiences are re-read from the store.
const CATALOG_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Top-level event fields read, in order, as the event's time (for `latest`/`first` and
/// relative dates in mappings); else the Kinesis arrival time, else when it was stored.
pub const EVENT_TIME_FIELDS: &[&str] = &["_ts", "timestamp", "ts", "time", "event_time"];

#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error(
        "the mapping reads FROM {from:?} but is being set on stream {stream:?}; they must match"
    )]
    WrongStream { from: String, stream: String },
    #[error(transparent)]
    Audience(#[from] AudienceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Progress of `POST /api/profiles/rebuild`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RebuildStatus {
    /// `idle` (never rebuilt), `running` or `done`.
    pub state: &'static str,
    pub processed: u64,
    pub total: u64,
}

/// The store roles the CDP uses: it follows the event log, keeps the catalog (mappings,
/// audiences), and is the one writer of profiles and, through their batches, of the outbox
/// (which it reads back only in tests).
#[derive(Clone)]
pub struct CdpStores {
    pub events: Arc<dyn EventLog>,
    pub catalog: Arc<dyn CatalogStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub outbox: Arc<dyn OutboxStore>,
    /// Erasures of people and the suppression list (see [`erasure`]).
    pub erasure: Arc<dyn ErasureStore>,
}

impl From<DynStore> for CdpStores {
    fn from(store: DynStore) -> Self {
        Self {
            events: store.clone(),
            catalog: store.clone(),
            profiles: store.clone(),
            outbox: store.clone(),
            erasure: store,
        }
    }
}

#[derive(Clone)]
pub struct Cdp {
    inner: Arc<Inner>,
}

struct Inner {
    stores: CdpStores,
    metrics: Metrics,
    /// Held by every writer of profiles/memberships/changes (see the module docs); taken
    /// through [`Cdp::write_turn`].
    write_lock: Mutex<()>,
    /// Writers waiting for `write_lock`: the processor ends a run of batches early for them.
    writers_waiting: AtomicUsize,
    mappings: RwLock<Option<Arc<MappingRegistry>>>,
    audiences: RwLock<Option<Arc<AudienceSet>>>,
    /// Wakes the processor early (new events, a rebuild).
    wake: Notify,
    /// With several nodes: the processor's lease while this node holds it, carried by every
    /// profile batch it commits (`None` alone: nothing to fence).
    fence: RwLock<Option<Fence>>,
    /// The processor runs on this node now (see [`Cdp::run_fenced`]).
    processing: std::sync::atomic::AtomicBool,
    /// Shares its store with other nodes (see [`Cdp::follow_cluster`]).
    clustered: bool,
    /// Milliseconds added to the system clock for "now" (see [`Cdp::now`]); 0 but in tests.
    clock_offset_ms: std::sync::atomic::AtomicI64,
    /// How often the processor re-evaluates time-relative audiences for their members, in
    /// milliseconds (see [`processor::TIME_RELATIVE_EVERY`]; tests shorten it).
    aging_every_ms: std::sync::atomic::AtomicU64,
    /// The suppression list as hashes, with the mappings that find identifiers in events.
    suppressions: erasure::Suppressions,
    /// Hot profiles for the processor's reads, behind `stores.profiles` (see
    /// [`profile_cache`]); `None` with several nodes.
    profile_cache: Option<Arc<profile_cache::ProfileCache>>,
}

impl Cdp {
    /// Waits for the write lock, letting the processor know someone is waiting for it.
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.writers_waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.inner.write_lock.lock().await;
        self.inner.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Whether a writer is waiting for the lock the caller holds.
    fn writers_waiting(&self) -> bool {
        self.inner.writers_waiting.load(Ordering::SeqCst) > 0
    }

    pub fn new(stores: CdpStores, metrics: Metrics) -> Self {
        Self::with_cluster(stores, metrics, false)
    }

    /// [`Cdp::new`]; `clustered`: other nodes share the store, and the node running the
    /// processor does the profile writes requested through any node.
    pub fn with_cluster(mut stores: CdpStores, metrics: Metrics, clustered: bool) -> Self {
        // Other nodes write profiles too: a cache here could show what they replaced.
        let profile_cache = (!clustered).then(|| {
            let cache = Arc::new(profile_cache::ProfileCache::new(
                profile_cache::DEFAULT_BUDGET_BYTES,
                metrics.clone(),
            ));
            stores.profiles = Arc::new(profile_cache::CachedProfiles::new(
                stores.profiles.clone(),
                cache.clone(),
            ));
            cache
        });
        Cdp {
            inner: Arc::new(Inner {
                stores,
                metrics,
                write_lock: Mutex::new(()),
                writers_waiting: AtomicUsize::new(0),
                mappings: RwLock::new(None),
                audiences: RwLock::new(None),
                wake: Notify::new(),
                fence: RwLock::new(None),
                processing: Default::default(),
                clustered,
                clock_offset_ms: Default::default(),
                aging_every_ms: std::sync::atomic::AtomicU64::new(
                    processor::TIME_RELATIVE_EVERY.as_millis() as u64,
                ),
                suppressions: Default::default(),
                profile_cache,
            }),
        }
    }

    /// The processor's profile cache budget in bytes (`0` turns it off).
    pub fn set_profile_cache_budget(&self, bytes: usize) {
        if let Some(cache) = &self.inner.profile_cache {
            cache.set_budget(bytes);
        }
    }

    /// Forgets every cached profile: after a write that did not go through a profile batch
    /// (an erasure).
    fn forget_cached_profiles(&self) {
        if let Some(cache) = &self.inner.profile_cache {
            cache.clear();
        }
    }

    /// "Now" for audience evaluation, windowed fields and scores: the system clock, moved by
    /// [`Cdp::set_clock_offset`] (tests drive time with it).
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.inner.clock_offset_ms.load(Ordering::Relaxed);
        Utc::now() + chrono::Duration::milliseconds(offset)
    }

    /// Moves this handle's clock (every clone's) by `offset` from the system clock.
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.inner
            .clock_offset_ms
            .store(offset.num_milliseconds(), Ordering::Relaxed);
    }

    /// How often the processor re-evaluates time-relative audiences for their members.
    pub fn set_aging_every(&self, every: std::time::Duration) {
        self.inner
            .aging_every_ms
            .store(every.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn aging_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.inner.aging_every_ms.load(Ordering::Relaxed))
    }

    /// The profile fields that change with time alone: the scores and every windowed field
    /// of the current mappings (audiences reading them are re-evaluated like time-relative
    /// ones, so members age out).
    pub async fn aging_fields(&self) -> Result<std::collections::HashSet<String>, CdpError> {
        let mappings = self.mappings().await?;
        let mut fields: std::collections::HashSet<String> = tributary_lang::SCORE_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        for stream in mappings.streams() {
            if let Some(m) = mappings.get(&stream) {
                fields.extend(m.windowed_fields().map(str::to_owned));
            }
        }
        Ok(fields)
    }

    pub fn stores(&self) -> &CdpStores {
        &self.inner.stores
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The fence the processor's writes carry (see [`Cdp::run_fenced`]).
    pub(crate) fn fence(&self) -> Option<Fence> {
        self.inner.fence.read().expect("lock").clone()
    }

    /// Runs the processor (see [`Cdp::run`]) with every batch it commits fenced by `fence`:
    /// with several nodes, only the node holding the processor's lease writes profiles.
    pub async fn run_fenced(self, fence: Option<Fence>, shutdown: CancellationToken) {
        // Kept after the run: a write still in flight then carries the old fence, which the
        // store refuses once another node holds the lease.
        *self.inner.fence.write().expect("lock") = fence;
        self.inner.processing.store(true, Ordering::SeqCst);
        self.clone().run(shutdown).await;
        self.inner.processing.store(false, Ordering::SeqCst);
    }

    /// Whether this node runs the processor now.
    pub(crate) fn is_processing(&self) -> bool {
        self.inner.processing.load(Ordering::SeqCst)
    }

    /// With several nodes, on every node until `shutdown`: mappings and audiences may change
    /// through another node, so the caches are dropped every [`CATALOG_REFRESH`]; on the node
    /// running the processor, re-evaluations and rebuilds requested through any node start.
    pub async fn follow_cluster(self, shutdown: CancellationToken) {
        let running = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CATALOG_REFRESH) => {}
            }
            self.forget_catalog();
            if !self.is_processing() {
                continue;
            }
            if let Err(e) = self.start_requested(&running).await {
                tracing::warn!(error = %e, "cannot read re-evaluations and rebuilds requested through other nodes");
            }
        }
    }

    /// Starts what other nodes asked the processor for: a rebuild, and re-evaluations not
    /// already running here (`running`: their slugs).
    async fn start_requested(
        &self,
        running: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    ) -> Result<(), CdpError> {
        self.resume_erasures().await?;
        let profiles = &self.inner.stores.profiles;
        if !profiles.processor_state(REBUILD_KEY).await?.is_empty() {
            let _guard = self.write_turn().await;
            // Rechecked under the lock: another pass may have done it.
            if !profiles.processor_state(REBUILD_KEY).await?.is_empty() {
                self.reset_for_rebuild().await?;
            }
        }
        let requests = profiles.processor_state(REEVALUATE_REQUEST_KEY).await?;
        if !requests.is_empty() {
            // Under the write turn, so no re-evaluation page of ours overwrites the restart.
            let _guard = self.write_turn().await;
            let mut state = Vec::with_capacity(requests.len() * 2);
            for (key, _) in requests {
                if let Some(slug) = key.strip_prefix(REEVALUATE_REQUEST_KEY) {
                    state.push((
                        format!("{}{slug}", processor::REEVALUATE_KEY),
                        Some(String::new()),
                    ));
                }
                state.push((key, None));
            }
            profiles
                .commit_profile_batch(Arc::new(crate::store::ProfileBatch {
                    state,
                    fence: self.fence(),
                    ..Default::default()
                }))
                .await?;
        }
        for (key, _) in profiles.processor_state(processor::REEVALUATE_KEY).await? {
            let Some(slug) = key.strip_prefix(processor::REEVALUATE_KEY) else {
                continue;
            };
            if !running.lock().expect("lock").insert(slug.to_owned()) {
                continue;
            }
            let (cdp, slug, running) = (self.clone(), slug.to_owned(), running.clone());
            tokio::spawn(async move {
                if let Err(e) = cdp.reevaluate_persisted(&slug).await {
                    tracing::error!(error = %e, audience = %slug, "re-evaluating an audience failed; it is retried");
                }
                running.lock().expect("lock").remove(&slug);
            });
        }
        Ok(())
    }

    /// Whether another node's processor does the profile writes this node's API asks for.
    fn defers_to_cluster(&self) -> bool {
        self.inner.clustered && !self.is_processing()
    }

    fn forget_catalog(&self) {
        *self.inner.mappings.write().expect("lock") = None;
        self.forget_audiences();
    }

    /// Asks the processor to look for new events now rather than at its next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    // ----- mappings ---------------------------------------------------------------------

    /// The parsed mappings of every stream (cached until a mapping changes).
    pub async fn mappings(&self) -> StoreResult<Arc<MappingRegistry>> {
        if let Some(r) = self.inner.mappings.read().expect("lock").clone() {
            return Ok(r);
        }
        let rows = self.inner.stores.catalog.list_mappings().await?;
        let r = Arc::new(MappingRegistry::new(rows));
        *self.inner.mappings.write().expect("lock") = Some(r.clone());
        Ok(r)
    }

    /// Validates and stores a stream's mapping. New events use it; existing profiles keep
    /// what older mappings made until a rebuild.
    pub async fn set_mapping(
        &self,
        stream: &str,
        text: &str,
    ) -> Result<(Mapping, StreamMapping), CdpError> {
        let mapping = parse_mapping(text)?;
        if mapping.from != stream {
            return Err(CdpError::WrongStream {
                from: mapping.from.clone(),
                stream: stream.to_owned(),
            });
        }
        let _guard = self.write_turn().await;
        let stored = self.inner.stores.catalog.put_mapping(stream, text).await?;
        *self.inner.mappings.write().expect("lock") = None;
        Ok((mapping, stored))
    }

    // ----- audiences --------------------------------------------------------------------

    /// Every audience, compiled (cached until an audience changes).
    pub async fn audiences(&self) -> Result<Arc<AudienceSet>, CdpError> {
        if let Some(a) = self.inner.audiences.read().expect("lock").clone() {
            return Ok(a);
        }
        let rows = self
            .inner
            .stores
            .catalog
            .list_audiences()
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        let set = Arc::new(AudienceSet::new(rows)?);
        *self.inner.audiences.write().expect("lock") = Some(set.clone());
        Ok(set)
    }

    fn forget_audiences(&self) {
        *self.inner.audiences.write().expect("lock") = None;
    }

    /// Creates an audience and evaluates every profile against it (in the background; members
    /// enter as the pages commit).
    pub async fn create_audience(
        &self,
        audience: Audience,
    ) -> Result<tributary_lang::Filter, CdpError> {
        self.save_audience(audience, true).await
    }

    /// Changes an audience's name, description and filter, then re-evaluates everyone.
    pub async fn update_audience(
        &self,
        audience: Audience,
    ) -> Result<tributary_lang::Filter, CdpError> {
        self.save_audience(audience, false).await
    }

    /// Checks the filter against the other audiences (INCLUDE targets, cycles), stores the
    /// audience and starts re-evaluating everyone against it.
    async fn save_audience(
        &self,
        audience: Audience,
        new: bool,
    ) -> Result<tributary_lang::Filter, CdpError> {
        let filter = {
            let _guard = self.write_turn().await;
            let filter = self.audiences().await?.check(&audience)?;
            if new {
                self.inner
                    .stores
                    .catalog
                    .insert_audience(audience.clone())
                    .await?;
            } else {
                self.inner
                    .stores
                    .catalog
                    .update_audience(audience.clone())
                    .await?;
            }
            self.forget_audiences();
            self.mark_for_reevaluation(&audience.slug).await?;
            filter
        };
        self.spawn_reevaluation(audience.slug);
        Ok(filter)
    }

    /// Deletes an audience no other audience INCLUDEs. Its memberships go; no exit changes
    /// are written (export jobs naming it are told by the audience's absence).
    pub async fn delete_audience(&self, slug: &str) -> Result<(), CdpError> {
        let _guard = self.write_turn().await;
        let set = self.audiences().await?;
        set.check_delete(slug)?;
        self.inner.stores.catalog.delete_audience(slug).await?;
        self.forget_audiences();
        Ok(())
    }

    /// Records that `slug` must be re-evaluated for everyone, from the start (committed, so a
    /// crash cannot skip it).
    async fn mark_for_reevaluation(&self, slug: &str) -> StoreResult<()> {
        // Another node's processor may be re-evaluating `slug` now and would write its resume
        // point over a restart mark: only ask it, and it restarts (see `start_requested`).
        let key = if self.defers_to_cluster() {
            REEVALUATE_REQUEST_KEY
        } else {
            processor::REEVALUATE_KEY
        };
        self.inner
            .stores
            .profiles
            .commit_profile_batch(Arc::new(crate::store::ProfileBatch {
                state: vec![(format!("{key}{slug}"), Some(String::new()))],
                ..Default::default()
            }))
            .await
    }

    fn spawn_reevaluation(&self, slug: String) {
        if self.defers_to_cluster() {
            // Marked in the store: the processor's node starts it (see `follow_cluster`).
            return;
        }
        let cdp = self.clone();
        tokio::spawn(async move {
            if let Err(e) = cdp.reevaluate_persisted(&slug).await {
                tracing::error!(error = %e, audience = %slug, "re-evaluating an audience failed; it resumes at the next start");
            }
        });
    }

    // ----- rebuild and lag --------------------------------------------------------------

    /// Starts rebuilding every profile from the stored events (see
    /// [`ProfileStore::reset_profiles`]); the processor does the work.
    pub async fn start_rebuild(&self) -> StoreResult<RebuildStatus> {
        if self.defers_to_cluster() {
            // Requested in the store; the processor's node resets the profiles.
            self.inner
                .stores
                .profiles
                .commit_profile_batch(Arc::new(crate::store::ProfileBatch {
                    state: vec![(REBUILD_KEY.to_owned(), Some(String::new()))],
                    ..Default::default()
                }))
                .await?;
            return Ok(RebuildStatus {
                state: "running",
                processed: 0,
                total: 0,
            });
        }
        {
            let _guard = self.write_turn().await;
            self.reset_for_rebuild().await?;
        }
        self.wake();
        self.rebuild_status().await
    }

    /// Resets the profiles for a rebuild and clears a pending request for one (the caller
    /// holds the write turn).
    async fn reset_for_rebuild(&self) -> StoreResult<()> {
        let profiles = &self.inner.stores.profiles;
        profiles.reset_profiles(self.fence()).await?;
        if self.inner.clustered {
            profiles
                .commit_profile_batch(Arc::new(crate::store::ProfileBatch {
                    state: vec![(REBUILD_KEY.to_owned(), None)],
                    fence: self.fence(),
                    ..Default::default()
                }))
                .await?;
        }
        self.wake();
        Ok(())
    }

    pub async fn rebuild_status(&self) -> StoreResult<RebuildStatus> {
        let stores = &self.inner.stores;
        let pos = stores.profiles.processor_position().await?;
        Ok(match pos.rebuild_target {
            None => RebuildStatus {
                state: "idle",
                processed: 0,
                total: 0,
            },
            Some(target) => RebuildStatus {
                state: if pos.cursor >= target {
                    "done"
                } else {
                    "running"
                },
                processed: stores
                    .events
                    .count_events(0, pos.cursor.min(target))
                    .await?,
                total: stores.events.count_events(0, target).await?,
            },
        })
    }

    /// Events of `stream` the processor has already passed: a mapping set now is not applied
    /// to them until a rebuild (`POST /api/profiles/rebuild`).
    pub async fn passed_events(&self, stream: &str) -> StoreResult<u64> {
        let stores = &self.inner.stores;
        let stored = stores
            .events
            .list_streams()
            .await?
            .into_iter()
            .find(|s| s.name == stream)
            .map_or(0, |s| s.events);
        let waiting = stores
            .profiles
            .processor_lag()
            .await?
            .into_iter()
            .find(|(name, _)| name == stream)
            .map_or(0, |(_, n)| n);
        Ok(stored.saturating_sub(waiting))
    }
}

/// Events not yet applied by the profile processor, per stream (streams with none are left
/// out). For `GET /api/streams`.
pub async fn lag(profiles: &dyn ProfileStore) -> StoreResult<Vec<(String, u64)>> {
    profiles.processor_lag().await
}

/// The time an event happened (see [`EVENT_TIME_FIELDS`]).
pub fn event_time(event: &StoredEvent) -> DateTime<Utc> {
    time_from_fields(&event.fields)
        .or_else(|| {
            event
                .origin
                .as_ref()
                .and_then(|o| o.approximate_arrival_timestamp)
        })
        .unwrap_or(event.stored_at)
}

fn time_from_fields(fields: &Map<String, Value>) -> Option<DateTime<Utc>> {
    EVENT_TIME_FIELDS
        .iter()
        .find_map(|f| match fields.get(*f)? {
            Value::String(s) => dates::parse_date(s),
            Value::Number(n) => dates::from_epoch(n.as_f64()?),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_time_prefers_the_event_fields() {
        let mut e = StoredEvent {
            seq: 1,
            event_id: "e".into(),
            stream: "web".into(),
            fields: json!({"ts": 1_700_000_000}).as_object().unwrap().clone(),
            origin: None,
            stored_at: Utc::now(),
        };
        assert_eq!(event_time(&e).timestamp(), 1_700_000_000);
        e.fields = json!({"timestamp": "2024-01-02T03:04:05Z"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(event_time(&e).to_rfc3339(), "2024-01-02T03:04:05+00:00");
        e.fields = json!({"ts": "garbage"}).as_object().unwrap().clone();
        assert_eq!(event_time(&e), e.stored_at);
    }
}
