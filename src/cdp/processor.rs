//! The profile processor: reads the event log after its cursor, maps each event with its
//! stream's mapping, resolves identities, folds the events into profiles, evaluates the
//! audiences the changes can affect, and commits all of it with the new cursor in ONE
//! transaction ([`crate::store::ProfileStore::commit_profile_batch`]).
//!
//! Crash safety: the cursor only moves with the changes it covers, so after a crash the
//! batch is redone from the same events and state; nothing is lost or applied twice. An event
//! id replayed by an import is never stored twice (the event log is unique by id), so it
//! never reaches the processor twice either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tributary_lang::{MappedEvent, Mapping};

use super::identity::{IdentityKey, Resolver};
use super::{event_time, Cdp, CdpError};
use crate::audiences::engine::{record_changes, MemberTimes};
use crate::audiences::AudienceSet;
use crate::store::{
    ChangeKind, Fence, IdentityRow, MemberList, Profile, ProfileBatch, ProfileWrite, StoreResult,
};

/// Events per processor transaction.
pub const BATCH_EVENTS: u32 = 5_000;
/// Batches the processor applies in one run (read, computed and committed in overlapping
/// stages); a run ends earlier when another writer (an audience change, a re-evaluation) waits.
pub const RUN_BATCHES: u32 = 32;
/// Computed batches that may wait for their commit (besides the one committing).
pub const COMMIT_QUEUE: usize = 1;
/// Profiles per transaction when re-evaluating audiences over everyone.
pub const REEVALUATE_PAGE: u32 = 2_000;
/// How often an idle processor looks for new events.
pub const POLL: Duration = Duration::from_millis(100);
/// Key prefix of the resume points of audience re-evaluations (see
/// [`Cdp::reevaluate_persisted`]).
pub const REEVALUATE_KEY: &str = "reevaluate:";
/// How often the members of time-relative audiences are re-evaluated, so they age out.
pub const TIME_RELATIVE_EVERY: Duration = Duration::from_secs(60);
/// How often time-relative audiences are re-evaluated over everyone (people entering with
/// time, e.g. `last_seen < "now-30d"`).
pub const TIME_RELATIVE_FULL_EVERY: Duration = Duration::from_secs(3600);

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Events read (mapped or skipped); 0 when the log had nothing new.
    pub events: usize,
    pub profiles_touched: usize,
    pub merges: usize,
    pub changes: usize,
}

/// A batch read from the store: its events mapped, and what the store held for their
/// identifiers when read (see [`Cdp::load`]).
struct Loaded {
    last_seq: i64,
    /// Events read (mapped or skipped).
    scanned: usize,
    mapped: Vec<(Arc<Mapping>, MappedEvent, DateTime<Utc>)>,
    rows: Vec<IdentityRow>,
    profiles: Vec<(Profile, MemberList)>,
    /// The processor's lease when read; the batch commits only while it still holds.
    fence: Option<Fence>,
}

/// A batch computed and ready to commit.
struct Prepared {
    /// The batch, indexed for later batches whose reads may have missed it.
    overlay: Overlay,
    outcome: StepOutcome,
    last_seq: i64,
    mapped: usize,
}

/// What a batch changes, as later batches must see it when their reads may have missed it
/// (the store may show it or not yet): identity rows it (re)pointed, the profiles it merged
/// away (→ survivor) and every profile it touched, with its memberships, as it leaves them.
/// The profiles stay in the batch the commit shares; the overlay only indexes them.
struct Overlay {
    batch: Arc<ProfileBatch>,
    /// The audiences the member lists' indices refer to.
    audiences: Arc<AudienceSet>,
    identities: HashMap<IdentityKey, String>,
    redirects: HashMap<String, String>,
    /// Touched profile id → (its index in `batch.upserts`, its memberships after the batch).
    profiles: HashMap<String, (usize, MemberTimes)>,
}

impl Overlay {
    fn of(
        batch: Arc<ProfileBatch>,
        audiences: Arc<AudienceSet>,
        mut members: HashMap<String, MemberTimes>,
    ) -> Overlay {
        let identities = batch
            .identities
            .iter()
            .map(|i| ((i.field.clone(), i.value.clone()), i.profile_id.clone()))
            .collect();
        // Applied in order, like the store: earlier redirects to a later loser follow it.
        let mut redirects: HashMap<String, String> = HashMap::new();
        for (from, to) in &batch.redirects {
            for target in redirects.values_mut() {
                if target == from {
                    target.clone_from(to);
                }
            }
            redirects.insert(from.clone(), to.clone());
        }
        let profiles = batch
            .upserts
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let list = members.remove(&w.profile.id).unwrap_or_default();
                (w.profile.id.clone(), (k, list))
            })
            .collect();
        Overlay {
            batch,
            audiences,
            identities,
            redirects,
            profiles,
        }
    }

    /// A profile the batch touched, with its memberships over `audiences`.
    fn profile(&self, id: &str, audiences: &AudienceSet) -> Option<(Profile, MemberTimes)> {
        let (k, members) = self.profiles.get(id)?;
        let profile = self.batch.upserts[*k].profile.clone();
        if std::ptr::eq(audiences, &*self.audiences) {
            return Some((profile, members.clone()));
        }
        // The audiences changed between the batches: carry the memberships over by id.
        let list = members.to_list(&self.audiences);
        Some((profile, MemberTimes::from_list(audiences, &list)))
    }
}

impl Cdp {
    /// Applies the next batch of up to `limit` events.
    pub async fn step(&self, limit: u32) -> Result<StepOutcome, CdpError> {
        let _guard = self.write_turn().await;
        let started = Instant::now();
        let pos = self.stores().profiles.processor_position().await?;
        let Some(loaded) = self.load(pos.cursor, limit).await? else {
            return Ok(StepOutcome::default());
        };
        let audiences = self.audiences().await?;
        let prepared = compute(loaded, &audiences, &[], self.now());
        let last_seq = prepared.last_seq;
        let outcome = self.commit_prepared(&prepared, started).await?;
        if let Some(target) = pos.rebuild_target {
            if pos.cursor < target && last_seq >= target {
                tracing::info!("profile rebuild finished");
            }
        }
        Ok(outcome)
    }

    /// Applies batches of up to `limit` events while the log has any, at most `max_batches`
    /// and none once another writer waits for the lock, and returns the events applied.
    ///
    /// Three stages run at once, each on its own thread: the next batch is read from the
    /// store while one is computed and earlier ones commit, one after the other and in order
    /// (at most [`COMMIT_QUEUE`] waiting). A read may therefore miss what batches not yet
    /// committed when it began change; computing reads those through their [`Overlay`]s.
    /// Nothing is left in flight on return, error or not.
    pub async fn run_batches(&self, limit: u32, max_batches: u32) -> Result<u64, CdpError> {
        let _guard = self.inner.write_lock.lock().await;
        let pos = self.stores().profiles.processor_position().await?;
        let committed = Arc::new(AtomicUsize::new(0));
        let (queue, to_commit) = tokio::sync::mpsc::channel(COMMIT_QUEUE);
        let committer = tokio::spawn(self.clone().commit_in_order(to_commit, committed.clone()));
        // The batch being read, and how many of this run's batches had committed when its
        // read began: it sees those, and maybe some later ones.
        let mut loading = Some((self.spawn_load(pos.cursor, limit), 0));
        // Batches computed that a read may have missed, with their index in this run.
        let mut recent: VecDeque<(usize, Arc<Prepared>)> = VecDeque::new();
        let (mut cursor, mut events) = (pos.cursor, 0u64);
        let mut result = Ok(());
        for index in 0.. {
            let Some((load, visible)) = loading.take() else {
                break;
            };
            let started = Instant::now();
            let loaded = match join(load).await {
                Ok(Some(loaded)) => loaded,
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if index + 1 < max_batches as usize && !self.writers_waiting() {
                let visible = committed.load(Ordering::Acquire);
                loading = Some((self.spawn_load(loaded.last_seq, limit), visible));
            }
            let audiences = match self.audiences().await {
                Ok(a) => a,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let overlays: Vec<Arc<Prepared>> = recent
                .iter()
                .filter(|(i, _)| *i >= visible)
                .map(|(_, p)| p.clone())
                .collect();
            let now = self.now();
            let computed = tokio::task::spawn_blocking(move || {
                let overlays: Vec<&Overlay> = overlays.iter().map(|p| &p.overlay).collect();
                compute(loaded, &audiences, &overlays, now)
            });
            let prepared = match computed.await {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    result = Err(stopped("computing a profile batch", e));
                    break;
                }
            };
            cursor = prepared.last_seq;
            events += prepared.outcome.events as u64;
            if queue.send((prepared.clone(), started)).await.is_err() {
                break; // the committer stopped on an error, reported below
            }
            recent.push_back((index, prepared));
            // The next read already began: it sees every batch committed before that.
            let next_visible = loading.as_ref().map_or(usize::MAX, |(_, v)| *v);
            while recent.front().is_some_and(|(i, _)| *i < next_visible) {
                recent.pop_front();
            }
        }
        // A read still running only reads; it is awaited so that nothing outlives the lock.
        if let Some((load, _)) = loading.take() {
            let _ = load.await;
        }
        drop(queue);
        let committed = join(committer).await;
        let result = result.and(committed);
        if let Some(target) = pos.rebuild_target {
            if result.is_ok() && pos.cursor < target && cursor >= target {
                tracing::info!("profile rebuild finished");
            }
        }
        result.map(|()| events)
    }

    /// Commits the batches of a run in the order they come, counting them in `committed`;
    /// stops at the first error (the batches after it are not committed).
    async fn commit_in_order(
        self,
        mut batches: tokio::sync::mpsc::Receiver<(Arc<Prepared>, Instant)>,
        committed: Arc<AtomicUsize>,
    ) -> Result<(), CdpError> {
        while let Some((prepared, started)) = batches.recv().await {
            self.commit_prepared(&prepared, started).await?;
            committed.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    fn spawn_load(&self, cursor: i64, limit: u32) -> JoinHandle<Result<Option<Loaded>, CdpError>> {
        let cdp = self.clone();
        tokio::spawn(async move { cdp.load(cursor, limit).await })
    }

    fn count_changes(&self, enters: u64, exits: u64) {
        let changes = &self.metrics().cdp_audience_changes;
        changes.with_label_values(&["enter"]).inc_by(enters);
        changes.with_label_values(&["exit"]).inc_by(exits);
    }

    /// Commits a prepared batch and counts it in the metrics.
    async fn commit_prepared(
        &self,
        prepared: &Prepared,
        started: Instant,
    ) -> Result<StepOutcome, CdpError> {
        let Prepared {
            overlay,
            outcome,
            mapped,
            ..
        } = prepared;
        let (outcome, mapped) = (*outcome, *mapped);
        let batch = overlay.batch.clone();
        let (enters, exits) = count_kinds(&batch);
        self.stores().profiles.commit_profile_batch(batch).await?;
        let m = self.metrics();
        m.cdp_events_processed.inc_by(outcome.events as u64);
        m.cdp_events_mapped.inc_by(mapped as u64);
        m.cdp_profiles_merged.inc_by(outcome.merges as u64);
        self.count_changes(enters, exits);
        m.cdp_batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Reads the next batch after `cursor`: its events, mapped, and what the store holds for
    /// their identifiers (the identity rows, those profiles and their memberships).
    async fn load(&self, cursor: i64, limit: u32) -> Result<Option<Loaded>, CdpError> {
        let store = self.stores();
        let (mappings, page) = loop {
            let mappings = self.mappings().await?;
            // Events of streams without a mapping are skipped unparsed; the cursor still
            // passes them.
            let page = store
                .events
                .events_after(cursor, limit, mappings.streams())
                .await?;
            // With several nodes a mapping may have been set through another one before these
            // events were stored: read after the events, the store shows it if so.
            if self.inner.clustered && !mappings.made_from(&store.catalog.list_mappings().await?) {
                self.forget_catalog();
                continue;
            }
            break (mappings, page);
        };
        let Some(last_seq) = page.last_seq else {
            return Ok(None);
        };
        let mut mapped = Vec::with_capacity(page.events.len());
        for e in &page.events {
            let Some(mapping) = mappings.get(&e.stream) else {
                continue;
            };
            let time = event_time(e);
            if let Some(m) = mapping.apply(&e.fields, time) {
                if !m.identities.is_empty() {
                    mapped.push((mapping.clone(), m, time));
                }
            }
        }
        let keys: Vec<IdentityKey> = {
            let mut seen = HashSet::new();
            mapped
                .iter()
                .flat_map(|(_, m, _)| m.identities.iter())
                .filter(|k| seen.insert(*k))
                .cloned()
                .collect()
        };
        let rows = if keys.is_empty() {
            Vec::new()
        } else {
            store.profiles.lookup_identities(keys).await?
        };
        let ids: Vec<String> = {
            let mut seen = HashSet::new();
            rows.iter()
                .filter(|r| seen.insert(r.profile_id.as_str()))
                .map(|r| r.profile_id.clone())
                .collect()
        };
        let profiles = if ids.is_empty() {
            Vec::new()
        } else {
            store.profiles.get_profiles_with_memberships(ids).await?
        };
        Ok(Some(Loaded {
            last_seq,
            scanned: page.scanned,
            mapped,
            rows,
            profiles,
            fence: self.fence(),
        }))
    }

    /// Re-evaluates the named audiences (and those INCLUDing them) for every profile, page by
    /// page, each page in one transaction with its changes.
    pub async fn reevaluate(&self, slugs: &[String]) -> Result<u64, CdpError> {
        let mut after: Option<String> = None;
        let mut changes = 0u64;
        loop {
            let _guard = self.write_turn().await;
            let page = self
                .stores()
                .profiles
                .list_profiles(after.clone(), REEVALUATE_PAGE)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(changes);
            };
            after = Some(last.id.clone());
            let full = page.len() as u32 == REEVALUATE_PAGE;
            match self.reevaluate_page(slugs, page, Vec::new()).await? {
                Some(n) => changes += n,
                None => return Ok(changes),
            }
            if !full {
                return Ok(changes);
            }
        }
    }

    /// Re-evaluates one audience (new or changed) for everyone, resumable: the resume point
    /// (`reevaluate:<slug>` = the last profile id done) commits with each page, so after a
    /// crash [`Cdp::run`] continues where it stopped. Done when the entry is gone.
    pub async fn reevaluate_persisted(&self, slug: &str) -> Result<u64, CdpError> {
        let key = format!("{REEVALUATE_KEY}{slug}");
        let mut changes = 0u64;
        loop {
            let _guard = self.write_turn().await;
            if self.defers_to_cluster() {
                // The processor moved to another node, which carries on from the mark.
                return Ok(changes);
            }
            let store = self.stores();
            let pending = store.profiles.processor_state(&key).await?;
            let Some((_, after)) = pending.into_iter().find(|(k, _)| *k == key) else {
                return Ok(changes);
            };
            let after = (!after.is_empty()).then_some(after);
            let page = store.profiles.list_profiles(after, REEVALUATE_PAGE).await?;
            let done = (page.len() as u32) < REEVALUATE_PAGE;
            let next = if done {
                None
            } else {
                page.last().map(|(p, _)| p.id.clone())
            };
            let state = vec![(key.clone(), next)];
            match self
                .reevaluate_page(std::slice::from_ref(&slug.to_owned()), page, state.clone())
                .await?
            {
                Some(n) => changes += n,
                None => {
                    // The audience is gone: drop the entry.
                    store
                        .profiles
                        .commit_profile_batch(Arc::new(ProfileBatch {
                            state: vec![(key.clone(), None)],
                            fence: self.fence(),
                            ..Default::default()
                        }))
                        .await?;
                    return Ok(changes);
                }
            }
            if done {
                return Ok(changes);
            }
        }
    }

    /// Resumes the audience re-evaluations a crash or shutdown interrupted.
    pub async fn resume_reevaluations(&self) -> Result<usize, CdpError> {
        let pending = self
            .stores()
            .profiles
            .processor_state(REEVALUATE_KEY)
            .await?;
        for (key, _) in &pending {
            if let Some(slug) = key.strip_prefix(REEVALUATE_KEY) {
                self.spawn_reevaluation(slug.to_owned());
            }
        }
        Ok(pending.len())
    }

    /// Re-evaluates the named audiences for their current members only: enough for filters
    /// that time can only make false (`last_seen > "now-30d"`), cheap when audiences are a
    /// small part of everyone.
    pub async fn reevaluate_members(&self, slugs: &[String]) -> Result<u64, CdpError> {
        let mut changes = 0u64;
        for slug in slugs {
            let Ok(audience) = self.stores().catalog.get_audience(slug).await else {
                continue;
            };
            let mut after: Option<String> = None;
            loop {
                let _guard = self.write_turn().await;
                let store = self.stores();
                let members = store
                    .profiles
                    .list_members(&audience.id, after.clone(), REEVALUATE_PAGE)
                    .await?;
                let Some(last) = members.last() else {
                    break;
                };
                after = Some(last.profile_id.clone());
                let full = members.len() as u32 == REEVALUATE_PAGE;
                let page = store
                    .profiles
                    .get_profiles_with_memberships(
                        members.into_iter().map(|m| m.profile_id).collect(),
                    )
                    .await?;
                match self
                    .reevaluate_page(std::slice::from_ref(slug), page, Vec::new())
                    .await?
                {
                    Some(n) => changes += n,
                    None => break,
                }
                if !full {
                    break;
                }
            }
        }
        Ok(changes)
    }

    /// One page of a re-evaluation (profiles with their memberships), under the write lock
    /// held by the caller. `None` when none of the audiences exists any more.
    async fn reevaluate_page(
        &self,
        slugs: &[String],
        page: Vec<(Profile, MemberList)>,
        state: Vec<(String, Option<String>)>,
    ) -> Result<Option<u64>, CdpError> {
        let audiences = self.audiences().await?;
        let mut targets = vec![false; audiences.len()];
        for s in slugs {
            if let Some(i) = audiences.index_of_slug(s) {
                targets[i] = true;
            }
        }
        audiences.close_over_includes(&mut targets);
        if !targets.contains(&true) {
            return Ok(None);
        }
        let store = self.stores();
        let now = self.now();
        let mut batch = ProfileBatch {
            state,
            fence: self.fence(),
            ..Default::default()
        };
        for (p, list) in &page {
            let old = MemberTimes::from_list(&audiences, list);
            let flags = old.flags(&audiences);
            let new = audiences.evaluate(&p.state.filter_json(now), &flags, &targets, now);
            record_changes(&mut batch, &audiences, &p.id, &old, &new, &[], now);
        }
        let changes = batch.changes.len() as u64;
        let (enters, exits) = count_kinds(&batch);
        if !batch.changes.is_empty() || !batch.state.is_empty() {
            store.profiles.commit_profile_batch(Arc::new(batch)).await?;
        }
        self.count_changes(enters, exits);
        Ok(Some(changes))
    }

    /// Re-evaluates the audiences whose filters depend on the time (`now-30d`, `now()`, a
    /// windowed field, a score): their members when `members_only` (people leaving as they
    /// age out), else everyone (also people entering as time passes, e.g. `last_seen <
    /// "now-30d"`).
    pub async fn reevaluate_time_relative(&self, members_only: bool) -> Result<u64, CdpError> {
        let audiences = self.audiences().await?;
        let aging = self.aging_fields().await?;
        let slugs: Vec<String> = audiences
            .list
            .iter()
            .filter(|a| a.time_relative || a.fields.iter().any(|f| aging.contains(f)))
            .map(|a| a.audience.slug.clone())
            .collect();
        if slugs.is_empty() {
            return Ok(0);
        }
        if members_only {
            self.reevaluate_members(&slugs).await
        } else {
            self.reevaluate(&slugs).await
        }
    }

    /// Applies batches until the log is drained (tests, benchmarks).
    pub async fn drain(&self) -> Result<u64, CdpError> {
        let mut total = 0;
        loop {
            match self.run_batches(BATCH_EVENTS, RUN_BATCHES).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Updates the lag gauges (events not yet applied, per stream and in total).
    pub async fn refresh_lag_metric(&self) -> StoreResult<()> {
        let lag = self.stores().profiles.processor_lag().await?;
        let m = self.metrics();
        m.cdp_processor_lag.reset();
        let mut total = 0;
        for (stream, n) in &lag {
            m.cdp_processor_lag
                .with_label_values(&[stream])
                .set(*n as i64);
            total += n;
        }
        m.cdp_processor_lag_total.set(total as i64);
        Ok(())
    }

    /// The processor task: batches while there are events, polls when idle, re-evaluates
    /// time-relative audiences every [`TIME_RELATIVE_EVERY`]. Stops at `shutdown` between
    /// batches (a batch in flight commits or not at all).
    pub async fn run(self, shutdown: CancellationToken) {
        // Before any event: an interrupted erasure must not see its person's events applied.
        if let Err(e) = self.resume_erasures().await {
            tracing::error!(error = %e, "cannot resume interrupted erasures; they are retried at the next start");
        }
        match self.resume_reevaluations().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                audiences = n,
                "resuming interrupted audience re-evaluations"
            ),
            Err(e) => tracing::error!(error = %e, "cannot resume audience re-evaluations"),
        }
        let mut last_time_relative = Instant::now();
        // The first sweep after a start covers everyone (the server may have been down).
        let mut last_full_sweep = Instant::now() - TIME_RELATIVE_FULL_EVERY;
        let mut last_lag = Instant::now() - Duration::from_secs(10);
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let outcome = self.run_batches(BATCH_EVENTS, RUN_BATCHES).await;
            let idle = match outcome {
                Ok(events) => {
                    failures = 0;
                    events == 0
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "profile processor batch failed; retrying");
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    continue;
                }
            };
            if last_lag.elapsed() >= Duration::from_secs(1) || idle {
                if let Err(e) = self.refresh_lag_metric().await {
                    tracing::warn!(error = %e, "cannot measure the processor lag");
                }
                last_lag = Instant::now();
            }
            if last_time_relative.elapsed() >= self.aging_every() {
                last_time_relative = Instant::now();
                let full = last_full_sweep.elapsed() >= TIME_RELATIVE_FULL_EVERY;
                if full {
                    last_full_sweep = Instant::now();
                }
                match self.reevaluate_time_relative(!full).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(changes = n, "time-relative audiences re-evaluated")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "re-evaluating time-relative audiences failed")
                    }
                }
            }
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

/// Computes everything a loaded batch changes, without I/O. `overlays`: the batches before it
/// that its reads may have missed, oldest first (see [`Cdp::run_batches`]).
fn compute(
    loaded: Loaded,
    audiences: &Arc<AudienceSet>,
    overlays: &[&Overlay],
    now: DateTime<Utc>,
) -> Prepared {
    let Loaded {
        last_seq,
        scanned,
        mapped,
        rows: stored_rows,
        profiles: stored_profiles,
        fence,
    } = loaded;
    // Where each identifier points now: the newest batch that (re)pointed it, else the store;
    // then every later batch's merges.
    let stored: HashMap<(&str, &str), &str> = stored_rows
        .iter()
        .map(|r| ((r.field.as_str(), r.value.as_str()), r.profile_id.as_str()))
        .collect();
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for key in mapped.iter().flat_map(|(_, m, _)| m.identities.iter()) {
        if !seen.insert(key) {
            continue;
        }
        let newest = overlays
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, o)| Some((i + 1, o.identities.get(key)?.as_str())));
        let in_store = || Some((0, *stored.get(&(key.0.as_str(), key.1.as_str()))?));
        let Some((from, mut profile_id)) = newest.or_else(in_store) else {
            continue;
        };
        for o in &overlays[from..] {
            if let Some(survivor) = o.redirects.get(profile_id) {
                profile_id = survivor;
            }
        }
        rows.push(IdentityRow {
            field: key.0.clone(),
            value: key.1.clone(),
            profile_id: profile_id.to_owned(),
        });
    }
    // Each profile as the newest batch that touched it left it, else as stored.
    let mut from_store: HashMap<String, (Profile, MemberList)> = stored_profiles
        .into_iter()
        .map(|(p, list)| (p.id.clone(), (p, list)))
        .collect();
    let mut profiles = Vec::new();
    let mut members: HashMap<String, MemberTimes> = HashMap::new();
    let mut ids = HashSet::new();
    for row in &rows {
        if !ids.insert(row.profile_id.as_str()) {
            continue;
        }
        let id = &row.profile_id;
        let found = overlays
            .iter()
            .rev()
            .find_map(|o| o.profile(id, audiences))
            .or_else(|| {
                let (profile, list) = from_store.remove(id)?;
                Some((profile, MemberTimes::from_list(audiences, &list)))
            });
        if let Some((profile, list)) = found {
            profiles.push(profile);
            members.insert(id.clone(), list);
        }
    }

    // Identity resolution and merge rules, in log order.
    let mut resolver = Resolver::new(rows, profiles, now);
    for (mapping, m, time) in &mapped {
        resolver.apply(mapping, m, *time);
    }
    let resolved = resolver.finish();

    // Memberships of every touched profile.
    let mut batch = ProfileBatch {
        deletes: resolved.merged_away.clone(),
        identities: resolved.identities,
        redirects: resolved.merges.clone(),
        cursor: Some(last_seq),
        fence,
        ..Default::default()
    };
    let none = MemberTimes::default();
    let all: Vec<bool> = vec![true; audiences.len()];
    let mut after: HashMap<String, MemberTimes> = HashMap::with_capacity(resolved.touched.len());
    for t in &resolved.touched {
        let old = members.get(&t.profile.id).unwrap_or(&none);
        let merged_away: Vec<(String, MemberTimes)> = t
            .merged_from
            .iter()
            .map(|id| (id.clone(), members.get(id).cloned().unwrap_or_default()))
            .collect();
        let affected = if t.is_new || !t.merged_from.is_empty() {
            all.clone()
        } else {
            audiences.affected_by(&t.changed_fields)
        };
        let list = if audiences.is_empty() {
            MemberTimes::default()
        } else {
            let fields = t.profile.state.filter_json(now);
            let new = audiences.evaluate(&fields, &old.flags(audiences), &affected, now);
            record_changes(
                &mut batch,
                audiences,
                &t.profile.id,
                old,
                &new,
                &merged_away,
                now,
            )
        };
        after.insert(t.profile.id.clone(), list);
    }
    batch.upserts = resolved
        .touched
        .into_iter()
        .map(|t| {
            let members = after
                .get(&t.profile.id)
                .map(|list| list.to_list(audiences))
                .unwrap_or_default();
            ProfileWrite::new(t.profile).with_members(members)
        })
        .collect();
    let outcome = StepOutcome {
        events: scanned,
        profiles_touched: batch.upserts.len(),
        merges: batch.deletes.len(),
        changes: batch.changes.len(),
    };
    Prepared {
        overlay: Overlay::of(Arc::new(batch), audiences.clone(), after),
        outcome,
        last_seq,
        mapped: mapped.len(),
    }
}

/// Awaits a stage running on its own task.
async fn join<T>(task: JoinHandle<Result<T, CdpError>>) -> Result<T, CdpError> {
    task.await
        .unwrap_or_else(|e| Err(stopped("a profile batch stage", e)))
}

fn stopped(what: &str, e: tokio::task::JoinError) -> CdpError {
    CdpError::Store(crate::store::StoreError::backend(format!(
        "{what} stopped: {e}"
    )))
}

fn count_kinds(batch: &ProfileBatch) -> (u64, u64) {
    let enters = batch
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Enter)
        .count() as u64;
    (enters, batch.changes.len() as u64 - enters)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::Ordering;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::metrics::Metrics;
    use crate::store::{Audience, DynStore, NewEvent};

    const MAPPING: &str = "SELECT
        email(email) AS email KIND string,
        user_id AS user_id KIND string,
        count(*) AS visits KIND int,
        sum(amount) AS spent KIND number,
        country AS country KIND string
    FROM web INTO user BY email OR user_id";

    async fn cdp() -> (Cdp, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let cdp = Cdp::new(store.into(), Metrics::new());
        cdp.set_mapping("web", MAPPING).await.unwrap();
        (cdp, dir)
    }

    async fn send(cdp: &Cdp, stream: &str, events: Vec<Value>) {
        let events = events
            .into_iter()
            .map(|v| NewEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                fields: v.as_object().unwrap().clone().into(),
                origin: None,
            })
            .collect();
        cdp.stores()
            .events
            .append_events(stream, events)
            .await
            .unwrap();
    }

    fn audience(slug: &str, filter: &str) -> Audience {
        Audience {
            id: format!("id-{slug}"),
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            filter: filter.into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Reads every batch before computing any and commits only after computing all: each
    /// batch reads the store as it was before all the others and relies on their overlays.
    async fn apply_with_stale_reads(cdp: &Cdp, limit: u32) {
        let _guard = cdp.inner.write_lock.lock().await;
        let mut cursor = cdp
            .stores()
            .profiles
            .processor_position()
            .await
            .unwrap()
            .cursor;
        let mut loaded = Vec::new();
        while let Some(batch) = cdp.load(cursor, limit).await.unwrap() {
            cursor = batch.last_seq;
            loaded.push(batch);
        }
        let audiences = cdp.audiences().await.unwrap();
        let mut prepared: Vec<Prepared> = Vec::new();
        for batch in loaded {
            let overlays: Vec<&Overlay> = prepared.iter().map(|p| &p.overlay).collect();
            prepared.push(compute(batch, &audiences, &overlays, Utc::now()));
        }
        for p in &prepared {
            cdp.commit_prepared(p, Instant::now()).await.unwrap();
        }
    }

    /// The outbox after `seq` (up to 1,000 changes: more than any test here makes).
    async fn changes_after(cdp: &Cdp, seq: i64) -> Vec<crate::store::AudienceChange> {
        cdp.stores()
            .outbox
            .list_audience_changes(seq, 1000)
            .await
            .unwrap()
    }

    async fn fields_of(cdp: &Cdp, field: &str, value: &str) -> Option<(String, Value)> {
        let rows = cdp
            .stores()
            .profiles
            .lookup_identities(vec![(field.into(), value.into())])
            .await
            .unwrap();
        let row = rows.first()?;
        let p = cdp
            .stores()
            .profiles
            .get_profile(&row.profile_id)
            .await
            .unwrap();
        Some((p.id, p.state.to_json()))
    }

    #[tokio::test]
    async fn a_run_of_batches_ends_when_another_writer_waits() {
        let (cdp, _dir) = cdp().await;
        let events = (0..5)
            .map(|i| json!({"email": format!("p{i}@x.io"), "amount": i}))
            .collect();
        send(&cdp, "web", events).await;
        // As if an audience change were queued for the lock: one batch, then the run yields.
        cdp.inner.writers_waiting.fetch_add(1, Ordering::SeqCst);
        assert_eq!(cdp.run_batches(1, 100).await.unwrap(), 1);
        cdp.inner.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(cdp.run_batches(1, 100).await.unwrap(), 4);
        assert_eq!(cdp.stores().profiles.count_profiles().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn events_become_profiles_that_merge_and_never_count_twice() {
        let (cdp, _dir) = cdp().await;
        send(
            &cdp,
            "web",
            vec![
                json!({"email": "A@x.io", "amount": 10}),
                json!({"user_id": "u1", "amount": 5, "country": "us"}),
                json!({"name": "no identifier"}),
            ],
        )
        .await;
        send(&cdp, "unmapped", vec![json!({"email": "a@x.io"})]).await;
        assert_eq!(cdp.drain().await.unwrap(), 4);
        assert!(cdp
            .stores()
            .profiles
            .processor_lag()
            .await
            .unwrap()
            .is_empty());
        assert_eq!(cdp.stores().profiles.count_profiles().await.unwrap(), 2);
        let (a, fields) = fields_of(&cdp, "email", "a@x.io").await.unwrap();
        assert_eq!(fields["visits"], 1);
        let (b, _) = fields_of(&cdp, "user_id", "u1").await.unwrap();

        // A later batch links both identifiers: one person, and `b` resolves to `a`.
        send(
            &cdp,
            "web",
            vec![json!({"email": "a@x.io", "user_id": "u1", "amount": 1})],
        )
        .await;
        cdp.drain().await.unwrap();
        assert_eq!(cdp.stores().profiles.count_profiles().await.unwrap(), 1);
        let (id, fields) = fields_of(&cdp, "user_id", "u1").await.unwrap();
        assert_eq!(id, a);
        assert_eq!(fields["visits"], 3);
        assert_eq!(fields["spent"], 16.0);
        assert_eq!(fields["country"], "us");
        assert_eq!(cdp.stores().profiles.get_profile(&b).await.unwrap().id, a);

        // A second processor over the same store (a restart) finds nothing left to apply.
        let again = Cdp::new(cdp.stores().clone(), Metrics::new());
        assert_eq!(again.drain().await.unwrap(), 0);
        assert_eq!(
            fields_of(&again, "email", "a@x.io").await.unwrap().1["visits"],
            3
        );
    }

    /// The profile cache answers reads for profiles it saw committed; merges, a rebuild and
    /// a restart must never let it show a replaced state: the profiles always equal what the
    /// events add up to.
    #[tokio::test]
    async fn the_profile_cache_never_shows_a_replaced_state() {
        let (cdp, dir) = cdp().await;
        cdp.set_profile_cache_budget(1 << 20);
        let hits = || {
            cdp.metrics()
                .cdp_profile_cache_lookups
                .with_label_values(&["hit"])
                .get()
        };
        let check = |cdp: Cdp, visits: i64, spent: f64| async move {
            let (_, fields) = fields_of(&cdp, "user_id", "u1").await.unwrap();
            assert_eq!(fields["visits"], visits, "{fields}");
            assert_eq!(fields["spent"], spent, "{fields}");
        };
        send(
            &cdp,
            "web",
            vec![
                json!({"email": "a@x.io", "amount": 10}),
                json!({"user_id": "u1", "amount": 5}),
            ],
        )
        .await;
        cdp.drain().await.unwrap();
        // One batch per event from here: each reads what the one before committed.
        let one_by_one =
            |cdp: Cdp| async move { while cdp.run_batches(1, 1).await.unwrap() > 0 {} };
        send(&cdp, "web", vec![json!({"email": "a@x.io", "amount": 1})]).await;
        one_by_one(cdp.clone()).await;
        assert!(hits() > 0, "a's profile came from the cache");

        // u1 merges into a, then more events for both identifiers, each its own batch.
        send(
            &cdp,
            "web",
            vec![
                json!({"email": "a@x.io", "user_id": "u1", "amount": 2}),
                json!({"user_id": "u1", "amount": 3}),
                json!({"email": "a@x.io", "amount": 4}),
            ],
        )
        .await;
        one_by_one(cdp.clone()).await;
        assert_eq!(cdp.stores().profiles.count_profiles().await.unwrap(), 1);
        check(cdp.clone(), 6, 25.0).await;

        // A new audience's evaluation changes memberships without a profile write: the next
        // event must see the person as a member already (no second entry).
        cdp.create_audience(audience("big", "spent >= 20"))
            .await
            .unwrap();
        within("the new audience is evaluated", || async {
            changes_after(&cdp, 0).await.len() == 1
        })
        .await;
        send(&cdp, "web", vec![json!({"user_id": "u1", "amount": 1})]).await;
        one_by_one(cdp.clone()).await;
        let changes = changes_after(&cdp, 0).await;
        assert_eq!(changes.len(), 1, "one entry into big: {changes:?}");
        check(cdp.clone(), 7, 26.0).await;

        // A rebuild empties the cache and replays the log into the same sums.
        cdp.start_rebuild().await.unwrap();
        cdp.drain().await.unwrap();
        check(cdp.clone(), 7, 26.0).await;
        send(&cdp, "web", vec![json!({"user_id": "u1", "amount": 5})]).await;
        one_by_one(cdp.clone()).await;
        check(cdp.clone(), 8, 31.0).await;

        // A restart: a new processor over the store (its cache empty) goes on from there.
        let store: DynStore = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let again = Cdp::new(store.into(), Metrics::new());
        again.set_profile_cache_budget(1 << 20);
        send(&again, "web", vec![json!({"email": "a@x.io", "amount": 1})]).await;
        one_by_one(again.clone()).await;
        check(again.clone(), 9, 32.0).await;
    }

    #[tokio::test]
    async fn audience_entries_and_exits_are_in_the_outbox() {
        let (cdp, _dir) = cdp().await;
        cdp.create_audience(audience("buyers", "spent >= 10"))
            .await
            .unwrap();
        cdp.create_audience(audience("us_buyers", "country = \"us\" AND INCLUDE buyers"))
            .await
            .unwrap();
        send(
            &cdp,
            "web",
            vec![
                json!({"email": "a@x.io", "amount": 10, "country": "us"}),
                json!({"user_id": "u1", "amount": 5}),
            ],
        )
        .await;
        cdp.drain().await.unwrap();
        let changes = changes_after(&cdp, 0).await;
        let seen: Vec<(&str, ChangeKind)> = changes
            .iter()
            .map(|c| (c.audience_slug.as_str(), c.kind))
            .collect();
        assert_eq!(
            seen,
            [
                ("buyers", ChangeKind::Enter),
                ("us_buyers", ChangeKind::Enter)
            ]
        );
        let (a, _) = fields_of(&cdp, "email", "a@x.io").await.unwrap();
        assert_eq!(changes[0].profile_id, a);

        // u1 merges into a: the person stays in both; u1's profile had no memberships.
        send(
            &cdp,
            "web",
            vec![json!({"email": "a@x.io", "user_id": "u1", "country": "ca"})],
        )
        .await;
        cdp.drain().await.unwrap();
        let changes = changes_after(&cdp, changes[1].seq).await;
        let seen: Vec<(&str, &str, ChangeKind)> = changes
            .iter()
            .map(|c| (c.audience_slug.as_str(), c.profile_id.as_str(), c.kind))
            .collect();
        assert_eq!(seen, [("us_buyers", a.as_str(), ChangeKind::Exit)]);

        // Changing a filter re-evaluates everyone.
        cdp.update_audience(audience("buyers", "spent >= 100"))
            .await
            .unwrap();
        cdp.reevaluate(&["buyers".to_string()]).await.unwrap();
        let last = changes_after(&cdp, changes[0].seq).await;
        assert_eq!(last.len(), 1);
        assert_eq!(
            (last[0].audience_slug.as_str(), last[0].kind),
            ("buyers", ChangeKind::Exit)
        );
    }

    /// Polls `done` until it holds, for at most ten seconds.
    async fn within<F, Fut>(what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done().await {
            assert!(Instant::now() < deadline, "{what} did not happen in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn with_several_nodes_the_processors_node_does_what_another_node_is_asked() {
        let (setup, _dir) = cdp().await;
        let runs = Cdp::with_cluster(setup.stores().clone(), Metrics::new(), true);
        let other = Cdp::with_cluster(setup.stores().clone(), Metrics::new(), true);
        send(
            &setup,
            "web",
            (0..10)
                .map(|i| json!({"email": format!("p{i}@x.io"), "amount": i}))
                .collect(),
        )
        .await;
        let stop = CancellationToken::new();
        tokio::spawn(runs.clone().run_fenced(None, stop.clone()));
        tokio::spawn(runs.clone().follow_cluster(stop.clone()));
        let profiles = setup.stores().profiles.clone();
        within("the events are applied", || async {
            profiles.count_profiles().await.unwrap() == 10
        })
        .await;

        // An audience made through the other node: re-evaluated by the processor's node.
        other
            .create_audience(audience("all", "EXISTS visits"))
            .await
            .unwrap();
        let catalog = setup.stores().catalog.clone();
        within("the processor's node evaluates everyone", || async {
            catalog.list_audiences().await.unwrap()[0].1 == 10
        })
        .await;

        // A rebuild asked of the other node: it only asks; the processor's node resets.
        let asked = other.start_rebuild().await.unwrap();
        assert_eq!(asked.state, "running");
        within("the processor's node rebuilds", || async {
            let status = runs.rebuild_status().await.unwrap();
            (status.state, status.processed) == ("done", 10)
        })
        .await;
        assert_eq!(profiles.count_profiles().await.unwrap(), 10);
        stop.cancel();
    }

    #[tokio::test]
    async fn rebuild_replays_the_log_into_the_same_profiles() {
        let (cdp, _dir) = cdp().await;
        cdp.create_audience(audience("all", "EXISTS visits"))
            .await
            .unwrap();
        send(
            &cdp,
            "web",
            (0..30)
                .map(|i| json!({"email": format!("p{}@x.io", i % 7), "amount": i}))
                .collect(),
        )
        .await;
        cdp.drain().await.unwrap();
        let before = fields_of(&cdp, "email", "p3@x.io").await.unwrap().1;
        assert_eq!(cdp.rebuild_status().await.unwrap().state, "idle");
        let status = cdp.start_rebuild().await.unwrap();
        assert_eq!(
            (status.state, status.processed, status.total),
            ("running", 0, 30)
        );
        assert_eq!(cdp.stores().profiles.count_profiles().await.unwrap(), 0);
        cdp.drain().await.unwrap();
        let status = cdp.rebuild_status().await.unwrap();
        assert_eq!((status.state, status.processed), ("done", 30));
        assert_eq!(fields_of(&cdp, "email", "p3@x.io").await.unwrap().1, before);
        let changes = changes_after(&cdp, 0).await;
        // 7 enters, 7 exits at the reset, 7 enters again.
        assert_eq!(changes.len(), 21);
        assert_eq!(cdp.stores().catalog.list_audiences().await.unwrap()[0].1, 7);
    }

    #[tokio::test]
    async fn an_interrupted_reevaluation_resumes_after_a_restart() {
        let (cdp, _dir) = cdp().await;
        send(
            &cdp,
            "web",
            (0..5)
                .map(|i| json!({"email": format!("p{i}@x.io")}))
                .collect(),
        )
        .await;
        cdp.drain().await.unwrap();
        // A crash right after the audience and its pending entry were committed.
        let store = cdp.stores().clone();
        store
            .catalog
            .insert_audience(audience("all", "FILTER *"))
            .await
            .unwrap();
        store
            .profiles
            .commit_profile_batch(Arc::new(ProfileBatch {
                state: vec![(format!("{REEVALUATE_KEY}all"), Some(String::new()))],
                ..Default::default()
            }))
            .await
            .unwrap();
        let restarted = Cdp::new(store.clone(), Metrics::new());
        assert_eq!(restarted.reevaluate_persisted("all").await.unwrap(), 5);
        assert!(store
            .profiles
            .processor_state(REEVALUATE_KEY)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.catalog.list_audiences().await.unwrap()[0].1, 5);
        // Done means done: running it again changes nothing.
        assert_eq!(restarted.reevaluate_persisted("all").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn members_age_out_of_time_relative_audiences() {
        let (cdp, _dir) = cdp().await;
        cdp.set_mapping(
            "app",
            "SELECT email AS email KIND string, max(todate(ts)) AS last_seen KIND date
             FROM app INTO user BY email",
        )
        .await
        .unwrap();
        cdp.create_audience(audience("recent", "last_seen > \"now-3s\""))
            .await
            .unwrap();
        cdp.create_audience(audience("lapsed", "last_seen < \"now-3s\""))
            .await
            .unwrap();
        let now = Utc::now().timestamp_millis();
        send(&cdp, "app", vec![json!({"email": "a", "ts": now})]).await;
        cdp.drain().await.unwrap();
        let kinds = |cs: Vec<crate::store::AudienceChange>| {
            cs.into_iter()
                .map(|c| (c.audience_slug, c.kind))
                .collect::<Vec<_>>()
        };
        let first = cdp
            .stores()
            .outbox
            .list_audience_changes(0, 10)
            .await
            .unwrap();
        assert_eq!(
            kinds(first.clone()),
            [("recent".to_string(), ChangeKind::Enter)]
        );
        tokio::time::sleep(Duration::from_millis(3500)).await;
        // Members only: `recent` loses her; `lapsed` (entered by time) waits for a full sweep.
        assert_eq!(cdp.reevaluate_time_relative(true).await.unwrap(), 1);
        assert_eq!(cdp.reevaluate_time_relative(false).await.unwrap(), 1);
        let later = cdp
            .stores()
            .outbox
            .list_audience_changes(first[0].seq, 10)
            .await
            .unwrap();
        assert_eq!(
            kinds(later),
            [
                ("recent".to_string(), ChangeKind::Exit),
                ("lapsed".to_string(), ChangeKind::Enter)
            ]
        );
    }

    /// One random event: identifiers from small pools so merges happen often.
    fn arb_event() -> impl Strategy<Value = Value> {
        (
            proptest::option::of(0..4u8),
            proptest::option::of(0..4u8),
            0..50i64,
            proptest::option::of(prop_oneof![Just("us"), Just("ca")]),
        )
            .prop_map(|(e, u, amount, country)| {
                let mut v = json!({"amount": amount});
                if let Some(e) = e {
                    v["email"] = json!(format!("e{e}@x.io"));
                }
                if let Some(u) = u {
                    v["user_id"] = json!(format!("u{u}"));
                }
                if let Some(c) = country {
                    v["country"] = json!(c);
                }
                v
            })
    }

    const FILTERS: &[(&str, &str)] = &[
        ("frequent", "visits >= 3"),
        ("spender", "spent > 40"),
        ("us", "country = \"us\""),
        ("us_spender", "INCLUDE us AND INCLUDE spender"),
        ("not_us", "NOT INCLUDE us"),
        ("everyone", "FILTER *"),
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// After any event sequence, applied in any batch sizes: memberships equal a
        /// brute-force evaluation of every profile, replaying the outbox gives the same
        /// memberships, and profiles equal the events grouped by connected identifiers.
        #[test]
        fn membership_equals_brute_force(
            events in proptest::collection::vec(arb_event(), 1..40),
            batch in 1..12u32,
            audiences_first in any::<bool>(),
            mode in 0..3u8,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (cdp, _dir) = cdp().await;
                let create = |cdp: Cdp| async move {
                    for (slug, f) in FILTERS {
                        cdp.create_audience(audience(slug, f)).await.unwrap();
                        cdp.reevaluate(&[slug.to_string()]).await.unwrap();
                    }
                };
                if audiences_first {
                    create(cdp.clone()).await;
                }
                let half = events.len() / 2;
                // One step at a time; runs of batches read, computed and committed at once; or
                // every batch read before any commits (all reads as stale as they can be).
                let apply = |cdp: Cdp| async move {
                    match mode {
                        0 => while cdp.step(batch).await.unwrap().events > 0 {},
                        1 => while cdp.run_batches(batch, 6).await.unwrap() > 0 {},
                        _ => apply_with_stale_reads(&cdp, batch).await,
                    }
                };
                send(&cdp, "web", events[..half].to_vec()).await;
                apply(cdp.clone()).await;
                if !audiences_first {
                    create(cdp.clone()).await;
                }
                send(&cdp, "web", events[half..].to_vec()).await;
                apply(cdp.clone()).await;
                // Background re-evaluations spawned by create_audience may still run: they
                // are idempotent, wait for them by taking the lock once more.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = cdp.inner.write_lock.lock().await;

                let store = cdp.stores();
                let set = cdp.audiences().await.unwrap();
                let profiles: Vec<Profile> = store
                    .profiles.list_profiles(None, 1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect();
                let mut actual = BTreeSet::new();
                for (a, _) in store.catalog.list_audiences().await.unwrap() {
                    for m in store.profiles.list_members(&a.id, None, 1000).await.unwrap() {
                        actual.insert((a.slug.clone(), m.profile_id));
                    }
                }
                let mut expected = BTreeSet::new();
                for p in &profiles {
                    let all = vec![true; set.len()];
                    let none = vec![false; set.len()];
                    let m = set.evaluate(&p.state.to_json(), &none, &all, Utc::now());
                    for (i, a) in set.list.iter().enumerate() {
                        if m[i] {
                            expected.insert((a.audience.slug.clone(), p.id.clone()));
                        }
                    }
                }
                assert_eq!(&actual, &expected);

                // The outbox, replayed, gives the same memberships. Only members exit; an
                // enter repeats only for a merge survivor.
                let mut replay: BTreeMap<(String, String), bool> = BTreeMap::new();
                for c in store.outbox.list_audience_changes(0, 100_000).await.unwrap() {
                    let key = (c.audience_slug.clone(), c.profile_id.clone());
                    let was = replay.get(&key).copied().unwrap_or(false);
                    if c.kind == ChangeKind::Exit {
                        assert!(was, "{c:?} exits a non-member");
                    }
                    replay.insert(key, c.kind == ChangeKind::Enter);
                }
                let replayed: BTreeSet<_> = replay.into_iter().filter(|(_, m)| *m).map(|(k, _)| k).collect();
                assert_eq!(&replayed, &expected);

                // Profiles: connected components of identifiers, visits and spent summed.
                let mut comps: Vec<(BTreeSet<String>, i64, i64)> = Vec::new();
                for e in &events {
                    let ids: BTreeSet<String> = ["email", "user_id"]
                        .iter()
                        .filter_map(|k| e.get(*k).and_then(Value::as_str).map(|v| format!("{k}:{v}")))
                        .collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let amount = e["amount"].as_i64().unwrap();
                    let (mut joined, mut rest): (Vec<_>, Vec<_>) =
                        comps.into_iter().partition(|c| !c.0.is_disjoint(&ids));
                    let mut c = (ids, 1, amount);
                    for j in joined.drain(..) {
                        c.0.extend(j.0);
                        c.1 += j.1;
                        c.2 += j.2;
                    }
                    rest.push(c);
                    comps = rest;
                }
                assert_eq!(profiles.len(), comps.len());
                for (ids, visits, spent) in comps {
                    let any = ids.iter().next().unwrap();
                    let (field, value) = any.split_once(':').unwrap();
                    let (_, fields) = fields_of(&cdp, field, value).await.unwrap();
                    assert_eq!(fields["visits"], visits);
                    assert_eq!(fields["spent"].as_f64().unwrap(), spent as f64);
                }
            });
        }
    }
}
