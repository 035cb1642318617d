//! Tributary's own store: authorizations, jobs, shard checkpoints, the event log, dead letters
//! (and, as the CDP grows, profiles, audiences and the audience-change outbox).
//!
//! One trait, [`Store`], with the embedded SQLite backend in [`sqlite`]. SQL and types are kept
//! portable (TEXT ids and RFC 3339 timestamps, JSON as TEXT, BLOB for bytes) so a PostgreSQL
//! backend can implement the same trait and pass the same [`conformance`] suite.

#[cfg(test)]
pub mod conformance;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type Timestamp = DateTime<Utc>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("store URL {0:?} is not supported; use sqlite://PATH")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Backend(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// How an authorization reaches AWS. The secret key is only ever held sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    AwsKeys {
        access_key_id: String,
        sealed_secret_access_key: Vec<u8>,
    },
    AwsRole {
        role_arn: String,
        external_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub id: String,
    pub label: String,
    pub description: String,
    pub credentials: Credentials,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    KinesisImport,
    KinesisExport,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::KinesisImport => "kinesis_import",
            JobType::KinesisExport => "kinesis_export",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kinesis_import" => Some(JobType::KinesisImport),
            "kinesis_export" => Some(JobType::KinesisExport),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(JobState::Running),
            "paused" => Some(JobState::Paused),
            "failed" => Some(JobState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub job_type: JobType,
    pub label: String,
    pub description: String,
    pub authorization_id: String,
    pub config: serde_json::Value,
    pub state: JobState,
    pub last_error: Option<String>,
    pub totals: JobTotals,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Counters kept in the same transaction as the data they count, so they are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTotals {
    pub records_in: u64,
    pub events_out: u64,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    WaitingForParent,
    Reading,
    Finished,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::WaitingForParent => "waiting_for_parent",
            ShardState::Reading => "reading",
            ShardState::Finished => "finished",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "waiting_for_parent" => Some(ShardState::WaitingForParent),
            "reading" => Some(ShardState::Reading),
            "finished" => Some(ShardState::Finished),
            _ => None,
        }
    }
}

/// Where reading a shard without a checkpoint begins. Decided once, when the shard is first
/// registered (the job's start position for the shards it found at start, the oldest record for
/// children found later), and stored so a restart decides the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still in the shard.
    #[default]
    TrimHorizon,
    /// Only records written after the job starts.
    Latest,
    /// Records from this instant on.
    AtTimestamp(Timestamp),
}

impl StartPosition {
    pub fn to_text(&self) -> String {
        match self {
            StartPosition::TrimHorizon => "trim_horizon".into(),
            StartPosition::Latest => "latest".into(),
            StartPosition::AtTimestamp(t) => format!("at_timestamp:{}", t.to_rfc3339()),
        }
    }
    pub fn parse_text(text: &str) -> Option<Self> {
        match text {
            "trim_horizon" => Some(StartPosition::TrimHorizon),
            "latest" => Some(StartPosition::Latest),
            other => other
                .strip_prefix("at_timestamp:")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| StartPosition::AtTimestamp(t.with_timezone(&Utc))),
        }
    }
}

/// Where a job stands on one shard. `sequence_number` is the last record fully stored; reading
/// resumes AFTER it (and after `sub_sequence_number` inside an aggregated record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    pub shard_id: String,
    pub parent_shard_ids: Vec<String>,
    pub state: ShardState,
    pub start_position: StartPosition,
    pub sequence_number: Option<String>,
    pub sub_sequence_number: Option<u64>,
    pub records: u64,
    pub millis_behind_latest: Option<i64>,
}

/// Where a stored event came from, when it came from Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinesisOrigin {
    pub stream: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    pub partition_key: String,
    pub approximate_arrival_timestamp: Option<Timestamp>,
}

/// An event's fields as the text of one JSON object. Text, so the import path can store a
/// record's own bytes without building a map and writing it out again (most of its CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields(String);

impl EventFields {
    /// `text` must be exactly one JSON object; callers check it first (see
    /// `kinesis::decode::plain_object`).
    pub fn from_checked_object_text(text: &str) -> Self {
        debug_assert!(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).is_ok()
        );
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for EventFields {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(serde_json::to_string(&map).expect("JSON maps serialize"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Derived from the origin for Kinesis events, so a replay maps onto the same row.
    pub event_id: String,
    pub fields: EventFields,
    pub origin: Option<KinesisOrigin>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the event log: increases in storage order; cursors page by it.
    pub seq: i64,
    pub event_id: String,
    pub stream: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub origin: Option<KinesisOrigin>,
    pub stored_at: Timestamp,
}

/// A stretch of the event log: the events of the streams asked for, and how far it reached.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsPage {
    pub events: Vec<StoredEvent>,
    /// Events looked at, of any stream.
    pub scanned: usize,
    /// The last `seq` looked at; `None` when there was nothing after the cursor.
    pub last_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    pub name: String,
    pub events: u64,
    pub last_event_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: Option<u64>,
    /// Several dead letters may come from one record (e.g. bad NDJSON lines): their order.
    pub position: u32,
    pub partition_key: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub job_id: String,
    pub letter: NewDeadLetter,
    pub created_at: Timestamp,
}

/// Everything one GetRecords batch produced on one shard: committed in ONE transaction so that
/// events, dead letters, counters and the checkpoint can never disagree after a crash.
#[derive(Debug, Clone)]
pub struct ShardBatch {
    pub job_id: String,
    pub stream: String,
    pub events: Vec<NewEvent>,
    pub dead_letters: Vec<NewDeadLetter>,
    pub records_in: u64,
    pub checkpoint: ShardCheckpoint,
}

/// What committing a batch did (replayed events are ignored, not inserted again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub events_inserted: u64,
    pub dead_letters_inserted: u64,
}

// ---------------------------------------------------------------------------------------------
// CDP records: mappings, profiles, audiences, the audience-change outbox
// ---------------------------------------------------------------------------------------------

/// The mapping text of one event stream (one mapping per stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub stream: String,
    pub text: String,
    pub updated_at: Timestamp,
}

/// A profile: its fields with their merge states. `state.to_json()` is the user-visible
/// fields object.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub state: tributary_lang::ProfileState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An identifier (`BY` field and value) and the live profile holding it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityRow {
    pub field: String,
    pub value: String,
    pub profile_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// The filter text as written.
    pub filter: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Enter,
    Exit,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Enter => "enter",
            ChangeKind::Exit => "exit",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enter" => Some(ChangeKind::Enter),
            "exit" => Some(ChangeKind::Exit),
            _ => None,
        }
    }
}

/// One entry or exit, before the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudienceChange {
    pub audience_id: String,
    pub audience_slug: String,
    pub profile_id: String,
    pub kind: ChangeKind,
    pub at: Timestamp,
    /// For an exit: when that membership began (trigger consumers want both times).
    pub entered_at: Option<Timestamp>,
}

/// A row of the audience-change outbox. `seq` is monotonic (AUTOINCREMENT: never reused),
/// so a consumer's cursor is the last `seq` it handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceChange {
    pub seq: i64,
    pub audience_id: String,
    pub audience_slug: String,
    pub profile_id: String,
    pub kind: ChangeKind,
    pub at: Timestamp,
    /// For an exit: when that membership began.
    pub entered_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub audience_id: String,
    pub profile_id: String,
    pub entered_at: Timestamp,
}

/// A profile's memberships as kept with it: `(audience id, entered at)`. The audience ids are
/// shared: a processor batch holds thousands of memberships of a few audiences.
pub type MemberList = Vec<(Arc<str>, Timestamp)>;

/// Everything one processor step changed: committed in ONE transaction with the processor's
/// cursor, so a crash loses nothing and replays nothing.
#[derive(Debug, Clone, Default)]
pub struct ProfileBatch {
    /// Profiles created or changed (full state).
    pub upserts: Vec<Profile>,
    /// `upserts[i].state` encoded ([`ProfileState::encode`](tributary_lang::ProfileState::encode)),
    /// when the writer encoded them before the commit (the processor does, so that the thread
    /// committing has less to do); empty: the store does.
    pub upsert_states: Vec<Vec<u8>>,
    /// Profiles merged away (their memberships go too).
    pub deletes: Vec<String>,
    /// Identifiers to (re)point.
    pub identities: Vec<IdentityRow>,
    /// `(merged id, survivor id)`, applied in order: the merged profile's identifiers and
    /// earlier redirects to it are repointed to the survivor.
    pub redirects: Vec<(String, String)>,
    pub memberships_added: Vec<Membership>,
    /// `(audience id, profile id)`.
    pub memberships_removed: Vec<(String, String)>,
    /// The whole member list of upserted profiles, when the writer knows it (the processor
    /// does): stored with the profile in one write. Their entries in `memberships_added` /
    /// `memberships_removed` must agree with the lists; they then only keep the counts.
    pub member_lists: std::collections::HashMap<String, MemberList>,
    pub changes: Vec<NewAudienceChange>,
    /// The processor's new cursor (last event seq applied); `None` leaves it.
    pub cursor: Option<i64>,
    /// Processor bookkeeping written with the batch (`key` → value; `None` deletes), e.g. the
    /// resume point of an audience re-evaluation.
    pub state: Vec<(String, Option<String>)>,
}

/// The processor's position, and the rebuild in progress if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessorPosition {
    /// The last event `seq` applied.
    pub cursor: i64,
    /// A rebuild runs until the cursor reaches this `seq`.
    pub rebuild_target: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Export records: each export job's progress through the audience-change outbox
// ---------------------------------------------------------------------------------------------

/// How far an export job has published. Everything up to `cursor` (an audience-change `seq`)
/// is acknowledged by Kinesis (or dead-lettered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportProgress {
    pub cursor: i64,
    pub backfill: Option<BackfillProgress>,
}

/// The one-time 'enter' of the members an export job found when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillProgress {
    pub total: u64,
    pub sent: u64,
    pub done: bool,
    /// The last `(audience id, profile id)` sent: the next page starts after it.
    pub after: Option<(String, String)>,
}

/// A page of current members, and the outbox head in the same snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPage {
    pub members: Vec<Membership>,
    pub head: i64,
}

/// One finished export round: the new progress, counters and dead letters, committed together.
#[derive(Debug, Clone, Default)]
pub struct ExportRound {
    pub progress: ExportProgress,
    pub changes_read: u64,
    pub records_sent: u64,
    pub dead_letters: Vec<NewDeadLetter>,
}

// ---------------------------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------------------------

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Authorizations
    /// Fails with `Conflict` when the label is taken.
    async fn insert_authorization(&self, auth: Authorization) -> StoreResult<()>;
    async fn list_authorizations(&self) -> StoreResult<Vec<Authorization>>;
    async fn get_authorization(&self, id: &str) -> StoreResult<Authorization>;
    /// Fails with `Conflict` while a job uses it.
    async fn delete_authorization(&self, id: &str) -> StoreResult<()>;

    // Jobs
    async fn insert_job(&self, job: Job) -> StoreResult<()>;
    async fn list_jobs(&self) -> StoreResult<Vec<Job>>;
    async fn get_job(&self, id: &str) -> StoreResult<Job>;
    async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        last_error: Option<&str>,
    ) -> StoreResult<()>;
    /// Deletes the job with its checkpoints and dead letters (its events stay in their stream).
    async fn delete_job(&self, id: &str) -> StoreResult<()>;

    // Shard checkpoints
    async fn list_checkpoints(&self, job_id: &str) -> StoreResult<Vec<ShardCheckpoint>>;
    /// Records shards as discovered (without touching the progress of known ones).
    async fn register_shards(&self, job_id: &str, shards: &[ShardCheckpoint]) -> StoreResult<()>;
    async fn set_shard_state(
        &self,
        job_id: &str,
        shard_id: &str,
        state: ShardState,
    ) -> StoreResult<()>;
    /// Shared, so a caller can retry a failed commit without copying the batch.
    async fn commit_shard_batch(&self, batch: Arc<ShardBatch>) -> StoreResult<BatchOutcome>;

    // Event log
    async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64>;
    /// Newest first; `before` is an exclusive `seq` cursor.
    async fn list_events(
        &self,
        stream: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>>;
    async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>>;

    // Dead letters
    async fn list_dead_letters(&self, job_id: &str, limit: u32) -> StoreResult<Vec<DeadLetter>>;

    // ----- CDP: mappings, profiles, audiences, the audience-change outbox -----------------
    // Profiles, identities, memberships and changes are written only by the profile
    // processor (`crate::cdp`), one writer at a time; everything it reads between two of its
    // commits is therefore current.

    /// Creates or replaces a stream's mapping text (validated by the caller).
    async fn put_mapping(&self, stream: &str, text: &str) -> StoreResult<StreamMapping>;
    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping>;
    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>>;

    /// The next `limit` events after `after_seq`, oldest first; only those of `streams` are
    /// read in full (the others are counted and skipped without parsing their fields). With no
    /// `streams` at all, the page reaches the newest event at once, whatever `limit` says.
    async fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
        streams: Vec<String>,
    ) -> StoreResult<EventsPage>;
    async fn processor_position(&self) -> StoreResult<ProcessorPosition>;
    /// Events not yet applied by the processor, per stream (streams with none left out).
    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Events with `seq` in `(after, upto]`.
    async fn count_events(&self, after: i64, upto: i64) -> StoreResult<u64>;
    async fn max_event_seq(&self) -> StoreResult<i64>;

    /// The profiles holding any of these `(field, value)` identifiers.
    async fn lookup_identities(&self, keys: Vec<(String, String)>)
        -> StoreResult<Vec<IdentityRow>>;
    /// Live profiles by id (missing ids are left out; no redirects followed).
    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>>;
    /// One profile; the id of a merged-away profile resolves to its survivor.
    async fn get_profile(&self, id: &str) -> StoreResult<Profile>;
    /// Profiles in id order after `after`, each with its member list (stored with it): for
    /// re-evaluating audiences page by page and for listing.
    async fn list_profiles(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>>;
    async fn count_profiles(&self) -> StoreResult<u64>;
    /// A profile's identifiers, `(field, value)` sorted.
    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>>;
    /// The memberships of these profiles.
    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>>;
    /// Live profiles by id with their member lists, read together (the processor's load).
    async fn get_profiles_with_memberships(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>>;
    /// One processor step, atomically (see [`ProfileBatch`]).
    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()>;
    /// Starts a rebuild: every membership exits (change rows), profiles, identities,
    /// redirects and memberships are cleared, the cursor goes back to 0 and the rebuild
    /// target becomes the newest event `seq` (returned). One transaction.
    async fn reset_profiles(&self) -> StoreResult<i64>;
    /// Processor bookkeeping entries whose key starts with `prefix` (see
    /// [`ProfileBatch::state`]), in key order.
    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>>;
    /// Clears the rebuild target once the processor has reached it.
    async fn finish_rebuild(&self) -> StoreResult<()>;

    /// Fails with `Conflict` when the slug is taken.
    async fn insert_audience(&self, audience: Audience) -> StoreResult<()>;
    /// Replaces name, description, filter (by id).
    async fn update_audience(&self, audience: Audience) -> StoreResult<()>;
    async fn get_audience(&self, slug: &str) -> StoreResult<Audience>;
    /// With member counts, in slug order.
    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>>;
    /// Deletes the audience and its memberships (its outbox rows stay).
    async fn delete_audience(&self, slug: &str) -> StoreResult<()>;
    /// Members in profile id order after `after` (an exclusive profile id cursor).
    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Membership>>;
    /// The outbox after `after_seq`, oldest first: what export jobs publish.
    async fn list_audience_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AudienceChange>>;

    // ----- Export jobs ------------------------------------------------------------------------

    async fn get_export_progress(&self, job_id: &str) -> StoreResult<Option<ExportProgress>>;
    /// Records a finished round atomically: progress, the job's counters, dead letters.
    async fn commit_export_round(&self, job_id: &str, round: Arc<ExportRound>) -> StoreResult<()>;
    /// Current members of these audiences in `(audience id, profile id)` order after `after`,
    /// with the outbox head of the same snapshot.
    async fn backfill_page(
        &self,
        audience_ids: Vec<String>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<BackfillPage>;
    /// The newest audience-change `seq` (0 when none).
    async fn audience_change_head(&self) -> StoreResult<i64>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite://PATH`), running pending migrations.
pub async fn open(url: &str) -> StoreResult<DynStore> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(std::path::Path::new(path)).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
