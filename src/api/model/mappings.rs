//! `/api/streams/{name}/mapping` (events → profile fields) and `/api/schema`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tributary_lang::{FieldDef, Mapping};
use utoipa::ToSchema;

use crate::cdp::registry::SchemaEntry;
use crate::store::StreamMapping;

/// The JSON forms `PUT /api/streams/{name}/mapping` takes besides plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MappingJson {
    /// The mapping text as a JSON string.
    Text(String),
    /// `{"mapping": text}`; `{"text": text}` is taken too.
    Object {
        #[serde(alias = "text")]
        mapping: String,
    },
}

/// A stream's mapping: its text and what it parses to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MappingView {
    pub stream: String,
    pub text: String,
    /// The profile type (`INTO`).
    pub into: String,
    /// The identity fields (`BY a OR b`), in order of preference.
    pub by: Vec<String>,
    pub alias: Option<String>,
    pub fields: Vec<MappingField>,
    pub updated_at: DateTime<Utc>,
    /// In the answer to `PUT`: events of the stream stored before this mapping was set, which
    /// it is not applied to (profiles keep what they were) until a rebuild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub unapplied_events: Option<u64>,
    /// With `unapplied_events` > 0: what to do about them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub hint: Option<String>,
}

impl MappingView {
    pub fn new(stored: &StreamMapping, mapping: &Mapping) -> Self {
        Self {
            stream: stored.stream.clone(),
            text: stored.text.clone(),
            into: mapping.into.clone(),
            by: mapping.identities.clone(),
            alias: mapping.alias.clone(),
            fields: mapping.fields.iter().map(MappingField::from).collect(),
            updated_at: stored.updated_at,
            unapplied_events: None,
            hint: None,
        }
    }

    /// The answer to `PUT`: with how many stored events the new mapping is not applied to.
    pub fn with_unapplied(self, events: u64) -> Self {
        let hint = (events > 0).then(|| {
            format!(
                "{events} event{} of stream {:?} were stored before this mapping and are not in the profiles under it; POST /api/profiles/rebuild rebuilds every profile from the stored events",
                if events == 1 { "" } else { "s" },
                self.stream
            )
        });
        Self {
            unapplied_events: Some(events),
            hint,
            ..self
        }
    }
}

/// One SELECT item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MappingField {
    pub name: String,
    /// The declared KIND, e.g. `string`, `int`, `[]string`, `map[string]int`.
    pub kind: String,
    /// `latest`, `first`, `count`, `sum`, `min`, `max` or `set`.
    pub aggregate: String,
    /// `LATEST`, `OLDEST`, `SUM`, `COUNT`, `MIN`, `MAX` or `SET`.
    pub merge_op: String,
    pub short_desc: Option<String>,
    /// Where the item starts in the text.
    pub line: u32,
    pub column: u32,
}

impl From<&FieldDef> for MappingField {
    fn from(f: &FieldDef) -> Self {
        Self {
            name: f.name.clone(),
            kind: f.kind.name().to_owned(),
            aggregate: format!("{:?}", f.aggregate).to_lowercase(),
            merge_op: f.merge_op.name().to_owned(),
            short_desc: f.short_desc.clone(),
            line: f.span.line,
            column: f.span.column,
        }
    }
}

/// `GET /api/schema`: every profile field the mappings define, and the engagement scores
/// every profile has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileSchema {
    pub fields: Vec<SchemaField>,
    /// The engagement scores (0–100), readable by name in audience filters.
    #[serde(default)]
    pub scores: Vec<ScoreField>,
}

/// One engagement score in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreField {
    #[schema(example = "momentum")]
    pub name: String,
    /// Always `int` (0–100).
    pub kind: String,
    pub short_desc: String,
}

impl ScoreField {
    /// Every score, in `tributary_lang::SCORE_NAMES` order.
    pub fn all() -> Vec<ScoreField> {
        let desc = |name: &str| match name {
            "recency" => "How recently the last event was (halves every 7 days)",
            "frequency" => "Share of the last 56 days with events, recent days weighing more",
            "intensity" => "Events per active day over the last 28 days",
            "momentum" => "Recent against longer-term activity: 50 steady, higher rising",
            _ => "Share of the weeks (up to 8) with events",
        };
        tributary_lang::SCORE_NAMES
            .iter()
            .map(|n| ScoreField {
                name: n.to_string(),
                kind: "int".into(),
                short_desc: desc(n).into(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaField {
    pub name: String,
    pub kind: String,
    pub merge_op: String,
    /// The streams whose mappings write it.
    pub streams: Vec<String>,
    pub short_desc: Option<String>,
    /// Whether it identifies profiles (`BY`) in some mapping.
    pub identity: bool,
    /// `WINDOW` as written (`30d`) for a windowed field: its value counts only the events of
    /// that window, and changes as time passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl From<SchemaEntry> for SchemaField {
    fn from(e: SchemaEntry) -> Self {
        Self {
            name: e.name,
            kind: e.kind.name().to_owned(),
            merge_op: e.merge_op.to_owned(),
            streams: e.streams,
            short_desc: e.short_desc,
            identity: e.identity,
            window: e.window,
        }
    }
}
