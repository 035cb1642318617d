//! Jobs: their configuration, and the manager that runs, pauses, resumes and stops them.
//!
//! A job's durable state lives in the store (`running`, `paused`, `failed` + `last_error`); the
//! manager holds only the tasks of jobs running in this process. On start the server resumes
//! every job the store says is `running`, from its checkpoints.
//!
//! Work is done only under a claim ([`crate::cluster`]): alone that is always; with several
//! nodes on one store, one node at a time runs an export job or reads a shard of an import
//! job, its writes fenced, and every node follows the jobs' states in the store
//! ([`JobManager::follow_store`]) so a pause, resume or delete made through any node's API
//! reaches the nodes doing the work.

pub mod config;
pub mod export;
pub mod import;
pub mod retention;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::aws::{AwsAccess, AwsError};
use crate::cluster::{export_lease, Membership};
use crate::kinesis::backoff::{sleep_unless_cancelled, Backoff};
use crate::kinesis::consumer::ConsumeError;
use crate::metrics::Metrics;
use crate::store::{ControlStore, DynStore, Job, JobState, StoreError};
use config::JobConfig;
pub use import::FieldError;

/// How often, with several nodes, each node compares the jobs it runs with the store's states.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How long a stopping job may take to reach a consistent point (finish the batch it is
/// committing) before it is abandoned. Its last checkpoint still holds: nothing is lost.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long an export job's runs may keep ending on store errors before the job fails with the
/// error: an outage of the store shorter than this delays the job, a longer one is reported.
const STORE_OUTAGE_GRACE: Duration = Duration::from_secs(120);

struct Running {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// What jobs use: the store (each job takes the roles it needs), AWS access as a user's
/// authorization, metrics, and the claims that say which work this node does.
#[derive(Clone)]
pub struct JobContext {
    pub store: DynStore,
    pub aws: AwsAccess,
    pub metrics: Metrics,
    pub membership: Membership,
    /// The suppression list import jobs drop events by.
    pub suppressions: crate::cdp::erasure::Suppressions,
}

/// Why a job stopped for good. Its text is the job's `last_error`, for the person who reads
/// it in the UI: it says what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the job's configuration is invalid ({0}); delete it and create it again")]
    InvalidConfig(#[source] serde_json::Error),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error("Tributary's store failed: {0}")]
    Store(#[from] StoreError),
}

/// The jobs running in this process.
#[derive(Clone)]
pub struct JobManager {
    context: JobContext,
    running: Arc<Mutex<HashMap<String, Running>>>,
}

type JobWork = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), JobError>> + Send>>;

impl JobManager {
    pub fn new(context: JobContext) -> Self {
        Self {
            context,
            running: Arc::default(),
        }
    }

    /// Starts `job` unless it is already running here.
    pub fn start(&self, job: &Job) {
        let mut running = self.running.lock().expect("job map lock");
        running.retain(|_, r| !r.handle.is_finished());
        if running.contains_key(&job.id) {
            return;
        }
        let cancel = CancellationToken::new();
        let work = job_work(self.context.clone(), job.clone(), cancel.clone());
        let control: Arc<dyn ControlStore> = self.context.store.clone();
        let handle = tokio::spawn(supervise(control, job.id.clone(), work));
        tracing::info!(job = %job.id, label = %job.label, kind = job.job_type.as_str(), "job started");
        running.insert(job.id.clone(), Running { cancel, handle });
    }

    /// Stops a job at a consistent point and waits for it.
    pub async fn stop(&self, job_id: &str) {
        let entry = self.running.lock().expect("job map lock").remove(job_id);
        if let Some(r) = entry {
            r.cancel.cancel();
            if tokio::time::timeout(STOP_GRACE, r.handle).await.is_err() {
                tracing::warn!(
                    job = job_id,
                    "job did not stop in time; its last checkpoint stands"
                );
            }
        }
    }

    /// Stops every job (server shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<(String, Running)> =
            self.running.lock().expect("job map lock").drain().collect();
        for (_, r) in &all {
            r.cancel.cancel();
        }
        for (id, r) in all {
            if tokio::time::timeout(STOP_GRACE, r.handle).await.is_err() {
                tracing::warn!(job = %id, "job did not stop in time; its last checkpoint stands");
            }
        }
    }

    pub fn is_running(&self, job_id: &str) -> bool {
        self.running
            .lock()
            .expect("job map lock")
            .get(job_id)
            .is_some_and(|r| !r.handle.is_finished())
    }

    /// With several nodes: every [`FOLLOW_EVERY`], starts the jobs the store says are running
    /// and stops the others, until `shutdown` (alone the API's calls keep them in step).
    pub async fn follow_store(self, shutdown: CancellationToken) {
        if !self.context.membership.is_clustered() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            if let Err(e) = self.follow_once().await {
                tracing::warn!(error = %e, "cannot read the jobs' states; retrying");
            }
        }
    }

    async fn follow_once(&self) -> Result<(), StoreError> {
        let jobs = self.context.store.list_jobs().await?;
        let wanted: HashMap<&str, &Job> = jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .map(|j| (j.id.as_str(), j))
            .collect();
        let unwanted: Vec<String> = self
            .running
            .lock()
            .expect("job map lock")
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in unwanted {
            self.stop(&id).await;
        }
        for job in wanted.values() {
            self.start(job);
        }
        Ok(())
    }

    /// Resumes every job the store marks as running.
    pub async fn resume_all(&self) -> Result<usize, StoreError> {
        let jobs = self.context.store.list_jobs().await?;
        let mut n = 0;
        for job in jobs.iter().filter(|j| j.state == JobState::Running) {
            self.start(job);
            n += 1;
        }
        Ok(n)
    }
}

/// A job's work, until `cancel`. The one place a job's type decides what runs.
fn job_work(ctx: JobContext, job: Job, cancel: CancellationToken) -> JobWork {
    match JobConfig::of(&job) {
        // The consumer claims each shard on its own (see `crate::kinesis::consumer`).
        Ok(JobConfig::KinesisImport(config)) => Box::pin(import::run(ctx, job, config, cancel)),
        // One node at a time runs an export job.
        Ok(JobConfig::KinesisExport(config)) => {
            Box::pin(export_when_claimed(ctx, job, config, cancel))
        }
        Err(e) => Box::pin(std::future::ready(Err(JobError::InvalidConfig(e)))),
    }
}

/// Runs an export job whenever this node holds its claim, until `cancel`. A lost claim (the
/// lease moved to another node) stops the work at a consistent point and waits for the next
/// claim; it is not the job's failure, and neither is a write refused for it.
async fn export_when_claimed(
    ctx: JobContext,
    job: Job,
    config: export::ExportConfig,
    cancel: CancellationToken,
) -> Result<(), JobError> {
    let lease = export_lease(&job.id);
    // Since when runs have been ending on store errors (see `STORE_OUTAGE_GRACE`).
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        let claim = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            claim = ctx.membership.claim_when_possible(&lease) => claim,
        };
        let started = Instant::now();
        let stop = cancel.child_token();
        let work = export::run(
            ctx.clone(),
            job.clone(),
            config.clone(),
            claim.fence().cloned(),
            stop.clone(),
        );
        tokio::pin!(work);
        let result = tokio::select! {
            result = &mut work => result,
            _ = claim.token().cancelled() => {
                stop.cancel();
                work.await
            }
        };
        if cancel.is_cancelled() {
            return result;
        }
        let lost =
            claim.is_lost() || matches!(result, Err(JobError::Store(StoreError::LeaseLost { .. })));
        if !lost {
            if started.elapsed() >= STORE_OUTAGE_GRACE {
                failing_since = None;
                backoff.reset();
            }
            match result {
                // The store was unreachable or busy: the next run starts from the last
                // acknowledged round (records of the failed one may be sent again: at least
                // once). Failing the job would stop it on every node, for a blip.
                Err(JobError::Store(e))
                    if e.is_transient()
                        && failing_since.get_or_insert_with(Instant::now).elapsed()
                            < STORE_OUTAGE_GRACE =>
                {
                    tracing::warn!(job = %job.id, error = %e, "export stopped on a store error; resuming from its last acknowledged round");
                    drop(claim);
                    if !sleep_unless_cancelled(&cancel, backoff.next_delay()).await {
                        return Ok(());
                    }
                    continue;
                }
                result => return result,
            }
        }
        match result {
            Ok(()) => tracing::info!(job = %job.id, "export job moved to another node"),
            Err(e) => {
                tracing::info!(job = %job.id, error = %e, "export job moved to another node mid-write")
            }
        }
    }
}

/// Runs a job's work to its end; a failure becomes the job's `failed` state and `last_error`.
async fn supervise(
    control: Arc<dyn ControlStore>,
    job_id: String,
    work: impl std::future::Future<Output = Result<(), JobError>>,
) {
    if let Err(err) = work.await {
        let message = err.to_string();
        tracing::error!(job = %job_id, error = %message, "job failed");
        if let Err(e) = control
            .set_job_state(&job_id, JobState::Failed, Some(&message))
            .await
        {
            tracing::error!(job = %job_id, error = %e, "could not record the job's failure");
        }
    }
}
