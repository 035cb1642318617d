//! `/api/profiles`: profiles by identifier or id, and rebuilding them from the event log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::cdp::RebuildStatus;

/// `GET /api/profiles`: `field` and `value` together find one profile; neither lists a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    /// An identity field (a mapping's `BY` field), e.g. `email`.
    pub field: Option<String>,
    /// The identifier to look up in `field`.
    pub value: Option<String>,
    /// Page size when listing (default 50, 1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// List after this profile id: the `next` of the previous page.
    pub after: Option<String>,
}

/// A profile with its identifiers, fields and audiences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfileView {
    pub id: String,
    /// Identifier values by identity field.
    pub identities: BTreeMap<String, Vec<String>>,
    /// The profile's fields, as the mappings define them.
    #[schema(value_type = Object)]
    pub fields: Value,
    /// The slugs of the audiences it is in, sorted.
    pub audiences: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Engagement scores now; absent for a profile stored before scores existed, until its
    /// next event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<ProfileScores>,
}

/// Engagement scores, each 0–100, computed from the profile's event times at the time of the
/// request (formulas in the mapping language's documentation). Audience filters read them by
/// name: `FILTER AND (momentum > 60, recency > 40)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileScores {
    /// How recently the last event was: halves every 7 days.
    pub recency: u8,
    /// Share of the last 56 days with events, recent days weighing more.
    pub frequency: u8,
    /// Events per active day over the last 28 days.
    pub intensity: u8,
    /// Recent activity against longer-term activity: 50 steady, above rising, below falling.
    pub momentum: u8,
    /// Share of the weeks (up to 8, since the first event) with events.
    pub consistency: u8,
}

impl From<tributary_lang::Scores> for ProfileScores {
    fn from(s: tributary_lang::Scores) -> Self {
        Self {
            recency: s.recency,
            frequency: s.frequency,
            intensity: s.intensity,
            momentum: s.momentum,
            consistency: s.consistency,
        }
    }
}

/// A page of profiles in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfilePage {
    pub profiles: Vec<ProfileView>,
    /// Every profile, not only this page's.
    pub total: u64,
    /// The `after` of the next page; null on the last.
    pub next: Option<String>,
}

/// What `GET /api/profiles` answers: one profile (by identifier) or a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ProfileLookup {
    One(ProfileView),
    Page(ProfilePage),
}

/// Progress of a profile rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rebuild {
    /// `idle` (never rebuilt), `running` or `done`.
    #[schema(example = "running")]
    pub state: String,
    pub processed: u64,
    pub total: u64,
}

impl From<RebuildStatus> for Rebuild {
    fn from(s: RebuildStatus) -> Self {
        Self {
            state: s.state.to_owned(),
            processed: s.processed,
            total: s.total,
        }
    }
}
