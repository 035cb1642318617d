//! `/api/audiences`: audiences written in the filter language, their members, and (through
//! the membership engine) the entry/exit changes export jobs publish.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::audiences::AudienceError;
use crate::cdp::CdpError;
use crate::store::Audience;

const MAX_SLUG: usize = 64;
const MAX_NAME: usize = 200;
const MAX_FILTER_BYTES: usize = 64 * 1024;
const MAX_PAGE: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/audiences", get(list).post(create))
        .route(
            "/api/audiences/{slug}",
            get(show).put(update).delete(remove),
        )
        .route("/api/audiences/{slug}/members", get(members))
        .route("/api/audience-changes", get(changes))
}

pub fn view(a: &Audience, members: Option<u64>) -> Value {
    let mut v = json!({
        "id": a.id,
        "slug": a.slug,
        "name": a.name,
        "description": a.description,
        "filter": a.filter,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    });
    if let Some(n) = members {
        v["members"] = n.into();
    }
    v
}

fn validate_slug(slug: &str) -> ApiResult<()> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && slug
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "slug",
            format!("must be 1–{MAX_SLUG} characters of a-z, 0-9, _ and -, starting with a letter or digit"),
        ))
    }
}

fn validate_text(name: &str, filter: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be 1–{MAX_NAME} characters"),
        ));
    }
    if filter.len() > MAX_FILTER_BYTES {
        return Err(ApiError::invalid_field(
            "filter",
            format!("is over {MAX_FILTER_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn cdp_error(e: CdpError) -> ApiError {
    match e {
        CdpError::Store(e) => e.into(),
        CdpError::Parse(e) => ApiError::bad_request("invalid_filter", e.to_string()),
        CdpError::Audience(AudienceError::Parse(e)) => {
            ApiError::bad_request("invalid_filter", e.to_string())
        }
        CdpError::Audience(e @ AudienceError::Included { .. }) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        CdpError::Audience(e) => ApiError::bad_request("invalid_filter", e.to_string()),
        other => ApiError::internal(other),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    slug: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    filter: String,
}

async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    validate_slug(&req.slug)?;
    let name = req.name.unwrap_or_else(|| req.slug.clone());
    validate_text(&name, &req.filter)?;
    let now = Utc::now().trunc_subsecs(6);
    let audience = Audience {
        id: uuid::Uuid::now_v7().to_string(),
        slug: req.slug,
        name,
        description: req.description,
        filter: req.filter,
        created_at: now,
        updated_at: now,
    };
    let parsed = state
        .cdp
        .create_audience(audience.clone())
        .await
        .map_err(cdp_error)?;
    tracing::info!(slug = %audience.slug, "audience created");
    let mut v = view(&audience, Some(0));
    v["parsed"] = json!(parsed);
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let all = state.store.list_audiences().await?;
    Ok(Json(json!({
        "audiences": all.iter().map(|(a, n)| view(a, Some(*n))).collect::<Vec<_>>()
    })))
}

async fn show(State(state): State<AppState>, Path(slug): Path<String>) -> ApiResult<Json<Value>> {
    let all = state.store.list_audiences().await?;
    let (a, n) = all
        .iter()
        .find(|(a, _)| a.slug == slug)
        .ok_or_else(|| ApiError::not_found(format!("audience {slug:?} not found")))?;
    let mut v = view(a, Some(*n));
    if let Ok(f) = tributary_lang::parse_filter(&a.filter) {
        v["parsed"] = json!(f);
        v["fields_read"] = json!(f.fields_read());
        v["time_relative"] = f.is_time_relative().into();
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    name: Option<String>,
    description: Option<String>,
    filter: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> ApiResult<Json<Value>> {
    let mut a = state.store.get_audience(&slug).await?;
    if let Some(n) = req.name {
        a.name = n;
    }
    if let Some(d) = req.description {
        a.description = d;
    }
    if let Some(f) = req.filter {
        a.filter = f;
    }
    validate_text(&a.name, &a.filter)?;
    a.updated_at = Utc::now().trunc_subsecs(6);
    let parsed = state
        .cdp
        .update_audience(a.clone())
        .await
        .map_err(cdp_error)?;
    tracing::info!(%slug, "audience changed; re-evaluating every profile");
    let mut v = view(&a, None);
    v["parsed"] = json!(parsed);
    Ok(Json(v))
}

async fn remove(State(state): State<AppState>, Path(slug): Path<String>) -> ApiResult<StatusCode> {
    state.cdp.delete_audience(&slug).await.map_err(cdp_error)?;
    tracing::info!(%slug, "audience deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// `{"members":[{"profile_id","entered_at"}],"next": cursor or null}`.
async fn members(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<MembersQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be 1–{MAX_PAGE}"),
        ));
    }
    let a = state.store.get_audience(&slug).await?;
    let page = state.store.list_members(&a.id, q.after, limit).await?;
    let next = if page.len() as u32 == limit {
        page.last().map(|m| m.profile_id.clone())
    } else {
        None
    };
    Ok(Json(json!({
        "members": page.iter().map(|m| json!({"profile_id": m.profile_id, "entered_at": m.entered_at})).collect::<Vec<_>>(),
        "next": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// The audience-change outbox after `after` (a `seq`), oldest first:
/// `{"changes":[{"seq","audience_id","audience","profile_id","kind","at"}],"next": seq or null}`.
async fn changes(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be 1–{MAX_PAGE}"),
        ));
    }
    let page = state
        .store
        .list_audience_changes(q.after.unwrap_or(0), limit)
        .await?;
    let next = page.last().map(|c| c.seq);
    Ok(Json(json!({
        "changes": page.iter().map(|c| json!({
            "seq": c.seq,
            "audience_id": c.audience_id,
            "audience": c.audience_slug,
            "profile_id": c.profile_id,
            "kind": c.kind.as_str(),
            "at": c.at,
        })).collect::<Vec<_>>(),
        "next": next,
    })))
}
