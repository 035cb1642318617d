//! Data lifecycle: erasing a person (`DELETE /api/profiles/…`), the suppression list
//! (`/api/suppressions`), stream retention (`/api/streams/{name}/retention`) and online backups
//! (`POST /api/backup`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::store::{Erasure, Suppression};

/// `DELETE /api/profiles/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EraseQuery {
    /// Also put the person's identifier values on the suppression list (as SHA-256 hashes),
    /// so later events carrying one are dropped.
    pub suppress: Option<bool>,
}

/// `DELETE /api/profiles?field=…&value=…`: the profile holding that identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EraseByIdentifierQuery {
    /// An identity field (a mapping's `BY` field), e.g. `email`.
    pub field: Option<String>,
    /// The identifier in `field`.
    pub value: Option<String>,
    /// As for `DELETE /api/profiles/{id}`.
    pub suppress: Option<bool>,
}

/// What an erasure deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Erased {
    /// The erased profile (a merged-away id given in the request names its survivor here).
    pub profile_id: String,
    /// Stored events that carried one of its identifiers in a mapped identity field.
    pub events_deleted: u64,
    pub identities_deleted: u64,
    /// Audiences it left: each sent an `exit` with `"reason": "deleted"` in its `meta`.
    pub audiences_exited: u64,
    /// Identifier values added to the suppression list (0 without `suppress=true`).
    pub suppressed: u64,
}

impl From<&Erasure> for Erased {
    fn from(e: &Erasure) -> Self {
        Self {
            profile_id: e.profile_id.clone(),
            events_deleted: e.counts.events_deleted,
            identities_deleted: e.counts.identities_deleted,
            audiences_exited: e.counts.audiences_exited,
            suppressed: e.counts.suppressed,
        }
    }
}

/// A suppressed identifier: never its value, only the value's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SuppressionView {
    pub id: String,
    /// The identity field, e.g. `email`.
    pub field: String,
    /// Hex SHA-256 of the identifier's value.
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

impl From<&Suppression> for SuppressionView {
    fn from(s: &Suppression) -> Self {
        Self {
            id: s.id.clone(),
            field: s.field.clone(),
            hash: s.hash.clone(),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<SuppressionView>,
}

/// `PUT /api/streams/{name}/retention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// Delete the stream's events older than this: a whole number and a unit (`s`, `m`, `h`,
    /// `d`), e.g. `30d`; null keeps them for ever.
    #[schema(example = "30d")]
    pub max_age: Option<String>,
}

/// A stream's retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionView {
    pub stream: String,
    /// Events older than this are deleted (once the profile processor has applied them);
    /// null: kept for ever.
    #[schema(example = "30d")]
    pub max_age: Option<String>,
    /// `stream` (set for this stream) or `default` (the server's `retention_max_age`).
    #[schema(example = "stream")]
    pub source: String,
}

/// `POST /api/backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// A directory on the server's machine: made if missing; existing files are never
    /// overwritten.
    #[schema(example = "/var/backups/tributary/2026-12-06")]
    pub dest_dir: String,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    /// The files written (the master key is not among them: keep it apart).
    pub files: Vec<String>,
    pub bytes: u64,
}
