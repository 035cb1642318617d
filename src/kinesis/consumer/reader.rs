//! One shard's reader: iterator → GetRecords → decode → commit (events, dead letters and the
//! checkpoint in one transaction) → next iterator, until the shard ends or the job stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::batch::{decode_page, Origin};
use super::ConsumeError;
use crate::aws::AwsErrorKind;
use crate::kinesis::api::{get_records, get_shard_iterator, IteratorStart, RecordsPage};
use crate::kinesis::backoff::{sleep_unless_cancelled as sleep, Backoff};
use crate::metrics::Metrics;
use crate::store::{
    Fence, ImportStore, ShardBatch, ShardCheckpoint, ShardState, StartPosition, StoreError,
};

/// Kinesis allows 5 GetRecords calls per second per shard.
const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// An idle shard (nothing returned, nothing behind) is polled at most once a second.
const IDLE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Progress of an idle shard (lag) is written at most this often.
const IDLE_COMMIT_INTERVAL: Duration = Duration::from_secs(10);
/// How long a fenced page commit is retried while its claim holds (see [`commit_with_retry`]).
const FENCED_COMMIT_GIVE_UP: Duration = Duration::from_secs(120);
/// A new iterator rejected this many times in a row means something is wrong, not stale.
const MAX_ITERATOR_RENEWALS: u32 = 5;

pub struct ShardContext {
    pub store: Arc<dyn ImportStore>,
    /// Pages decoded or being committed at once, across the job's shards.
    pub pages_in_flight: Arc<tokio::sync::Semaphore>,
    pub client: aws_sdk_kinesis::Client,
    pub metrics: Metrics,
    /// See [`super::EventFilter`].
    pub filter: Option<Arc<dyn super::EventFilter>>,
    pub job_id: String,
    pub event_stream: String,
    pub kinesis_stream: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReaderExit {
    /// The shard is closed and every record of it is stored.
    Finished,
    Cancelled,
}

/// Reads `checkpoint.shard_id` from where its checkpoint says. Returns an error only for
/// failures that retrying cannot fix (stream gone, access revoked, …).
///
/// `start_at_tip`: the first iterator of a shard without a checkpoint is LATEST instead of the
/// stored start position (a `latest` job's shards, in the run that registered them). A renewed
/// iterator (expired before a record was read) uses the stored position again, or the records
/// that arrived in between would be skipped.
pub async fn read_shard(
    ctx: Arc<ShardContext>,
    mut checkpoint: ShardCheckpoint,
    mut start_at_tip: bool,
    fence: Option<Fence>,
    cancel: CancellationToken,
) -> Result<ReaderExit, ConsumeError> {
    let shard_id = checkpoint.shard_id.clone();
    let job = ctx.job_id.as_str();
    let lag_gauge = ctx
        .metrics
        .millis_behind_latest
        .with_label_values(&[job, &shard_id]);
    let calls = ctx.metrics.get_records_calls.with_label_values(&[job]);
    let throttles = ctx.metrics.get_records_throttles.with_label_values(&[job]);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut iterator: Option<String> = None;
    let mut renewals = 0u32;
    let mut last_call: Option<Instant> = None;
    let mut last_commit = Instant::now();
    let mut last_lag: Option<i64> = None;
    let mut in_flight: Option<JoinHandle<Result<(), ConsumeError>>> = None;
    let result: Result<ReaderExit, ConsumeError> = loop {
        if cancel.is_cancelled() {
            break Ok(ReaderExit::Cancelled);
        }
        let it = match &iterator {
            Some(it) => it.clone(),
            None => {
                let start = match &checkpoint.sequence_number {
                    Some(seq) => IteratorStart::AfterSequence(seq.clone()),
                    None if start_at_tip => IteratorStart::Latest,
                    None => match &checkpoint.start_position {
                        StartPosition::TrimHorizon => IteratorStart::TrimHorizon,
                        StartPosition::Latest => IteratorStart::Latest,
                        StartPosition::AtTimestamp(t) => IteratorStart::AtTimestamp(*t),
                    },
                };
                match get_shard_iterator(&ctx.client, &ctx.kinesis_stream, &shard_id, &start).await
                {
                    Ok(it) => {
                        iterator = Some(it.clone());
                        start_at_tip = false;
                        it
                    }
                    Err(e) if e.kind.is_retryable() => {
                        throttles.inc();
                        if !sleep(&cancel, backoff.next_delay()).await {
                            break Ok(ReaderExit::Cancelled);
                        }
                        continue;
                    }
                    Err(e) => break Err(e.into()),
                }
            }
        };

        if let Some(at) = last_call {
            let wait = MIN_CALL_INTERVAL.saturating_sub(at.elapsed());
            if !wait.is_zero() && !sleep(&cancel, wait).await {
                break Ok(ReaderExit::Cancelled);
            }
        }
        last_call = Some(Instant::now());
        calls.inc();
        let page = match get_records(&ctx.client, &it).await {
            Ok(page) => page,
            Err(e) => match e.kind {
                // Iterators live five minutes; a fresh one from the checkpoint loses nothing.
                AwsErrorKind::ExpiredIterator | AwsErrorKind::InvalidArgument
                    if renewals < MAX_ITERATOR_RENEWALS =>
                {
                    tracing::debug!(job, shard = %shard_id, error = %e, "renewing shard iterator");
                    renewals += 1;
                    iterator = None;
                    continue;
                }
                kind if kind.is_retryable() => {
                    throttles.inc();
                    let delay = backoff.next_delay();
                    tracing::debug!(job, shard = %shard_id, error = %e, ?delay, "GetRecords failed; backing off");
                    if !sleep(&cancel, delay).await {
                        break Ok(ReaderExit::Cancelled);
                    }
                    continue;
                }
                _ => break Err(e.into()),
            },
        };
        backoff.reset();
        renewals = 0;

        let RecordsPage {
            records,
            next_iterator,
            millis_behind_latest,
        } = page;
        let shard_ended = next_iterator.is_none();
        let idle = records.is_empty() && millis_behind_latest.unwrap_or(0) == 0;
        if let Some(lag) = millis_behind_latest {
            lag_gauge.set(lag);
        }
        let lag_changed = millis_behind_latest != last_lag;
        let must_commit = !records.is_empty()
            || shard_ended
            || (lag_changed && last_commit.elapsed() >= IDLE_COMMIT_INTERVAL);
        if must_commit {
            // Commits stay in page order: the previous one lands before this one starts, while
            // the next GetRecords already runs beside it.
            if let Some(previous) = in_flight.take() {
                if let Err(e) = finish_commit(previous).await {
                    break Err(e);
                }
            }
            if let Some(last) = records.last() {
                checkpoint.sequence_number = Some(last.sequence_number.clone());
            }
            checkpoint.state = if shard_ended {
                ShardState::Finished
            } else {
                ShardState::Reading
            };
            checkpoint.millis_behind_latest = millis_behind_latest;
            // Bounded decoded pages per job: memory stays flat however far behind the shards are.
            let permit = ctx
                .pages_in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the page semaphore is never closed");
            let page = PageCommit {
                ctx: ctx.clone(),
                checkpoint: checkpoint.clone(),
                records,
                fence: fence.clone(),
                stop: cancel.clone(),
            };
            in_flight = Some(tokio::spawn(async move {
                let _permit = permit;
                page.run().await
            }));
            last_commit = Instant::now();
            last_lag = millis_behind_latest;
        }
        if shard_ended {
            tracing::info!(job, shard = %shard_id, "shard closed and fully read");
            break Ok(ReaderExit::Finished);
        }
        iterator = next_iterator;
        if idle
            && !sleep(
                &cancel,
                IDLE_POLL_INTERVAL.saturating_sub(MIN_CALL_INTERVAL),
            )
            .await
        {
            break Ok(ReaderExit::Cancelled);
        }
    };
    // Whatever ends the loop, the page being committed lands first: a consistent point.
    if let Some(last) = in_flight.take() {
        finish_commit(last).await?;
    }
    result
}

/// One page on its way into the store: decoded off the async workers, then committed with its
/// checkpoint in one transaction.
struct PageCommit {
    ctx: Arc<ShardContext>,
    checkpoint: ShardCheckpoint,
    records: Vec<crate::kinesis::api::KinesisRecord>,
    /// The shard's lease with several nodes (see `crate::cluster`).
    fence: Option<Fence>,
    /// The reader's stop signal (see [`commit_with_retry`]).
    stop: CancellationToken,
}

impl PageCommit {
    async fn run(self) -> Result<(), ConsumeError> {
        let PageCommit {
            ctx,
            checkpoint,
            records,
            fence,
            stop,
        } = self;
        let job = ctx.job_id.clone();
        let records_in = records.len() as u64;
        let decode_ctx = ctx.clone();
        let shard = checkpoint.shard_id.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let origin = Origin {
                event_stream: &decode_ctx.event_stream,
                kinesis_stream: &decode_ctx.kinesis_stream,
                shard_id: &shard,
            };
            let mut page = decode_page(&origin, &records);
            let suppressed = match &decode_ctx.filter {
                Some(f) => f.drop_suppressed(&decode_ctx.event_stream, &mut page.events),
                None => 0,
            };
            (page, suppressed)
        })
        .await
        .map_err(|source| ConsumeError::Crashed {
            what: "decoding a page",
            source,
        })?;
        let (decoded, suppressed) = decoded;
        let batch = ShardBatch {
            job_id: job.clone(),
            stream: ctx.event_stream.clone(),
            events: decoded.events,
            dead_letters: decoded.dead_letters,
            records_in,
            suppressed,
            checkpoint: ShardCheckpoint {
                sequence_number: decoded.last_sequence_number,
                sub_sequence_number: decoded.last_sub_sequence_number,
                ..checkpoint
            },
            fence,
        };
        let timer = ctx
            .metrics
            .batch_commit_seconds
            .with_label_values(&[&job])
            .start_timer();
        let outcome = commit_with_retry(&ctx.store, batch, &stop).await?;
        timer.observe_duration();
        let m = &ctx.metrics;
        m.import_records_in
            .with_label_values(&[&job])
            .inc_by(records_in);
        m.import_events_out
            .with_label_values(&[&job])
            .inc_by(outcome.events_inserted);
        m.import_dead_letters
            .with_label_values(&[&job])
            .inc_by(outcome.dead_letters_inserted);
        if suppressed > 0 {
            m.lifecycle
                .suppressed_events
                .with_label_values(&[&job])
                .inc_by(suppressed);
        }
        Ok(())
    }
}

async fn finish_commit(handle: JoinHandle<Result<(), ConsumeError>>) -> Result<(), ConsumeError> {
    handle.await.map_err(|source| ConsumeError::Crashed {
        what: "a commit task",
        source,
    })?
}

/// A commit that fails (disk full, database locked for long) is retried: the batch is still in
/// hand, and giving up would mean reading it again anyway. It is not abandoned on pause or
/// shutdown either — stopping waits for it — only after repeated failures.
///
/// With several nodes (a fenced batch) it is retried for longer, and abandoned once the reader
/// is stopped: the store is
/// unreachable from here (the claim went unrenewed) or the shard moves, and whoever reads it
/// next starts from the stored checkpoint, which this batch did not move (or moved atomically
/// with its events). Failing the job instead would stop it on every node, for an outage of one.
async fn commit_with_retry(
    store: &Arc<dyn ImportStore>,
    batch: ShardBatch,
    stop: &CancellationToken,
) -> Result<crate::store::BatchOutcome, ConsumeError> {
    let batch = Arc::new(batch);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let failing_since = Instant::now();
    loop {
        match store.commit_shard_batch(batch.clone()).await {
            Ok(outcome) => return Ok(outcome),
            // Another node took the shard over: retrying cannot help, and it reads on from
            // the shard's last committed checkpoint.
            Err(e @ StoreError::LeaseLost { .. }) => return Err(ConsumeError::Store(e)),
            Err(e) => {
                tracing::warn!(job = %batch.job_id, shard = %batch.checkpoint.shard_id, error = %e, "commit failed; retrying");
                if let Some(fence) = batch.fence.as_ref().filter(|_| stop.is_cancelled()) {
                    return Err(ConsumeError::Store(StoreError::LeaseLost {
                        lease: fence.lease.clone(),
                    }));
                }
                // Fenced, an outage ends the claim (above) well before this: what is left is a
                // failure of this write itself, which the job's state must show.
                let gave_up = match &batch.fence {
                    Some(_) => failing_since.elapsed() >= FENCED_COMMIT_GIVE_UP,
                    None => backoff.attempts() >= 8,
                };
                if gave_up {
                    return Err(ConsumeError::Commit(e));
                }
                let delay = backoff.next_delay();
                match &batch.fence {
                    Some(_) => {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                    None => tokio::time::sleep(delay).await,
                }
            }
        }
    }
}
