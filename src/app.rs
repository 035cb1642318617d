//! The state every part of a running server shares.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::aws::{AuthSecret, AwsConnector, AwsError, AwsErrorKind};
use crate::jobs::JobManager;
use crate::metrics::Metrics;
use crate::secrets::{ApiToken, MasterKey};
use crate::store::{Authorization, Credentials, DynStore, StoreError};

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub master_key: MasterKey,
    pub api_token: Arc<ApiToken>,
    pub aws: AwsConnector,
    pub metrics: Metrics,
    pub jobs: JobManager,
    /// Mappings, the profile processor and audiences (one shared handle).
    pub cdp: crate::cdp::Cdp,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl AppState {
    /// The authorization's secret, decrypted for the duration of a call.
    pub fn unseal(&self, auth: &Authorization) -> Result<AuthSecret, crate::secrets::SecretError> {
        Ok(match &auth.credentials {
            Credentials::AwsKeys {
                access_key_id,
                sealed_secret_access_key,
            } => {
                let secret = self.master_key.open(sealed_secret_access_key, &auth.id)?;
                AuthSecret::Keys {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: String::from_utf8(secret)
                        .map_err(|_| crate::secrets::SecretError::Open)?,
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

    /// SDK configuration acting as authorization `auth_id` in `region` (through `role_arn`).
    pub async fn aws_config(
        &self,
        auth_id: &str,
        region: &str,
        role_arn: Option<&str>,
    ) -> Result<SdkConfig, ConnectError> {
        let auth = self.store.get_authorization(auth_id).await?;
        let secret = self.unseal(&auth)?;
        Ok(self
            .aws
            .config_for(&auth.id, &secret, region, role_arn)
            .await?)
    }
}

impl From<ConnectError> for crate::api::error::ApiError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Store(e) => e.into(),
            ConnectError::Secret(e) => crate::api::error::ApiError::internal(e),
            ConnectError::Aws(e) => e.into(),
        }
    }
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
