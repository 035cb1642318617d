//! AWS access: credentials per authorization (keys, or an assumed role with an external ID),
//! SDK clients with Tributary's timeouts, error classification, and the IAM policies a user
//! pastes into their account.

mod access;
mod arn;
mod connector;
mod error;
pub mod policies;

pub use access::{AwsAccess, ConnectError};
pub use arn::validate_role_arn;
pub use connector::{is_valid_region, AuthSecret, AwsConnector, CallerIdentity};
pub use error::{classify, AwsError, AwsErrorKind};
