//! `/api/aws/...`: what the configuration screens ask of AWS.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::model::aws::{KinesisStreams, Policies, PoliciesQuery, StreamsQuery};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::aws::policies::{permission_policy, trust_policy};
use crate::aws::{is_valid_region, AwsErrorKind};
use crate::kinesis::api::list_streams;
use crate::store::Credentials;

const TAG: &str = "aws";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(streams))
        .routes(routes!(policies))
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

/// The Kinesis data streams an authorization can list (kinesis:ListStreams).
#[utoipa::path(get, path = "/api/aws/streams", tag = TAG,
    params(StreamsQuery),
    responses(
        (status = 200, description = "The stream names", body = KinesisStreams),
        (status = 400, description = "`invalid_field` (the region), `invalid_request`, or AWS refused the request: `invalid_credentials`, `assume_role_failed`, `aws_invalid_request`", body = ErrorBody),
        (status = 403, description = "`list_streams_denied`: the credentials may not list streams (type the name instead)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such authorization", body = ErrorBody),
        (status = 429, description = "`aws_throttled`", body = ErrorBody),
        (status = 502, description = "AWS failed or could not be reached: `aws_unavailable`, `aws_unreachable`, `aws_error`", body = ErrorBody),
    ))]
async fn streams(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StreamsQuery>,
) -> ApiResult<Json<KinesisStreams>> {
    check_region(&q.region)?;
    let role_arn = q.role_arn.as_deref().filter(|r| !r.is_empty());
    let config = state
        .access
        .sdk_config(&q.authorization, &q.region, role_arn)
        .await?;
    let client = state.access.connector().kinesis(&config, 3);
    match list_streams(&client).await {
        Ok(streams) => Ok(Json(KinesisStreams { streams })),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "list_streams_denied",
            "these credentials may not call kinesis:ListStreams, so the stream list cannot be shown; type the stream name instead",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The IAM policies a stream's account needs: the permission policy, and with an external ID
/// the trust policy of a role Tributary assumes.
#[utoipa::path(get, path = "/api/aws/policies", tag = TAG,
    params(PoliciesQuery),
    responses(
        (status = 200, description = "The policies", body = Policies),
        (status = 400, description = "`invalid_field` (region, account or stream) or `invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such authorization", body = ErrorBody),
        (status = 502, description = "`own_identity_unknown`: Tributary's own AWS credentials did not work, so the trust policy cannot name its principal", body = ErrorBody),
    ))]
async fn policies(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PoliciesQuery>,
) -> ApiResult<Json<Policies>> {
    check_region(&q.region)?;
    if q.account.len() != 12 || !q.account.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::invalid_field(
            "account",
            "must be the 12-digit AWS account id that owns the stream",
        ));
    }
    crate::kinesis::validate_stream_name(&q.stream)
        .map_err(|m| ApiError::invalid_field("stream", m))?;
    let mut body = Policies {
        permission_policy: permission_policy(q.direction.into(), &q.region, &q.account, &q.stream),
        principal: None,
        external_id: None,
        trust_policy: None,
    };

    let external_id = match (&q.authorization, &q.external_id) {
        (Some(id), _) => match state.store.get_authorization(id).await?.credentials {
            Credentials::AwsRole { external_id, .. } => Some(external_id),
            Credentials::AwsKeys { .. } => None,
        },
        (None, Some(ext)) => Some(ext.clone()),
        (None, None) => None,
    };
    if let Some(external_id) = external_id {
        match state.access.connector().own_identity().await {
            Ok(me) => {
                body.trust_policy = Some(trust_policy(&me.arn, &external_id));
                body.principal = Some(me.arn);
                body.external_id = Some(external_id);
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
