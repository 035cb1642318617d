//! The Export Audience Triggers job: every entry into and exit from the chosen audiences
//! published to a Kinesis stream, per user in change order, at least once.
//!
//! The job works in rounds. A round takes the next audience changes from the outbox (and, while
//! a backfill runs, a page of current members), builds one record per change, has the
//! [`Sender`] put them until Kinesis accepted every one, and then commits the round: the new
//! outbox cursor, backfill progress, counters and dead letters in one transaction. A crash
//! mid-round sends that round again: duplicates are possible but rare, and carry the same
//! `change_id`; nothing is lost.
//!
//! Backfill and live changes stay consistent: each backfill page is read in one snapshot with
//! the outbox head, and the live changes up to that head are put before the page's 'enter's,
//! the live changes after it after them — so a user who leaves right after the snapshot gets
//! the 'exit' after the backfilled 'enter'.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::import::FieldError;
use super::{JobContext, JobError};
use crate::aws::AwsError;
use crate::cdp::MappingRegistry;
use crate::kinesis::backoff::{sleep_unless_cancelled, Backoff};
use crate::kinesis::producer::limits::{partition_key, MAX_RECORD_BYTES};
use crate::kinesis::producer::{PendingRecord, SendOutcome, Sender};
use crate::store::{
    AudienceChange, BackfillProgress, CatalogStore, ChangeKind, DynStore, ExportProgress,
    ExportRound, Fence, Job, Membership, NewDeadLetter, OutboxStore, Profile, ProfileStore,
    StoreError,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Audience slugs whose entries and exits are published.
    pub audiences: Vec<String>,
    /// The Kinesis stream's AWS region, like `us-east-1`.
    pub region: String,
    /// A role to assume (with the authorization as source) to reach the stream.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The Kinesis data stream to write.
    pub kinesis_stream: String,
    /// The profile field whose value is the partition key; the profile id when unset or absent.
    #[serde(default)]
    pub user_identifier_field: Option<String>,
    /// Profile fields put in each record; empty means all.
    #[serde(default)]
    pub export_fields: Vec<String>,
    /// Send every current member once as an 'enter' when the job starts.
    #[serde(default)]
    pub existing_users: bool,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl ExportConfig {
    /// Parses and checks the shape of a job request's `config`.
    pub fn parse(config: &Value) -> Result<Self, FieldError> {
        let cfg: ExportConfig = serde_json::from_value(config.clone()).map_err(|e| {
            let text = e.to_string();
            let field = super::import::config_field(&text);
            field_error(&field, format!("{text}; expected {{\"audiences\": [slugs], \"region\", \"kinesis_stream\", \"user_identifier_field\", \"export_fields\": [fields], \"existing_users\": bool, \"role_arn\"}}"))
        })?;
        if cfg.audiences.is_empty() {
            return Err(field_error(
                "config.audiences",
                "choose at least one audience",
            ));
        }
        if !crate::aws::is_valid_region(&cfg.region) {
            return Err(field_error(
                "config.region",
                format!("{:?} is not an AWS region like us-east-1", cfg.region),
            ));
        }
        crate::kinesis::validate_stream_name(&cfg.kinesis_stream)
            .map_err(|m| field_error("config.kinesis_stream", m))?;
        if let Some(arn) = cfg.role_arn.as_deref().filter(|a| !a.is_empty()) {
            crate::aws::validate_role_arn(arn).map_err(|m| field_error("config.role_arn", m))?;
        }
        let mut audiences = cfg.audiences.clone();
        audiences.dedup();
        Ok(ExportConfig {
            audiences,
            role_arn: cfg.role_arn.clone().filter(|a| !a.is_empty()),
            user_identifier_field: cfg
                .user_identifier_field
                .clone()
                .filter(|f| !f.trim().is_empty()),
            ..cfg
        })
    }

    /// Checks the names against what exists: every audience, and every field in the profile
    /// schema (the fields the stream mappings define).
    pub async fn check(&self, catalog: &dyn CatalogStore) -> Result<(), FieldError> {
        let known: HashSet<String> = match catalog.list_audiences().await {
            Ok(all) => all.into_iter().map(|(a, _)| a.slug).collect(),
            Err(e) => {
                return Err(field_error(
                    "config.audiences",
                    format!("cannot read audiences: {e}"),
                ))
            }
        };
        if let Some(missing) = self.audiences.iter().find(|a| !known.contains(*a)) {
            return Err(field_error(
                "config.audiences",
                format!("no audience has slug {missing:?}; see GET /api/audiences"),
            ));
        }
        // Read fresh, not from the CDP's cache: with several nodes, a mapping just set through
        // another node reaches this node's cache only at its next refresh.
        let schema: HashSet<String> = match catalog.list_mappings().await {
            Ok(rows) => MappingRegistry::new(rows)
                .schema()
                .into_iter()
                .map(|e| e.name)
                .collect(),
            Err(e) => {
                return Err(field_error(
                    "config.export_fields",
                    format!("cannot read the profile schema: {e}"),
                ))
            }
        };
        if let Some(field) = &self.user_identifier_field {
            if !schema.contains(field) {
                return Err(field_error(
                    "config.user_identifier_field",
                    format!("{field:?} is not a profile field; see GET /api/schema"),
                ));
            }
        }
        if let Some(missing) = self.export_fields.iter().find(|f| !schema.contains(*f)) {
            return Err(field_error(
                "config.export_fields",
                format!("{missing:?} is not a profile field; see GET /api/schema"),
            ));
        }
        Ok(())
    }
}

/// Changes read from the outbox per round.
const ROUND_CHANGES: u32 = 1000;
/// Members per backfill page.
const BACKFILL_PAGE: u32 = 500;
/// How often an idle job looks at the outbox.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often the job measures how far it is behind the outbox's head (a metric).
const OUTBOX_LAG_EVERY: Duration = Duration::from_secs(1);

/// Where a job starts: its saved progress, or — the first time — the outbox head of now and,
/// when asked, a backfill of the members of now. Saved at once (the API calls this when it
/// creates the job), so changes made right after the job was created are never skipped and
/// a job that stops before its first round resumes from the same point.
pub async fn starting_point(
    stores: &ExportStores,
    job_id: &str,
    config: &ExportConfig,
) -> Result<ExportProgress, StoreError> {
    fenced_starting_point(stores, job_id, config, None).await
}

/// [`starting_point`] for the running job, its first round carrying the job's `fence`.
async fn fenced_starting_point(
    stores: &ExportStores,
    job_id: &str,
    config: &ExportConfig,
    fence: Option<&Fence>,
) -> Result<ExportProgress, StoreError> {
    if let Some(progress) = stores.outbox.get_export_progress(job_id).await? {
        return Ok(progress);
    }
    let head = stores.outbox.audience_change_head().await?;
    let total = stores
        .catalog
        .list_audiences()
        .await?
        .iter()
        .filter(|(a, _)| config.audiences.contains(&a.slug))
        .map(|(_, n)| n)
        .sum();
    let progress = ExportProgress {
        cursor: head,
        backfill: config.existing_users.then(|| BackfillProgress {
            total,
            ..Default::default()
        }),
    };
    let first = ExportRound {
        progress: progress.clone(),
        fence: fence.cloned(),
        ..Default::default()
    };
    stores
        .outbox
        .commit_export_round(job_id, Arc::new(first))
        .await?;
    Ok(progress)
}

/// The job's work, until it is cancelled (`Ok`) or fails for good (`Err`: the job's
/// `last_error`). [`super::JobManager`] records the failure.
pub async fn run(
    ctx: JobContext,
    job: Job,
    config: ExportConfig,
    fence: Option<Fence>,
    cancel: CancellationToken,
) -> Result<(), JobError> {
    Exporter::start(&ctx, &job, config, fence, &cancel).await
}

/// The store roles an export job uses: audiences by slug, profiles for the records' fields,
/// and the outbox with the job's progress through it.
#[derive(Clone)]
pub struct ExportStores {
    pub catalog: Arc<dyn CatalogStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub outbox: Arc<dyn OutboxStore>,
}

impl From<&DynStore> for ExportStores {
    fn from(store: &DynStore) -> Self {
        Self {
            catalog: store.clone(),
            profiles: store.clone(),
            outbox: store.clone(),
        }
    }
}

struct Exporter {
    stores: ExportStores,
    job_id: String,
    config: ExportConfig,
    sender: Sender,
    progress: ExportProgress,
    /// Carried by every round: the job's lease with several nodes (see `crate::cluster`).
    fence: Option<Fence>,
    wanted: HashSet<String>,
    /// Audience slug → id, for the records' `segment_events`.
    audience_ids: HashMap<String, String>,
}

/// One record in the making.
struct Item {
    change_id: String,
    audience_id: String,
    audience_slug: String,
    profile_id: String,
    kind: ChangeKind,
    at: DateTime<Utc>,
    /// For an exit: when the membership began.
    entered_at: Option<DateTime<Utc>>,
    backfill: bool,
    /// Why, when not the audience's filter (`deleted`: the person was erased).
    reason: Option<String>,
}

impl Exporter {
    async fn start(
        ctx: &JobContext,
        job: &Job,
        config: ExportConfig,
        fence: Option<Fence>,
        cancel: &CancellationToken,
    ) -> Result<(), JobError> {
        let sdk = loop {
            match ctx
                .aws
                .sdk_config(
                    &job.authorization_id,
                    &config.region,
                    config.role_arn.as_deref(),
                )
                .await
            {
                Ok(sdk) => break sdk,
                Err(e) if e.aws_kind().is_retryable() => {
                    tracing::warn!(job = %job.id, error = %e, "AWS not reachable yet; retrying");
                    if !sleep_unless_cancelled(cancel, Duration::from_secs(2)).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(AwsError::from(e).into()),
            }
        };
        let stores = ExportStores::from(&ctx.store);
        let audiences = stores.catalog.list_audiences().await?;
        let audience_ids: HashMap<String, String> = audiences
            .iter()
            .map(|(a, _)| (a.slug.clone(), a.id.clone()))
            .collect();
        let progress = fenced_starting_point(&stores, &job.id, &config, fence.as_ref()).await?;
        if let Some(note) = missed_changes(&ctx.store, progress.cursor).await? {
            tracing::warn!(job = %job.id, "{note}");
            ctx.store
                .set_job_state(&job.id, crate::store::JobState::Running, Some(&note))
                .await?;
        }
        let mut exporter = Exporter {
            stores,
            job_id: job.id.clone(),
            wanted: config.audiences.iter().cloned().collect(),
            audience_ids,
            sender: Sender {
                // One attempt per call: the sender classifies and retries everything retryable
                // itself (throttles, 5xx, dropped connections), so each retry is backed off by
                // it and counted in the retry/throttle metrics (an SDK retry would hide them).
                client: ctx.aws.connector().kinesis(&sdk, 1),
                stream: config.kinesis_stream.clone(),
                metrics: ctx.metrics.export.clone(),
                job_id: job.id.clone(),
            },
            config,
            progress,
            fence,
        };
        exporter.run(cancel, &ctx.metrics.export).await
    }

    async fn run(
        &mut self,
        cancel: &CancellationToken,
        metrics: &crate::metrics::ExportMetrics,
    ) -> Result<(), JobError> {
        let mut store_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let lag_gauge = metrics.outbox_lag.with_label_values(&[&self.job_id]);
        let mut lag_measured: Option<std::time::Instant> = None;
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if lag_measured.is_none_or(|at| at.elapsed() >= OUTBOX_LAG_EVERY) {
                if let Ok(head) = self.stores.outbox.audience_change_head().await {
                    lag_gauge.set(head.saturating_sub(self.progress.cursor));
                }
                lag_measured = Some(std::time::Instant::now());
            }
            let round = match self.next_round().await {
                Ok(round) => round,
                Err(e) => {
                    tracing::warn!(job = %self.job_id, error = %e, "reading the outbox failed; retrying");
                    if store_backoff.attempts() > 10 {
                        return Err(e.into());
                    }
                    if !sleep_unless_cancelled(cancel, store_backoff.next_delay()).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            store_backoff.reset();
            let Some((items, mut next)) = round else {
                if !sleep_unless_cancelled(cancel, IDLE_POLL).await {
                    return Ok(());
                }
                continue;
            };
            let (records, dead_letters, changes_at) = self.build_records(&items).await?;
            let record_count = records.len() as u64;
            let backfilled = items.iter().filter(|i| i.backfill).count() as u64;
            match self.sender.send_all(records, cancel).await? {
                SendOutcome::Cancelled => return Ok(()),
                SendOutcome::Done(acked) => {
                    for (id, at) in acked {
                        if let Some(changed) = changes_at.get(&id) {
                            let seconds = (at - *changed).num_milliseconds().max(0) as f64 / 1000.0;
                            metrics
                                .change_to_ack_seconds
                                .with_label_values(&[&self.job_id])
                                .observe(seconds);
                        }
                    }
                }
            }
            if let Some(b) = next.backfill.as_mut() {
                b.sent += backfilled;
                // `total` counted the members when the job started; some left before their
                // page was read (their exit is sent instead) and some joined. Once done, it is
                // what was sent.
                if b.done {
                    b.total = b.sent;
                }
            }
            let round = ExportRound {
                progress: next.clone(),
                changes_read: items.len() as u64,
                records_sent: record_count,
                dead_letters,
                fence: self.fence.clone(),
            };
            self.stores
                .outbox
                .commit_export_round(&self.job_id, Arc::new(round))
                .await?;
            self.progress = next;
        }
    }

    /// The next round's items in the order they must be put, and the progress once they are
    /// all acknowledged; `None` when there is nothing to do.
    async fn next_round(&self) -> Result<Option<(Vec<Item>, ExportProgress)>, StoreError> {
        let mut next = self.progress.clone();
        let backfilling = next.backfill.as_ref().is_some_and(|b| !b.done);
        if backfilling {
            let backfill = next.backfill.as_mut().expect("backfilling");
            let ids: Vec<String> = self
                .config
                .audiences
                .iter()
                .filter_map(|slug| self.audience_ids.get(slug).cloned())
                .collect();
            let page = self
                .stores
                .outbox
                .backfill_page(ids, backfill.after.clone(), BACKFILL_PAGE)
                .await?;
            // Live changes up to the snapshot come first. Too many of them: a live-only round,
            // and a fresh snapshot next time.
            let live = self
                .stores
                .outbox
                .list_audience_changes(next.cursor, ROUND_CHANGES)
                .await?;
            let live: Vec<AudienceChange> = live
                .into_iter()
                .take_while(|c| c.seq <= page.head)
                .collect();
            let caught_up = live.last().map_or(next.cursor, |c| c.seq) >= page.head;
            let mut items: Vec<Item> = Vec::new();
            if let Some(last) = live.last() {
                next.cursor = last.seq;
            }
            items.extend(
                live.into_iter()
                    .filter(|c| self.wanted.contains(&c.audience_slug))
                    .map(live_item),
            );
            if caught_up {
                next.cursor = next.cursor.max(page.head);
                let backfill = next.backfill.as_mut().expect("backfilling");
                backfill.done = (page.members.len() as u32) < BACKFILL_PAGE;
                if let Some(last) = page.members.last() {
                    backfill.after = Some((last.audience_id.clone(), last.profile_id.clone()));
                }
                items.extend(page.members.iter().map(|m| self.backfill_item(m)));
            }
            if items.is_empty() && next == self.progress {
                return Ok(None);
            }
            return Ok(Some((items, next)));
        }
        let changes = self
            .stores
            .outbox
            .list_audience_changes(next.cursor, ROUND_CHANGES)
            .await?;
        let Some(last) = changes.last() else {
            return Ok(None);
        };
        next.cursor = last.seq;
        let items = changes
            .into_iter()
            .filter(|c| self.wanted.contains(&c.audience_slug))
            .map(live_item)
            .collect();
        Ok(Some((items, next)))
    }

    fn backfill_item(&self, m: &Membership) -> Item {
        let slug = self
            .audience_ids
            .iter()
            .find(|(_, id)| **id == m.audience_id)
            .map(|(slug, _)| slug.clone())
            .unwrap_or_default();
        Item {
            change_id: format!(
                "{}:backfill:{}:{}",
                self.job_id, m.audience_id, m.profile_id
            ),
            audience_id: m.audience_id.clone(),
            audience_slug: slug,
            profile_id: m.profile_id.clone(),
            kind: ChangeKind::Enter,
            at: m.entered_at,
            entered_at: None,
            backfill: true,
            reason: None,
        }
    }

    /// Records for the items (in order), dead letters for those too large to send, and the
    /// change time of each live record for the latency metric.
    async fn build_records(
        &self,
        items: &[Item],
    ) -> Result<
        (
            Vec<PendingRecord>,
            Vec<NewDeadLetter>,
            HashMap<u64, DateTime<Utc>>,
        ),
        StoreError,
    > {
        let profiles = self.load_profiles(items).await?;
        let mut records = Vec::with_capacity(items.len());
        let mut dead = Vec::new();
        let mut changed_at = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let fields = profiles
                .get(&item.profile_id)
                .map(|p| p.state.to_json_at(Utc::now()))
                .unwrap_or_else(|| json!({}));
            let payload = record_payload(&self.job_id, &self.config, item, &fields);
            let data = serde_json::to_vec(&payload).expect("JSON serializes");
            let key = partition_key(
                &identifier(&self.config, &fields).unwrap_or_else(|| item.profile_id.clone()),
            );
            if data.len() + key.len() > MAX_RECORD_BYTES {
                self.sender
                    .metrics
                    .failures
                    .with_label_values(&[&self.job_id])
                    .inc();
                dead.push(NewDeadLetter {
                    shard_id: "-".into(),
                    sequence_number: item.change_id.clone(),
                    sub_sequence_number: None,
                    position: 0,
                    partition_key: key,
                    reason: format!(
                        "the record is {} bytes; Kinesis accepts at most {MAX_RECORD_BYTES} bytes per record (data and partition key): limit export_fields",
                        data.len()
                    ),
                    raw: data,
                });
                continue;
            }
            if !item.backfill {
                changed_at.insert(i as u64, item.at);
            }
            records.push(PendingRecord {
                id: i as u64,
                partition_key: key,
                data,
            });
        }
        Ok((records, dead, changed_at))
    }

    /// The profiles of the items; an id merged away resolves to its survivor.
    async fn load_profiles(&self, items: &[Item]) -> Result<HashMap<String, Profile>, StoreError> {
        let ids: Vec<String> = items
            .iter()
            .map(|i| i.profile_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut found: HashMap<String, Profile> = self
            .stores
            .profiles
            .get_profiles(ids.clone())
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let missing: Vec<String> = ids
            .into_iter()
            .filter(|id| !found.contains_key(id))
            .collect();
        for id in missing {
            match self.stores.profiles.get_profile(&id).await {
                Ok(p) => {
                    found.insert(id, p);
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}

/// What a job resuming at `cursor` can no longer send: changes retention deleted while it
/// was paused (`outbox_max_age`), said so the job's `last_error` and the UI show it.
async fn missed_changes(
    store: &crate::store::DynStore,
    cursor: i64,
) -> Result<Option<String>, StoreError> {
    let Some(oldest) = store.oldest_audience_change().await? else {
        return Ok(None);
    };
    if oldest <= cursor + 1 {
        return Ok(None);
    }
    let (first, last) = (cursor + 1, oldest - 1);
    Ok(Some(format!(
        "missed {} audience changes (outbox positions {first}–{last}): the job was paused longer than the outbox keeps published changes (outbox_max_age), so they were deleted before it sent them; it carries on from position {oldest}. To resend current members, create a new export job with existing_users",
        last - first + 1
    )))
}

fn live_item(c: AudienceChange) -> Item {
    Item {
        change_id: format!("change-{}", c.seq),
        audience_id: c.audience_id,
        audience_slug: c.audience_slug,
        profile_id: c.profile_id,
        kind: c.kind,
        at: c.at,
        entered_at: c.entered_at,
        backfill: false,
        reason: c.reason,
    }
}

/// The user identifier's value as a partition key, when the profile has one.
fn identifier(config: &ExportConfig, fields: &Value) -> Option<String> {
    let value = fields.get(config.user_identifier_field.as_deref()?)?;
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One record in the shape CDP trigger consumers parse (Lytics' webhook/trigger format).
fn record_payload(job_id: &str, config: &ExportConfig, item: &Item, fields: &Value) -> Value {
    let mut data: Map<String, Value> = match fields {
        Value::Object(all) if config.export_fields.is_empty() => all.clone(),
        Value::Object(all) => config
            .export_fields
            .iter()
            .filter_map(|f| all.get(f).map(|v| (f.clone(), v.clone())))
            .collect(),
        _ => Map::new(),
    };
    let at = item.at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut segment = json!({
        "id": item.audience_id,
        "slug": item.audience_slug,
        "event": item.kind.as_str(),
    });
    match item.kind {
        ChangeKind::Enter => segment["enter"] = at.clone().into(),
        ChangeKind::Exit => {
            segment["exit"] = at.clone().into();
            if let Some(entered) = item.entered_at {
                segment["enter"] = entered.to_rfc3339_opts(SecondsFormat::Millis, true).into();
            }
        }
    }
    data.insert("segment_events".into(), json!([segment]));
    let mut record = json!({
        "data": data,
        "meta": {
            "object": "user",
            "subscription_id": job_id,
            "timestamp": at,
            "profile_id": item.profile_id,
            "backfill": item.backfill,
            "change_id": item.change_id,
        }
    });
    if let Some(reason) = &item.reason {
        // An erased person's exits: the profile (and its fields) is gone; `profile_id` names it.
        record["meta"]["reason"] = reason.as_str().into();
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ExportConfig {
        ExportConfig::parse(&json!({
            "audiences": ["vip"], "region": "us-east-1", "kinesis_stream": "triggers",
            "user_identifier_field": "email", "export_fields": ["email", "visits"]
        }))
        .unwrap()
    }

    fn item(kind: ChangeKind) -> Item {
        Item {
            change_id: "change-7".into(),
            audience_id: "aud-1".into(),
            audience_slug: "vip".into(),
            profile_id: "p1".into(),
            kind,
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            entered_at: (kind == ChangeKind::Exit).then(|| "2026-01-01T00:00:00Z".parse().unwrap()),
            backfill: false,
            reason: None,
        }
    }

    #[test]
    fn an_erased_persons_exit_says_why_in_meta() {
        let erased = Item {
            reason: Some("deleted".into()),
            ..item(ChangeKind::Exit)
        };
        let p = record_payload("job-1", &config(), &erased, &json!({}));
        assert_eq!(p["meta"]["reason"], "deleted");
        assert_eq!(p["meta"]["profile_id"], "p1");
        let p = record_payload("job-1", &config(), &item(ChangeKind::Exit), &json!({}));
        assert!(p["meta"].get("reason").is_none());
    }

    #[test]
    fn payload_has_the_trigger_shape_with_only_the_chosen_fields() {
        let fields = json!({"email": "a@b.c", "visits": 4, "secret_score": 9});
        let p = record_payload("job-1", &config(), &item(ChangeKind::Exit), &fields);
        assert_eq!(p["data"]["email"], "a@b.c");
        assert_eq!(p["data"]["visits"], 4);
        assert!(p["data"].get("secret_score").is_none());
        let seg = &p["data"]["segment_events"][0];
        assert_eq!(
            (seg["slug"].as_str(), seg["event"].as_str()),
            (Some("vip"), Some("exit"))
        );
        assert_eq!(seg["exit"], "2026-01-02T03:04:05.000Z");
        assert_eq!(
            seg["enter"], "2026-01-01T00:00:00.000Z",
            "an exit carries when it entered"
        );
        assert_eq!(p["meta"]["subscription_id"], "job-1");
        assert_eq!(p["meta"]["change_id"], "change-7");
        assert_eq!(p["meta"]["backfill"], false);
        assert_eq!(p["meta"]["object"], "user");
    }

    #[test]
    fn all_fields_when_none_are_chosen_and_the_identifier_keys_the_record() {
        let cfg = ExportConfig {
            export_fields: vec![],
            ..config()
        };
        let fields = json!({"email": "a@b.c", "visits": 4});
        let p = record_payload("job-1", &cfg, &item(ChangeKind::Enter), &fields);
        assert_eq!(p["data"]["visits"], 4);
        assert_eq!(identifier(&cfg, &fields).as_deref(), Some("a@b.c"));
        assert_eq!(identifier(&cfg, &json!({"visits": 1})), None);
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |v: Value| ExportConfig::parse(&v).unwrap_err().field;
        assert_eq!(
            bad(json!({"audiences": [], "region": "us-east-1", "kinesis_stream": "t"})),
            "config.audiences"
        );
        assert_eq!(
            bad(json!({"audiences": ["a"], "region": "x", "kinesis_stream": "t"})),
            "config.region"
        );
        assert_eq!(
            bad(json!({"audiences": ["a"], "region": "us-east-1", "kinesis_stream": "t t"})),
            "config.kinesis_stream"
        );
        assert_eq!(
            bad(json!({"audiences": ["a"], "region": "us-east-1"})),
            "config.kinesis_stream"
        );
    }
}
