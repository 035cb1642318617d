//! `/healthz`, and the error body every failing route answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`: the server is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// Every failure: a stable machine-readable `error` code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// E.g. `invalid_field`, `invalid_request`, `not_found`, `conflict`, `unauthorized`,
    /// `internal`, or an AWS error code such as `access_denied`.
    #[schema(example = "invalid_field")]
    pub error: String,
    /// What went wrong and what to do; for `invalid_field`, it starts with the field's name.
    #[schema(example = "label: is required; give the authorization a name")]
    pub message: String,
}
