//! `/api/authorizations`: AWS credentials, stored sealed and never shown again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{SubsecRound, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::model::authorizations::{
    AuthMethod, AuthorizationList, AuthorizationView, CreateAuthorization, Verified, VerifyQuery,
};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::aws::{is_valid_region, validate_role_arn};
use crate::store::{Authorization, Credentials};

const TAG: &str = "authorizations";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(verify))
}

const MAX_LABEL: usize = 100;

/// Stores new credentials; the secret key is sealed with the master key at once.
#[utoipa::path(post, path = "/api/authorizations", tag = TAG,
    request_body = CreateAuthorization,
    responses(
        (status = 201, description = "Stored", body = AuthorizationView),
        (status = 400, description = "`invalid_field` (named in the message) or `invalid_request`", body = ErrorBody),
        (status = 409, description = "`conflict`: the label is taken", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateAuthorization>,
) -> ApiResult<(StatusCode, Json<AuthorizationView>)> {
    let label = req.label.trim().to_owned();
    if label.is_empty() {
        return Err(ApiError::invalid_field(
            "label",
            "is required; give the authorization a name",
        ));
    }
    if label.chars().count() > MAX_LABEL {
        return Err(ApiError::invalid_field(
            "label",
            format!("is longer than {MAX_LABEL} characters"),
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let credentials = match req.method {
        AuthMethod::AwsKeys => {
            if req.role_arn.is_some() || req.external_id.is_some() {
                return Err(ApiError::invalid_field(
                    "role_arn",
                    "belongs to method aws_role, not aws_keys",
                ));
            }
            let key_id = required(req.access_key_id, "access_key_id")?;
            if !key_id.chars().all(|c| c.is_ascii_alphanumeric())
                || !(16..=128).contains(&key_id.len())
            {
                return Err(ApiError::invalid_field(
                    "access_key_id",
                    "must be 16–128 letters and digits, like AKIAIOSFODNN7EXAMPLE",
                ));
            }
            let secret = required(req.secret_access_key, "secret_access_key")?;
            Credentials::AwsKeys {
                access_key_id: key_id,
                sealed_secret_access_key: state.master_key.seal(secret.as_bytes(), &id),
            }
        }
        AuthMethod::AwsRole => {
            if req.access_key_id.is_some() || req.secret_access_key.is_some() {
                return Err(ApiError::invalid_field(
                    "access_key_id",
                    "belongs to method aws_keys, not aws_role",
                ));
            }
            let role_arn = required(req.role_arn, "role_arn")?;
            validate_role_arn(&role_arn).map_err(|m| ApiError::invalid_field("role_arn", m))?;
            let external_id = match req
                .external_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
            {
                Some(ext) => {
                    validate_external_id(&ext)
                        .map_err(|m| ApiError::invalid_field("external_id", m))?;
                    ext
                }
                None => format!("tributary-{}", crate::secrets::random_hex(16)),
            };
            Credentials::AwsRole {
                role_arn,
                external_id,
            }
        }
    };
    let auth = Authorization {
        id,
        label,
        description: req.description.trim().to_owned(),
        credentials,
        // The store keeps microseconds: answer with what a later GET will show.
        created_at: Utc::now().trunc_subsecs(6),
    };
    state.store.insert_authorization(auth.clone()).await?;
    tracing::info!(id = %auth.id, label = %auth.label, "authorization created");
    Ok((StatusCode::CREATED, Json(AuthorizationView::from(&auth))))
}

fn required(value: Option<String>, field: &str) -> ApiResult<String> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid_field(field, "is required for this method"))
}

/// STS accepts 2–1224 characters of `[\w+=,.@:/-]`.
fn validate_external_id(ext: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&ext.len())
        && ext
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("must be 2–1224 characters of letters, digits and _+=,.@:/-".into())
    }
}

#[utoipa::path(get, path = "/api/authorizations", tag = TAG,
    responses((status = 200, description = "Every authorization", body = AuthorizationList)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<AuthorizationList>> {
    let all = state.store.list_authorizations().await?;
    Ok(Json(AuthorizationList {
        authorizations: all.iter().map(AuthorizationView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/authorizations/{id}", tag = TAG,
    params(("id" = String, Path, description = "The authorization's id")),
    responses(
        (status = 200, description = "The authorization, without its secret", body = AuthorizationView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AuthorizationView>> {
    let auth = state.store.get_authorization(&id).await?;
    Ok(Json(AuthorizationView::from(&auth)))
}

#[utoipa::path(delete, path = "/api/authorizations/{id}", tag = TAG,
    params(("id" = String, Path, description = "The authorization's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: jobs use it; delete them first", body = ErrorBody),
    ))]
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_authorization(&id).await?;
    tracing::info!(%id, "authorization deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the credentials with STS GetCallerIdentity (after assuming `role_arn`, if given).
#[utoipa::path(post, path = "/api/authorizations/{id}/verify", tag = TAG,
    params(("id" = String, Path, description = "The authorization's id"), VerifyQuery),
    responses(
        (status = 200, description = "The credentials work", body = Verified),
        (status = 400, description = "`invalid_field` (the region), `invalid_request`, or AWS refused the request: `invalid_credentials`, `assume_role_failed`, `aws_invalid_request`", body = ErrorBody),
        (status = 403, description = "`access_denied` by AWS", body = ErrorBody),
        (status = 404, description = "`not_found`: no such authorization", body = ErrorBody),
        (status = 429, description = "`aws_throttled`", body = ErrorBody),
        (status = 502, description = "AWS failed or could not be reached: `aws_unavailable`, `aws_unreachable`, `aws_error`", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> ApiResult<Json<Verified>> {
    let region = q.region.unwrap_or_else(|| "us-east-1".into());
    if !is_valid_region(&region) {
        return Err(ApiError::invalid_field(
            "region",
            format!("{region:?} is not an AWS region like us-east-1"),
        ));
    }
    let config = state
        .access
        .sdk_config(&id, &region, q.role_arn.as_deref())
        .await?;
    let who = state.access.connector().caller_identity(&config).await?;
    Ok(Json(Verified {
        ok: true,
        account: who.account,
        arn: who.arn,
        user_id: who.user_id,
    }))
}
