//! `/api/profiles`: profiles by identifier or id, and rebuilding them from the event log.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::store::{DynStore, Profile, StoreResult};

const MAX_PAGE: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/profiles", get(find))
        .route("/api/profiles/rebuild", get(rebuild_status).post(rebuild))
        .route("/api/profiles/{id}", get(show))
}

/// `{"id","identities":{field:[values]},"fields":{…},"audiences":[slugs],"created_at","updated_at"}`.
pub async fn profile_view(state: &AppState, profile: &Profile) -> ApiResult<Value> {
    let audiences = state.cdp.audiences().await.map_err(ApiError::internal)?;
    let memberships = state
        .store
        .profile_memberships(vec![profile.id.clone()])
        .await?;
    let ids = memberships.iter().map(|m| m.audience_id.as_str());
    Ok(view(&state.store, profile, ids, &audiences).await?)
}

/// `audience_ids`: the audiences `p` is in.
async fn view<'a>(
    store: &DynStore,
    p: &Profile,
    audience_ids: impl Iterator<Item = &'a str>,
    audiences: &crate::audiences::AudienceSet,
) -> StoreResult<Value> {
    let mut identities: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (field, value) in store.profile_identities(&p.id).await? {
        identities.entry(field).or_default().push(value);
    }
    let mut slugs: Vec<String> = audience_ids
        .filter_map(|id| audiences.index_of_id(id))
        .map(|i| audiences.list[i].audience.slug.clone())
        .collect();
    slugs.sort();
    Ok(json!({
        "id": p.id,
        "identities": identities,
        "fields": p.state.to_json(),
        "audiences": slugs,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    field: Option<String>,
    value: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// With `field` and `value`: the profile holding that identifier. Without: a page of
/// profiles in id order (`limit`, `after`).
async fn find(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FindQuery>,
) -> ApiResult<Json<Value>> {
    match (q.field, q.value) {
        (Some(field), Some(value)) => {
            let found = state
                .store
                .lookup_identities(vec![(field.clone(), value.clone())])
                .await?;
            let Some(row) = found.first() else {
                return Err(ApiError::not_found(format!(
                    "no profile has {field} = {value:?}"
                )));
            };
            let profile = state.store.get_profile(&row.profile_id).await?;
            Ok(Json(profile_view(&state, &profile).await?))
        }
        (None, None) => {
            let limit = q.limit.unwrap_or(50);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(ApiError::invalid_field(
                    "limit",
                    format!("must be 1–{MAX_PAGE}"),
                ));
            }
            let page = state.store.list_profiles(q.after, limit).await?;
            let audiences = state.cdp.audiences().await.map_err(ApiError::internal)?;
            let mut out = Vec::with_capacity(page.len());
            for (p, members) in &page {
                let ids = members.iter().map(|(id, _)| &**id);
                out.push(view(&state.store, p, ids, &audiences).await?);
            }
            let next = (page.len() as u32 == limit).then(|| page.last().map(|(p, _)| p.id.clone()));
            Ok(Json(json!({
                "profiles": out,
                "total": state.store.count_profiles().await?,
                "next": next.flatten(),
            })))
        }
        _ => Err(ApiError::bad_request(
            "invalid_request",
            "give both `field` and `value` (e.g. ?field=email&value=a@example.com), or neither to list profiles",
        )),
    }
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let profile = state.store.get_profile(&id).await?;
    Ok(Json(profile_view(&state, &profile).await?))
}

async fn rebuild(State(state): State<AppState>) -> ApiResult<(StatusCode, Json<Value>)> {
    let status = state.cdp.start_rebuild().await?;
    tracing::info!(events = status.total, "profile rebuild started");
    Ok((StatusCode::ACCEPTED, Json(json!(status))))
}

async fn rebuild_status(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.cdp.rebuild_status().await?)))
}
