//! The retention task: every [`EVERY`], deletes what has outlived its limit — events past
//! their stream's retention (never one the profile processor has not applied), dead letters,
//! and audience changes every running export job has published — in batches of [`BATCH`] rows,
//! each its own short transaction with a pause ([`PAUSE`]) between, so imports and the
//! processor wait for at most one batch and keep most of the store's write time. Then some
//! freed space goes back to the file system and the store's sizes go to `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::metrics::Metrics;
use crate::store::{DynStore, JobState, JobType, StoreResult, Timestamp};

/// How often a pass runs: a row is deleted within this (plus the pass) of becoming due.
pub const EVERY: Duration = Duration::from_secs(15);
/// Rows per delete transaction.
pub const BATCH: u32 = 500;
/// The pause between two batches, during which other writers go first. Long enough that
/// deleting costs a saturating import less than a tenth of its throughput on SQLite (one
/// writer; `cargo bench --bench retention`, bench/README.md), short enough to delete ~5,000
/// events/s under that import and ~7,000/s without: a faster sustained import outruns
/// retention, which catches up when the import slows.
pub const PAUSE: Duration = Duration::from_millis(60);

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub events: u64,
    pub dead_letters: u64,
    pub audience_changes: u64,
}

#[derive(Clone)]
pub struct Retention {
    pub store: DynStore,
    pub settings: RetentionSettings,
    pub metrics: Metrics,
}

fn cutoff(age: Duration) -> Timestamp {
    Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

impl Retention {
    /// Runs passes until `shutdown`, while `active()` says this node is the one to (alone:
    /// always; with several nodes: the node running the profile processor).
    pub async fn run(
        self,
        active: Arc<dyn Fn() -> bool + Send + Sync>,
        shutdown: CancellationToken,
    ) {
        loop {
            if active() {
                match self.pass(&shutdown).await {
                    Ok(r) if r != PassReport::default() => {
                        tracing::info!(
                            events = r.events,
                            dead_letters = r.dead_letters,
                            audience_changes = r.audience_changes,
                            "retention deleted old rows"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention pass failed; the next one retries")
                    }
                }
            }
            if let Err(e) = self.measure().await {
                tracing::warn!(error = %e, "cannot measure the store's size");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// One pass over everything retention covers.
    pub async fn pass(&self, shutdown: &CancellationToken) -> StoreResult<PassReport> {
        let store = &self.store;
        let mut report = PassReport::default();
        let applied = store.processor_position().await?.cursor;
        let own: std::collections::HashMap<String, Option<i64>> = store
            .list_stream_retention()
            .await?
            .into_iter()
            .map(|r| (r.stream, r.max_age_secs))
            .collect();
        for stream in store.list_streams().await? {
            let age = match own.get(&stream.name) {
                Some(secs) => secs.map(|s| Duration::from_secs(s.max(0) as u64)),
                None => self.settings.default_max_age,
            };
            let Some(age) = age else { continue };
            let before = cutoff(age);
            report.events += self
                .batches(shutdown, "events", || {
                    store.prune_events(&stream.name, before, applied, BATCH)
                })
                .await?;
        }
        if let Some(age) = self.settings.dead_letter_max_age {
            let before = cutoff(age);
            report.dead_letters += self
                .batches(shutdown, "dead_letters", || {
                    store.prune_dead_letters(before, BATCH)
                })
                .await?;
        }
        if let Some(age) = self.settings.outbox_max_age {
            let before = cutoff(age);
            let acknowledged = self.acknowledged().await?;
            report.audience_changes += self
                .batches(shutdown, "audience_changes", || {
                    store.prune_audience_changes(before, acknowledged, BATCH)
                })
                .await?;
        }
        if report != PassReport::default() {
            store.reclaim_space().await?;
        }
        Ok(report)
    }

    /// The outbox position every running export job has published (a paused job is told what
    /// it missed when it resumes). The newest change always stays: the outbox's head is read
    /// from it, and new export jobs start there.
    async fn acknowledged(&self) -> StoreResult<i64> {
        let mut upto = self.store.audience_change_head().await? - 1;
        for job in self.store.list_jobs().await? {
            if job.job_type == JobType::KinesisExport && job.state == JobState::Running {
                let cursor = self
                    .store
                    .get_export_progress(&job.id)
                    .await?
                    .map_or(0, |p| p.cursor);
                upto = upto.min(cursor);
            }
        }
        Ok(upto)
    }

    /// Runs `prune` until it deletes less than a batch (or `shutdown`), pausing between.
    async fn batches<'a, F, Fut>(
        &self,
        shutdown: &CancellationToken,
        kind: &str,
        mut prune: F,
    ) -> StoreResult<u64>
    where
        F: FnMut() -> Fut + 'a,
        Fut: std::future::Future<Output = StoreResult<u64>> + 'a,
    {
        let mut total = 0;
        loop {
            let n = prune().await?;
            total += n;
            self.metrics
                .lifecycle
                .retention_deleted
                .with_label_values(&[kind])
                .inc_by(n);
            if n < u64::from(BATCH) || shutdown.is_cancelled() {
                return Ok(total);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// The store's file sizes and rows into `/metrics`.
    pub async fn measure(&self) -> StoreResult<()> {
        let sizes = self.store.store_sizes().await?;
        let m = &self.metrics.lifecycle;
        for (file, bytes) in &sizes.files {
            m.store_file_bytes
                .with_label_values(&[file])
                .set(*bytes as i64);
        }
        for (table, rows) in &sizes.rows {
            m.store_rows.with_label_values(&[table]).set(*rows as i64);
        }
        Ok(())
    }
}
