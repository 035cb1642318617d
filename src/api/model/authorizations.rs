//! `/api/authorizations`: AWS credentials, stored sealed and never shown again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::store::{Authorization, Credentials};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// An access key and its secret.
    AwsKeys,
    /// A role Tributary assumes with an external ID.
    AwsRole,
}

/// `POST /api/authorizations`. `aws_keys` takes `access_key_id` and `secret_access_key`;
/// `aws_role` takes `role_arn` and, optionally, `external_id` (generated when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthorization {
    /// 1–100 characters.
    pub label: String,
    #[serde(default)]
    pub description: String,
    pub method: AuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// An authorization as the API shows it: the secret key only ever as `****`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizationView {
    pub id: String,
    pub label: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub credentials: CredentialsView,
}

/// The credentials by `method`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum CredentialsView {
    AwsKeys {
        access_key_id: String,
        /// Always `****`: the secret is never sent back.
        secret_access_key: String,
    },
    AwsRole {
        role_arn: String,
        external_id: String,
    },
}

impl CredentialsView {
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::AwsKeys { .. } => AuthMethod::AwsKeys,
            Self::AwsRole { .. } => AuthMethod::AwsRole,
        }
    }
}

impl From<&Authorization> for AuthorizationView {
    fn from(auth: &Authorization) -> Self {
        let credentials = match &auth.credentials {
            Credentials::AwsKeys { access_key_id, .. } => CredentialsView::AwsKeys {
                access_key_id: access_key_id.clone(),
                secret_access_key: "****".into(),
            },
            Credentials::AwsRole {
                role_arn,
                external_id,
            } => CredentialsView::AwsRole {
                role_arn: role_arn.clone(),
                external_id: external_id.clone(),
            },
        };
        Self {
            id: auth.id.clone(),
            label: auth.label.clone(),
            description: auth.description.clone(),
            created_at: auth.created_at,
            credentials,
        }
    }
}

/// `GET /api/authorizations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizationList {
    pub authorizations: Vec<AuthorizationView>,
}

/// `POST /api/authorizations/{id}/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// The region STS is called in; `us-east-1` when absent.
    pub region: Option<String>,
    /// A role to assume with the authorization as source, to check it too.
    pub role_arn: Option<String>,
}

/// Who the credentials are, per STS GetCallerIdentity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verified {
    /// Always `true`: failures are errors.
    pub ok: bool,
    pub account: String,
    pub arn: String,
    pub user_id: String,
}
