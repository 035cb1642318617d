//! The API's one error type: every failure becomes `{"error": code, "message": text}` with a
//! fitting status. Internal details (SQL, paths) are logged, never sent.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::model::ErrorBody;
use crate::aws::{AwsError, AwsErrorKind, ConnectError};
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// A 400 naming the offending field, so forms can show the message next to it.
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_field", format!("{field}: {message}"))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API token; send `Authorization: Bearer <token>` (the token is TRIBUTARY_API_TOKEN or the api-token file in the data directory)",
        )
    }
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Tributary hit an internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => ApiError::not_found(err.to_string()),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<ConnectError> for ApiError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Store(e) => e.into(),
            ConnectError::Secret(e) => ApiError::internal(e),
            ConnectError::Aws(e) => e.into(),
        }
    }
}

impl From<AwsError> for ApiError {
    fn from(err: AwsError) -> Self {
        let status = match err.kind {
            AwsErrorKind::InvalidCredentials
            | AwsErrorKind::AssumeRoleFailed
            | AwsErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            AwsErrorKind::AccessDenied => StatusCode::FORBIDDEN,
            AwsErrorKind::NotFound => StatusCode::NOT_FOUND,
            AwsErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, err.kind.api_code(), err.message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = match &rejection {
            JsonRejection::JsonDataError(e) => format!(
                "the request body does not match what this route expects: {}",
                source_text(e)
            ),
            JsonRejection::JsonSyntaxError(e) => {
                format!("the request body is not valid JSON: {}", source_text(e))
            }
            JsonRejection::MissingJsonContentType(_) => {
                "send the body as JSON with `Content-Type: application/json`".to_owned()
            }
            other => other.body_text(),
        };
        ApiError::bad_request("invalid_request", message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let message = match &rejection {
            QueryRejection::FailedToDeserializeQueryString(e) => {
                format!("bad query parameters: {}", source_text(e))
            }
            other => other.body_text(),
        };
        ApiError::bad_request("invalid_request", message)
    }
}

/// serde's own message ("missing field `label` at line 1 column 20") is the useful part.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
