//! Turning an authorization into SDK configuration and clients.
//!
//! Credentials come from the SDK's own providers (static keys, `AssumeRoleProvider`), and the
//! SDK's identity cache refreshes temporary credentials before they expire. Endpoints follow the
//! SDK's standard `AWS_ENDPOINT_URL[_KINESIS|_STS]` variables, so emulators need no flags.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::error::{error_chain, AwsError, AwsErrorKind};

/// Decrypted credentials of one authorization. Lives only in memory; `Debug` hides the secret.
#[derive(Clone)]
pub enum AuthSecret {
    Keys {
        access_key_id: String,
        secret_access_key: String,
    },
    Role {
        role_arn: String,
        external_id: String,
    },
}

impl std::fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSecret::Keys { access_key_id, .. } => {
                write!(
                    f,
                    "Keys {{ access_key_id: {access_key_id:?}, secret_access_key: **** }}"
                )
            }
            AuthSecret::Role { role_arn, .. } => write!(f, "Role {{ role_arn: {role_arn:?} }}"),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// Holds Tributary's own default AWS configuration (env, profile, instance role), the source
/// for delegated access, and builds per-authorization configurations from it.
#[derive(Clone)]
pub struct AwsConnector {
    base: SdkConfig,
}

const DEFAULT_REGION: &str = "us-east-1";

impl AwsConnector {
    pub async fn from_environment() -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .build(),
            )
            .load()
            .await;
        Self { base }
    }

    /// The configuration for calls made on behalf of an authorization in `region`, optionally
    /// through a further role (`role_arn`) assumed with the authorization as source.
    ///
    /// When a role is involved, credentials are fetched once here, so a refused AssumeRole is
    /// reported as `assume_role_failed` now rather than as an obscure failure of a later call.
    pub async fn config_for(
        &self,
        auth_id: &str,
        secret: &AuthSecret,
        region: &str,
        role_arn: Option<&str>,
    ) -> Result<SdkConfig, AwsError> {
        let region = Region::new(region.to_owned());
        let regional = self.base.to_builder().region(region.clone()).build();
        let session_name = format!("tributary-{}", sanitize_session_name(auth_id));
        let mut assumed = false;
        let mut provider = match secret {
            AuthSecret::Keys {
                access_key_id,
                secret_access_key,
            } => SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "tributary-authorization",
            )),
            AuthSecret::Role {
                role_arn,
                external_id,
            } => {
                let source = self.base.credentials_provider().ok_or_else(|| {
                    AwsError::new(
                        AwsErrorKind::InvalidCredentials,
                        "delegated access needs Tributary's own AWS credentials (environment, profile or instance role) and none were found",
                    )
                })?;
                assumed = true;
                SharedCredentialsProvider::new(
                    AssumeRoleProvider::builder(role_arn)
                        .external_id(external_id)
                        .session_name(&session_name)
                        .configure(&regional)
                        .build_from_provider(source)
                        .await,
                )
            }
        };
        if let Some(job_role) = role_arn.filter(|r| !r.is_empty()) {
            assumed = true;
            provider = SharedCredentialsProvider::new(
                AssumeRoleProvider::builder(job_role)
                    .session_name(&session_name)
                    .configure(&regional)
                    .build_from_provider(provider)
                    .await,
            );
        }
        if assumed {
            provider.provide_credentials().await.map_err(|e| {
                AwsError::new(
                    AwsErrorKind::AssumeRoleFailed,
                    format!(
                        "could not assume the IAM role: {}; check the role ARN, its trust policy and the external ID",
                        error_chain(&e)
                    ),
                )
            })?;
        }
        Ok(regional.to_builder().credentials_provider(provider).build())
    }

    /// A Kinesis client; `max_attempts` bounds the SDK's own retries (loops that classify
    /// errors themselves want 1 or 2, one-off API calls the standard 3).
    pub fn kinesis(&self, config: &SdkConfig, max_attempts: u32) -> aws_sdk_kinesis::Client {
        let conf = aws_sdk_kinesis::config::Builder::from(config)
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .build();
        aws_sdk_kinesis::Client::from_conf(conf)
    }

    /// STS GetCallerIdentity: needs no IAM permission, so it proves the credentials alone.
    pub async fn caller_identity(&self, config: &SdkConfig) -> Result<CallerIdentity, AwsError> {
        let out = aws_sdk_sts::Client::new(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", &e))?;
        Ok(CallerIdentity {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
            user_id: out.user_id.unwrap_or_default(),
        })
    }

    /// Who Tributary itself is: the principal customers' trust policies must name.
    pub async fn own_identity(&self) -> Result<CallerIdentity, AwsError> {
        let config = if self.base.region().is_some() {
            self.base.clone()
        } else {
            self.base
                .to_builder()
                .region(Region::new(DEFAULT_REGION))
                .build()
        };
        self.caller_identity(&config).await
    }
}

/// Role session names allow `[\w+=,.@-]{2,64}`.
fn sanitize_session_name(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
        .take(50)
        .collect()
}

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, …
pub fn is_valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-4",
        ] {
            assert!(is_valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "us--1",
            "us-east-1a",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = AuthSecret::Keys {
            access_key_id: "AKIA1".into(),
            secret_access_key: "hunter2".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
