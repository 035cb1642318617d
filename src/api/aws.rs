//! `/api/aws/...`: what the configuration screens ask of AWS.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::aws::policies::{permission_policy, trust_policy, Direction};
use crate::aws::{is_valid_region, AwsErrorKind};
use crate::kinesis::api::list_streams;
use crate::store::Credentials;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/aws/streams", get(streams))
        .route("/api/aws/policies", get(policies))
}

#[derive(Deserialize)]
struct StreamsQuery {
    authorization: String,
    region: String,
    role_arn: Option<String>,
}

pub fn check_region(region: &str) -> ApiResult<()> {
    if is_valid_region(region) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "region",
            format!("{region:?} is not an AWS region like us-east-1"),
        ))
    }
}

async fn streams(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StreamsQuery>,
) -> ApiResult<Json<Value>> {
    check_region(&q.region)?;
    let role_arn = q.role_arn.as_deref().filter(|r| !r.is_empty());
    let config = state
        .access
        .sdk_config(&q.authorization, &q.region, role_arn)
        .await?;
    let client = state.aws.kinesis(&config, 3);
    match list_streams(&client).await {
        Ok(streams) => Ok(Json(json!({ "streams": streams }))),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "list_streams_denied",
            "these credentials may not call kinesis:ListStreams, so the stream list cannot be shown; type the stream name instead",
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct PoliciesQuery {
    region: String,
    account: String,
    stream: String,
    #[serde(default = "both")]
    direction: Direction,
    /// For `aws_role` authorizations: the trust policy then carries its external ID.
    authorization: Option<String>,
    /// Before an authorization exists (e.g. while its form is being filled).
    external_id: Option<String>,
}

fn both() -> Direction {
    Direction::Both
}

async fn policies(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PoliciesQuery>,
) -> ApiResult<Json<Value>> {
    check_region(&q.region)?;
    if q.account.len() != 12 || !q.account.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::invalid_field(
            "account",
            "must be the 12-digit AWS account id that owns the stream",
        ));
    }
    crate::kinesis::validate_stream_name(&q.stream)
        .map_err(|m| ApiError::invalid_field("stream", m))?;
    let mut body = json!({ "permission_policy": permission_policy(q.direction, &q.region, &q.account, &q.stream) });

    let external_id = match (&q.authorization, &q.external_id) {
        (Some(id), _) => match state.store.get_authorization(id).await?.credentials {
            Credentials::AwsRole { external_id, .. } => Some(external_id),
            Credentials::AwsKeys { .. } => None,
        },
        (None, Some(ext)) => Some(ext.clone()),
        (None, None) => None,
    };
    if let Some(external_id) = external_id {
        match state.aws.own_identity().await {
            Ok(me) => {
                body["principal"] = me.arn.clone().into();
                body["external_id"] = external_id.clone().into();
                body["trust_policy"] = trust_policy(&me.arn, &external_id);
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "own_identity_unknown",
                    format!("cannot name Tributary's principal for the trust policy: Tributary's own AWS credentials did not work ({e}); configure them (environment, profile or instance role)"),
                ))
            }
        }
    }
    Ok(Json(body))
}
