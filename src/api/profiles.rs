//! `/api/profiles`: profiles by identifier or id, and rebuilding them from the event log.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::model::lifecycle::{EraseByIdentifierQuery, EraseQuery, Erased};
use super::model::profiles::{FindQuery, ProfileLookup, ProfilePage, ProfileView, Rebuild};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::store::{DynStore, Profile, StoreResult};

const MAX_PAGE: u32 = 1000;

const TAG: &str = "profiles";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(find, erase_by_identifier))
        .routes(routes!(rebuild_status, rebuild))
        .routes(routes!(show, erase))
}

/// The view of one profile, its audiences read for it alone.
pub async fn profile_view(state: &AppState, profile: &Profile) -> ApiResult<ProfileView> {
    let audiences = state.cdp.audiences().await.map_err(ApiError::internal)?;
    let memberships = state
        .store
        .profile_memberships(vec![profile.id.clone()])
        .await?;
    let ids = memberships.iter().map(|m| m.audience_id.as_str());
    Ok(view(&state.store, profile, ids, &audiences, state.cdp.now()).await?)
}

/// `audience_ids`: the audiences `p` is in.
async fn view<'a>(
    store: &DynStore,
    p: &Profile,
    audience_ids: impl Iterator<Item = &'a str>,
    audiences: &crate::audiences::AudienceSet,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<ProfileView> {
    let mut identities: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (field, value) in store.profile_identities(&p.id).await? {
        identities.entry(field).or_default().push(value);
    }
    let mut slugs: Vec<String> = audience_ids
        .filter_map(|id| audiences.index_of_id(id))
        .map(|i| audiences.list[i].audience.slug.clone())
        .collect();
    slugs.sort();
    Ok(ProfileView {
        id: p.id.clone(),
        identities,
        fields: p.state.to_json_at(now),
        audiences: slugs,
        created_at: p.created_at,
        updated_at: p.updated_at,
        scores: p.state.scores(now).map(Into::into),
    })
}

/// With `field` and `value`: the profile holding that identifier. Without: a page of
/// profiles in id order (`limit`, `after`).
#[utoipa::path(get, path = "/api/profiles", tag = TAG,
    params(FindQuery),
    responses(
        (status = 200, description = "The profile (with `field` and `value`) or a page of profiles (without)", body = ProfileLookup),
        (status = 400, description = "`invalid_request` (only one of `field` and `value`, or bad parameters) or `invalid_field` (`limit`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no profile holds the identifier", body = ErrorBody),
    ))]
async fn find(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FindQuery>,
) -> ApiResult<Json<ProfileLookup>> {
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
            Ok(Json(ProfileLookup::One(
                profile_view(&state, &profile).await?,
            )))
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
            let mut profiles = Vec::with_capacity(page.len());
            for (p, members) in &page {
                let ids = members.iter().map(|(id, _)| &**id);
                profiles.push(view(&state.store, p, ids, &audiences, state.cdp.now()).await?);
            }
            let next = (page.len() as u32 == limit).then(|| page.last().map(|(p, _)| p.id.clone()));
            Ok(Json(ProfileLookup::Page(ProfilePage {
                profiles,
                total: state.store.count_profiles().await?,
                next: next.flatten(),
            })))
        }
        _ => Err(ApiError::bad_request(
            "invalid_request",
            "give both `field` and `value` (e.g. ?field=email&value=a@example.com), or neither to list profiles",
        )),
    }
}

#[utoipa::path(get, path = "/api/profiles/{id}", tag = TAG,
    params(("id" = String, Path, description = "The profile's id")),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProfileView>> {
    let profile = state.store.get_profile(&id).await?;
    Ok(Json(profile_view(&state, &profile).await?))
}

/// Rebuilds every profile from the stored events (after a mapping change), in the background.
#[utoipa::path(post, path = "/api/profiles/rebuild", tag = TAG,
    responses((status = 202, description = "Started", body = Rebuild)))]
async fn rebuild(State(state): State<AppState>) -> ApiResult<(StatusCode, Json<Rebuild>)> {
    let status = state.cdp.start_rebuild().await?;
    tracing::info!(events = status.total, "profile rebuild started");
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

#[utoipa::path(get, path = "/api/profiles/rebuild", tag = TAG,
    responses((status = 200, description = "The rebuild's progress", body = Rebuild)))]
async fn rebuild_status(State(state): State<AppState>) -> ApiResult<Json<Rebuild>> {
    Ok(Json(state.cdp.rebuild_status().await?.into()))
}

/// Erases `id`'s person: see `DELETE /api/profiles`.
async fn erase_profile(state: &AppState, id: &str, suppress: bool) -> ApiResult<Json<Erased>> {
    let record = state.cdp.erase(id, suppress).await.map_err(|e| match e {
        crate::cdp::CdpError::Store(e) => ApiError::from(e),
        other => ApiError::internal(other),
    })?;
    state.metrics.lifecycle.erasures.inc();
    Ok(Json(Erased::from(&record)))
}

/// Erases a person: the profile, its identities and memberships (an `exit` with
/// `"reason": "deleted"` goes to export jobs for each audience first), and every stored event
/// that carried one of its identifiers in a mapped identity field. With `suppress=true` the
/// identifiers go on the suppression list (as hashes), so the person does not come back.
#[utoipa::path(delete, path = "/api/profiles/{id}", tag = TAG,
    params(("id" = String, Path, description = "The profile's id"), EraseQuery),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 400, description = "`invalid_request`: bad query parameters (`suppress` is `true` or `false`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such profile", body = ErrorBody),
    ))]
async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EraseQuery>,
) -> ApiResult<Json<Erased>> {
    erase_profile(&state, &id, q.suppress.unwrap_or(false)).await
}

/// Erases the person holding an identifier (as `DELETE /api/profiles/{id}`).
#[utoipa::path(delete, path = "/api/profiles", tag = TAG,
    params(EraseByIdentifierQuery),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 400, description = "`invalid_request`: `field` and `value` are both needed, or bad query parameters (`suppress` is `true` or `false`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no profile holds the identifier", body = ErrorBody),
    ))]
async fn erase_by_identifier(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EraseByIdentifierQuery>,
) -> ApiResult<Json<Erased>> {
    let (Some(field), Some(value)) = (q.field, q.value) else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "give `field` and `value` (e.g. ?field=email&value=a@example.com), or use DELETE /api/profiles/{id}",
        ));
    };
    let found = state
        .store
        .lookup_identities(vec![(field.clone(), value)])
        .await?;
    let Some(row) = found.first() else {
        return Err(ApiError::not_found(format!(
            "no profile has this {field}; nothing to erase"
        )));
    };
    erase_profile(&state, &row.profile_id, q.suppress.unwrap_or(false)).await
}
