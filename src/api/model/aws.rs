//! `/api/aws/...`: what the configuration screens ask of AWS.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::aws::policies::Direction;

/// `GET /api/aws/streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamsQuery {
    /// The authorization whose credentials list the streams.
    pub authorization: String,
    /// An AWS region like `us-east-1`.
    pub region: String,
    /// A role to assume with the authorization as source; empty means none.
    pub role_arn: Option<String>,
}

/// The Kinesis data streams the credentials can list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KinesisStreams {
    pub streams: Vec<String>,
}

/// Which jobs the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyDirection {
    Import,
    Export,
    /// Both, plus `kinesis:ListStreams` for the UI's stream list.
    #[default]
    Both,
}

impl From<PolicyDirection> for Direction {
    fn from(d: PolicyDirection) -> Self {
        match d {
            PolicyDirection::Import => Direction::Import,
            PolicyDirection::Export => Direction::Export,
            PolicyDirection::Both => Direction::Both,
        }
    }
}

/// `GET /api/aws/policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoliciesQuery {
    /// An AWS region like `us-east-1`.
    pub region: String,
    /// The 12-digit account that owns the stream.
    pub account: String,
    /// The Kinesis data stream.
    pub stream: String,
    #[serde(default)]
    #[param(inline)]
    pub direction: PolicyDirection,
    /// For `aws_role` authorizations: the trust policy then carries its external ID.
    pub authorization: Option<String>,
    /// Before an authorization exists (e.g. while its form is being filled).
    pub external_id: Option<String>,
}

/// IAM policies to paste into AWS. The trust-policy fields (absent otherwise) come only with an external ID
/// (from an `aws_role` authorization or the `external_id` parameter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Policies {
    /// An IAM policy document.
    #[schema(value_type = Object)]
    pub permission_policy: Value,
    /// Tributary's own AWS principal, which the trust policy lets assume the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub external_id: Option<String>,
    /// An IAM trust policy document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    pub trust_policy: Option<Value>,
}
