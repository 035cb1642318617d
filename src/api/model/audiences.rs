//! `/api/audiences` and `/api/audience-changes`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::store::{self, Audience, AudienceChange, Membership};

/// `POST /api/audiences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAudience {
    /// 1–64 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit.
    pub slug: String,
    /// 1–200 characters; the slug when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The filter, e.g. `visits > 3 AND EXISTS email`.
    pub filter: String,
}

/// `PUT /api/audiences/{slug}`: what is absent stays. A new filter re-evaluates every profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAudience {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// An audience. The optional keys, absent rather than null, depend on the route: `members` everywhere but in the answer
/// to an update, `parsed` from create, show and update, `fields_read` and `time_relative` from
/// show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AudienceView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// The filter text as written.
    pub filter: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many profiles are in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub members: Option<u64>,
    /// The filter's syntax tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    pub parsed: Option<Value>,
    /// The profile fields the filter reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fields_read: Option<Vec<String>>,
    /// Whether membership can change with time alone (the filter reads the clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub time_relative: Option<bool>,
    /// The filter's `WITH key = value, …` pairs (FilterQL metadata), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// What the filter says that has no effect here (e.g. FilterQL's `LIMIT`), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub notes: Option<Vec<String>>,
}

impl AudienceView {
    /// The audience alone; the caller adds what its route shows.
    pub fn new(a: &Audience, members: Option<u64>) -> Self {
        Self {
            id: a.id.clone(),
            slug: a.slug.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            filter: a.filter.clone(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            members,
            parsed: None,
            fields_read: None,
            time_relative: None,
            metadata: None,
            notes: None,
        }
    }

    /// Adds what the parsed filter carries besides its condition: `WITH` metadata and notes.
    pub fn with_filter_facts(mut self, filter: &tributary_lang::Filter) -> Self {
        let metadata = filter.metadata_json();
        self.metadata = (!metadata.is_empty()).then_some(metadata);
        let notes: Vec<String> = filter.notes().iter().map(|n| n.message.clone()).collect();
        self.notes = (!notes.is_empty()).then_some(notes);
        self
    }
}

/// `GET /api/audiences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AudienceList {
    pub audiences: Vec<AudienceView>,
}

/// `GET /api/audiences/{slug}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// Page size (default 100, 1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// After this profile id: the `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub profile_id: String,
    pub entered_at: DateTime<Utc>,
}

impl From<&Membership> for Member {
    fn from(m: &Membership) -> Self {
        Self {
            profile_id: m.profile_id.clone(),
            entered_at: m.entered_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MembersPage {
    pub members: Vec<Member>,
    /// The `after` of the next page; null on the last.
    pub next: Option<String>,
}

/// `GET /api/audience-changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Only changes with a larger `seq` (default 0: from the start).
    pub after: Option<i64>,
    /// Page size (default 100, 1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Enter,
    Exit,
}

impl From<store::ChangeKind> for ChangeKind {
    fn from(kind: store::ChangeKind) -> Self {
        match kind {
            store::ChangeKind::Enter => Self::Enter,
            store::ChangeKind::Exit => Self::Exit,
        }
    }
}

/// One entry into or exit from an audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AudienceChangeView {
    pub seq: i64,
    pub audience_id: String,
    /// The audience's slug.
    pub audience: String,
    pub profile_id: String,
    pub kind: ChangeKind,
    pub at: DateTime<Utc>,
}

impl From<&AudienceChange> for AudienceChangeView {
    fn from(c: &AudienceChange) -> Self {
        Self {
            seq: c.seq,
            audience_id: c.audience_id.clone(),
            audience: c.audience_slug.clone(),
            profile_id: c.profile_id.clone(),
            kind: c.kind.into(),
            at: c.at,
        }
    }
}

/// The audience-change outbox after a `seq`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<AudienceChangeView>,
    /// The last `seq` of this page (the next `after`); null when the page is empty.
    pub next: Option<i64>,
}
