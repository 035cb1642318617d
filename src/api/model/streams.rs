//! `/api/streams` (Tributary's own event streams) and `/api/collect` (events sent over HTTP).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::store::{KinesisOrigin, StoredEvent, StreamSummary};

/// An event stream with its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    pub name: String,
    pub events: u64,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Its events not yet turned into profiles.
    pub processor_lag: u64,
    /// About how many bytes of the store its events take (the event log's file shared out
    /// by event count).
    #[serde(default)]
    pub approx_bytes: u64,
}

impl StreamView {
    pub fn new(s: &StreamSummary, processor_lag: u64) -> Self {
        Self {
            name: s.name.clone(),
            events: s.events,
            last_event_at: s.last_event_at,
            processor_lag,
            approx_bytes: 0,
        }
    }
}

/// `GET /api/streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

/// `GET /api/streams/{name}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// At most this many (default 50; clamped to 1–1000).
    // Any u32 is accepted (and clamped): utoipa's int32 would put 2^31 out of range.
    #[param(value_type = Option<u64>, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
    /// Only events with a smaller `seq`: the `next_before` of the previous page.
    pub before: Option<i64>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// Its place in the event log; pages are cut by it.
    pub seq: i64,
    pub stored_at: DateTime<Utc>,
    /// The event's own JSON object.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Where it came from in Kinesis; null for collected events.
    #[serde(rename = "_kinesis")]
    pub kinesis: Option<KinesisOriginView>,
}

impl From<&StoredEvent> for EventView {
    fn from(e: &StoredEvent) -> Self {
        Self {
            id: e.event_id.clone(),
            seq: e.seq,
            stored_at: e.stored_at,
            fields: e.fields.clone(),
            kinesis: e.origin.as_ref().map(KinesisOriginView::from),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KinesisOriginView {
    /// The Kinesis data stream.
    pub stream: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    pub partition_key: String,
    pub approximate_arrival_timestamp: Option<DateTime<Utc>>,
}

impl From<&KinesisOrigin> for KinesisOriginView {
    fn from(o: &KinesisOrigin) -> Self {
        Self {
            stream: o.stream.clone(),
            shard_id: o.shard_id.clone(),
            sequence_number: o.sequence_number.clone(),
            sub_sequence_number: o.sub_sequence_number,
            partition_key: o.partition_key.clone(),
            approximate_arrival_timestamp: o.approximate_arrival_timestamp,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// The `before` of the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

impl EventsPage {
    /// `more` says whether older events exist, so `next_before` is null exactly on the last
    /// page.
    pub fn new(events: &[StoredEvent], more: bool) -> Self {
        Self {
            events: events.iter().map(EventView::from).collect(),
            next_before: events.last().filter(|_| more).map(|e| e.seq),
        }
    }
}

/// `POST /api/collect/{stream}`: every event was stored, but those carrying a suppressed
/// identifier (dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Collected {
    /// Events stored.
    pub accepted: usize,
    /// Events dropped for an identifier on the suppression list (`GET /api/suppressions`);
    /// left out when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `POST /api/collect/{stream}` with undecodable items: nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvalidEvents {
    /// Always `invalid_events`.
    #[schema(example = "invalid_events")]
    pub error: String,
    pub message: String,
    /// The first 20 reasons.
    pub reasons: Vec<String>,
}

/// The 400 of `POST /api/collect/{stream}`: `invalid_events` (undecodable items, with their
/// `reasons`), or a bad stream name or body (without). One object rather than a choice of
/// [`InvalidEvents`] and [`ErrorBody`]: every `InvalidEvents` is also a valid `ErrorBody`, so
/// a `oneOf` of the two matched both and no response could satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CollectRejected {
    #[schema(example = "invalid_events")]
    pub error: String,
    pub message: String,
    /// With `invalid_events`: the first 20 reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
}
