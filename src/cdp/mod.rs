//! The CDP core: stream mappings, identity resolution and the profile processor that turns
//! the event log into profiles and audience changes.
//!
//! [`Cdp`] is the one handle every caller (API routes, the processor task, the schedule)
//! shares. It serializes everything that writes profiles, identities, memberships or audience
//! changes behind one lock — the processor's batches, audience re-evaluations and rebuilds —
//! so each of those steps reads current state and commits it in one transaction.

pub mod identity;
pub mod processor;
pub mod registry;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify};
use tributary_lang::{dates, parse_mapping, Mapping, ParseError};

use crate::audiences::{AudienceError, AudienceSet};
use crate::metrics::Metrics;
use crate::store::{
    Audience, CatalogStore, DynStore, EventLog, OutboxStore, ProfileStore, StoreError, StoreResult,
    StoredEvent, StreamMapping,
};
pub use registry::MappingRegistry;

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
}

impl From<DynStore> for CdpStores {
    fn from(store: DynStore) -> Self {
        Self {
            events: store.clone(),
            catalog: store.clone(),
            profiles: store.clone(),
            outbox: store,
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
        Cdp {
            inner: Arc::new(Inner {
                stores,
                metrics,
                write_lock: Mutex::new(()),
                writers_waiting: AtomicUsize::new(0),
                mappings: RwLock::new(None),
                audiences: RwLock::new(None),
                wake: Notify::new(),
            }),
        }
    }

    pub fn stores(&self) -> &CdpStores {
        &self.inner.stores
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
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
        self.inner
            .stores
            .profiles
            .commit_profile_batch(Arc::new(crate::store::ProfileBatch {
                state: vec![(
                    format!("{}{slug}", processor::REEVALUATE_KEY),
                    Some(String::new()),
                )],
                ..Default::default()
            }))
            .await
    }

    fn spawn_reevaluation(&self, slug: String) {
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
        {
            let _guard = self.write_turn().await;
            self.inner.stores.profiles.reset_profiles().await?;
        }
        self.wake();
        self.rebuild_status().await
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
}

impl Cdp {
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
