//! Acting as an authorization: read it from the control store, open its sealed secret with the
//! master key, and build an SDK configuration for a region (through a role, if asked).
//!
//! The one handle jobs and API routes use to reach AWS as a user's authorization; the secret
//! is open only for the duration of the call.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::{AuthSecret, AwsConnector, AwsError, AwsErrorKind};
use crate::secrets::{MasterKey, SecretError};
use crate::store::{Authorization, ControlStore, Credentials, StoreError};

#[derive(Clone)]
pub struct AwsAccess {
    authorizations: Arc<dyn ControlStore>,
    master_key: MasterKey,
    connector: AwsConnector,
}

/// Why acting as an authorization failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl ConnectError {
    /// How a job should treat the failure: AWS kinds as classified, the rest as fatal.
    pub fn aws_kind(&self) -> AwsErrorKind {
        match self {
            ConnectError::Aws(e) => e.kind,
            _ => AwsErrorKind::Other,
        }
    }
}

impl From<ConnectError> for AwsError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Aws(e) => e,
            other => AwsError {
                kind: AwsErrorKind::Other,
                code: None,
                message: other.to_string(),
            },
        }
    }
}

impl AwsAccess {
    pub fn new(
        authorizations: Arc<dyn ControlStore>,
        master_key: MasterKey,
        connector: AwsConnector,
    ) -> Self {
        Self {
            authorizations,
            master_key,
            connector,
        }
    }

    /// The SDK clients and Tributary's own identity.
    pub fn connector(&self) -> &AwsConnector {
        &self.connector
    }

    /// SDK configuration acting as authorization `auth_id` in `region` (through `role_arn`).
    pub async fn sdk_config(
        &self,
        auth_id: &str,
        region: &str,
        role_arn: Option<&str>,
    ) -> Result<SdkConfig, ConnectError> {
        let auth = self.authorizations.get_authorization(auth_id).await?;
        let secret = self.unseal(&auth)?;
        Ok(self
            .connector
            .config_for(&auth.id, &secret, region, role_arn)
            .await?)
    }

    /// The authorization's secret, decrypted for the duration of a call.
    fn unseal(&self, auth: &Authorization) -> Result<AuthSecret, SecretError> {
        Ok(match &auth.credentials {
            Credentials::AwsKeys {
                access_key_id,
                sealed_secret_access_key,
            } => {
                let secret = self.master_key.open(sealed_secret_access_key, &auth.id)?;
                AuthSecret::Keys {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: String::from_utf8(secret).map_err(|_| SecretError::Open)?,
                }
            }
            Credentials::AwsRole {
                role_arn,
                external_id,
            } => AuthSecret::Role {
                role_arn: role_arn.clone(),
                external_id: external_id.clone(),
            },
        })
    }
}
