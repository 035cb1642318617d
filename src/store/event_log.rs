//! The event log: every event of every named stream, in one order. Import jobs and
//! `POST /api/collect` append; the API lists a stream's newest events; the profile processor
//! follows the whole log with a cursor.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StoreResult, Timestamp};

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

/// The event log.
///
/// # Ordering contract
///
/// Every stored event has a position (`seq`) that is unique and increases in the order events
/// become visible to readers: **once a reader has seen position N, no event with a position
/// below N can still commit.** So a reader that follows the log with
/// [`events_after`](EventLog::events_after) and keeps the last position it read as its cursor
/// never skips an event, however many writers append concurrently.
///
/// SQLite keeps this for free (one writer, positions assigned inside its transaction). A
/// backend with concurrent writers must assign positions in commit order (for example under
/// one lock held until commit) or stop its reads before the oldest position still in flight.
/// The conformance suite checks it with concurrent writers (`conformance::event_log`).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    async fn append_events(&self, stream: &str, events: Vec<NewEvent>) -> StoreResult<u64>;
    /// Newest first; `before` is an exclusive `seq` cursor.
    async fn list_events(
        &self,
        stream: &str,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>>;
    async fn list_streams(&self) -> StoreResult<Vec<StreamSummary>>;
    /// The next `limit` events after `after_seq`, oldest first; only those of `streams` are
    /// read in full (the others are counted and skipped without parsing their fields). With no
    /// `streams` at all, the page reaches the newest event at once, whatever `limit` says.
    async fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
        streams: Vec<String>,
    ) -> StoreResult<EventsPage>;
    /// Events with `seq` in `(after, upto]`.
    async fn count_events(&self, after: i64, upto: i64) -> StoreResult<u64>;
    async fn max_event_seq(&self) -> StoreResult<i64>;
}
