//! Putting a set of records until Kinesis has accepted every one: batches chosen by
//! [`next_batch`] (limits, one record per partition key), exactly the failed entries sent again
//! with exponential backoff, whole-call throttles and outages backed off and retried.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::batcher::{next_batch, PendingRecord};
use crate::aws::AwsError;
use crate::kinesis::api::{put_records, PutOutcome};
use crate::kinesis::backoff::{sleep_unless_cancelled as sleep, Backoff};
use crate::metrics::ExportMetrics;

pub struct Sender {
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
    pub metrics: ExportMetrics,
    pub job_id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every record was accepted: `(record id, when Kinesis acknowledged it)`.
    Done(Vec<(u64, DateTime<Utc>)>),
    /// Stopped between calls; records not yet acknowledged are still to be sent.
    Cancelled,
}

impl Sender {
    /// Sends `pending` (in change order) until all are accepted. Errors are only those that
    /// retrying cannot fix (access revoked, stream missing, …).
    pub async fn send_all(
        &self,
        mut pending: Vec<PendingRecord>,
        cancel: &CancellationToken,
    ) -> Result<SendOutcome, AwsError> {
        let job = self.job_id.as_str();
        let mut acked = Vec::with_capacity(pending.len());
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(10));
        while !pending.is_empty() {
            if cancel.is_cancelled() {
                return Ok(SendOutcome::Cancelled);
            }
            let batch = next_batch(&pending);
            let entries: Vec<(&str, &[u8])> = batch
                .iter()
                .map(|&i| {
                    (
                        pending[i].partition_key.as_str(),
                        pending[i].data.as_slice(),
                    )
                })
                .collect();
            self.metrics
                .batch_size
                .with_label_values(&[job])
                .observe(entries.len() as f64);
            let outcomes = match put_records(&self.client, &self.stream, &entries).await {
                Ok(outcomes) => outcomes,
                Err(e) if e.kind.is_retryable() => {
                    self.metrics.throttles.with_label_values(&[job]).inc();
                    self.metrics
                        .retries
                        .with_label_values(&[job])
                        .inc_by(entries.len() as u64);
                    tracing::debug!(job, error = %e, "PutRecords failed; backing off");
                    if !sleep(cancel, backoff.next_delay()).await {
                        return Ok(SendOutcome::Cancelled);
                    }
                    continue;
                }
                Err(e) => {
                    self.metrics.failures.with_label_values(&[job]).inc();
                    return Err(e);
                }
            };
            let now = Utc::now();
            let mut accepted = vec![false; pending.len()];
            let mut failed = 0u64;
            for (&i, outcome) in batch.iter().zip(&outcomes) {
                match outcome {
                    PutOutcome::Accepted { .. } => {
                        accepted[i] = true;
                        acked.push((pending[i].id, now));
                    }
                    PutOutcome::Failed { code, message } => {
                        failed += 1;
                        if code.contains("Throughput") || code.contains("Throttl") {
                            self.metrics.throttles.with_label_values(&[job]).inc();
                        }
                        tracing::debug!(
                            job,
                            code,
                            message,
                            "PutRecords entry failed; it will be sent again"
                        );
                    }
                }
            }
            self.metrics
                .records_sent
                .with_label_values(&[job])
                .inc_by(batch.len() as u64 - failed);
            // Keep the failed entries where they were: they stay ahead of their keys' later records.
            let mut i = 0;
            pending.retain(|_| {
                let keep = !accepted[i];
                i += 1;
                keep
            });
            if failed > 0 {
                self.metrics
                    .retries
                    .with_label_values(&[job])
                    .inc_by(failed);
                if !sleep(cancel, backoff.next_delay()).await {
                    return Ok(SendOutcome::Cancelled);
                }
            } else {
                backoff.reset();
            }
        }
        Ok(SendOutcome::Done(acked))
    }
}
