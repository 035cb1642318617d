//! `/api/authorizations`: AWS credentials, stored sealed and never shown again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::aws::{is_valid_region, validate_role_arn};
use crate::store::{Authorization, Credentials};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/authorizations", get(list).post(create))
        .route("/api/authorizations/{id}", get(show).delete(remove))
        .route("/api/authorizations/{id}/verify", post(verify))
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Method {
    AwsKeys,
    AwsRole,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    label: String,
    #[serde(default)]
    description: String,
    method: Method,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

const MAX_LABEL: usize = 100;

/// The public view of an authorization: the secret key appears only as `****`.
pub fn view(auth: &Authorization) -> Value {
    let mut v = json!({
        "id": auth.id,
        "label": auth.label,
        "description": auth.description,
        "created_at": auth.created_at,
    });
    let o = v.as_object_mut().expect("object");
    match &auth.credentials {
        Credentials::AwsKeys { access_key_id, .. } => {
            o.insert("method".into(), "aws_keys".into());
            o.insert("access_key_id".into(), access_key_id.clone().into());
            o.insert("secret_access_key".into(), "****".into());
        }
        Credentials::AwsRole {
            role_arn,
            external_id,
        } => {
            o.insert("method".into(), "aws_role".into());
            o.insert("role_arn".into(), role_arn.clone().into());
            o.insert("external_id".into(), external_id.clone().into());
        }
    }
    v
}

async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
        Method::AwsKeys => {
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
        Method::AwsRole => {
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
    Ok((StatusCode::CREATED, Json(view(&auth))))
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

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let all = state.store.list_authorizations().await?;
    Ok(Json(
        json!({ "authorizations": all.iter().map(view).collect::<Vec<_>>() }),
    ))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state.store.get_authorization(&id).await?)))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_authorization(&id).await?;
    tracing::info!(%id, "authorization deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct VerifyQuery {
    region: Option<String>,
    role_arn: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> ApiResult<Json<Value>> {
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
    let who = state.aws.caller_identity(&config).await?;
    Ok(Json(
        json!({ "ok": true, "account": who.account, "arn": who.arn, "user_id": who.user_id }),
    ))
}
