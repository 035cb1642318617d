//! `/api/audiences`: audiences written in the filter language, their members, and (through
//! the membership engine) the entry/exit changes export jobs publish.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{SubsecRound, Utc};
use tributary_lang::Filter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::model::audiences::{
    AudienceChangeView, AudienceList, AudienceView, ChangesPage, ChangesQuery, CreateAudience,
    Member, MembersPage, MembersQuery, UpdateAudience,
};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::audiences::AudienceError;
use crate::cdp::CdpError;
use crate::store::Audience;

const MAX_SLUG: usize = 64;
const MAX_NAME: usize = 200;
const MAX_FILTER_BYTES: usize = 64 * 1024;
const MAX_PAGE: u32 = 1000;

const TAG: &str = "audiences";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(members))
        .routes(routes!(changes))
}

/// A parsed filter as JSON: its syntax tree.
fn parsed_json(parsed: &Filter) -> ApiResult<serde_json::Value> {
    serde_json::to_value(parsed).map_err(ApiError::internal)
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

/// Creates an audience; every profile is evaluated against it in the background.
#[utoipa::path(post, path = "/api/audiences", tag = TAG,
    request_body = CreateAudience,
    responses(
        (status = 201, description = "Created (`members` is 0 until evaluated; with `parsed`)", body = AudienceView),
        (status = 400, description = "`invalid_field` (`slug`, `name`, `filter`), `invalid_filter` or `invalid_request`", body = ErrorBody),
        (status = 409, description = "`conflict`: the slug is taken", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateAudience>,
) -> ApiResult<(StatusCode, Json<AudienceView>)> {
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
    let view = AudienceView {
        parsed: Some(parsed_json(&parsed)?),
        ..AudienceView::new(&audience, Some(0))
    }
    .with_filter_facts(&parsed);
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/audiences", tag = TAG,
    responses((status = 200, description = "Every audience with its member count", body = AudienceList)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<AudienceList>> {
    let all = state.store.list_audiences().await?;
    Ok(Json(AudienceList {
        audiences: all
            .iter()
            .map(|(a, n)| {
                let view = AudienceView::new(a, Some(*n));
                match tributary_lang::parse_filter(&a.filter) {
                    Ok(f) => view.with_filter_facts(&f),
                    Err(_) => view,
                }
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/audiences/{slug}", tag = TAG,
    params(("slug" = String, Path, description = "The audience's slug")),
    responses(
        (status = 200, description = "The audience with its member count, and (when its filter parses) `parsed`, `fields_read` and `time_relative`", body = AudienceView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> ApiResult<Json<AudienceView>> {
    let all = state.store.list_audiences().await?;
    let (a, n) = all
        .iter()
        .find(|(a, _)| a.slug == slug)
        .ok_or_else(|| ApiError::not_found(format!("audience {slug:?} not found")))?;
    let mut view = AudienceView::new(a, Some(*n));
    if let Ok(f) = tributary_lang::parse_filter(&a.filter) {
        view = view.with_filter_facts(&f);
        view.parsed = Some(parsed_json(&f)?);
        view.fields_read = Some(f.fields_read().into_iter().collect());
        view.time_relative = Some(f.is_time_relative());
    }
    Ok(Json(view))
}

/// Changes an audience's name, description or filter; a new filter re-evaluates every profile.
#[utoipa::path(put, path = "/api/audiences/{slug}", tag = TAG,
    params(("slug" = String, Path, description = "The audience's slug")),
    request_body = UpdateAudience,
    responses(
        (status = 200, description = "Changed (with `parsed`, without `members`)", body = AudienceView),
        (status = 400, description = "`invalid_field` (`name`, `filter`), `invalid_filter` or `invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<UpdateAudience>,
) -> ApiResult<Json<AudienceView>> {
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
    Ok(Json(
        AudienceView {
            parsed: Some(parsed_json(&parsed)?),
            ..AudienceView::new(&a, None)
        }
        .with_filter_facts(&parsed),
    ))
}

#[utoipa::path(delete, path = "/api/audiences/{slug}", tag = TAG,
    params(("slug" = String, Path, description = "The audience's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: another audience INCLUDEs it", body = ErrorBody),
    ))]
async fn remove(State(state): State<AppState>, Path(slug): Path<String>) -> ApiResult<StatusCode> {
    state.cdp.delete_audience(&slug).await.map_err(cdp_error)?;
    tracing::info!(%slug, "audience deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The audience's members (profile ids), a page at a time.
#[utoipa::path(get, path = "/api/audiences/{slug}/members", tag = TAG,
    params(("slug" = String, Path, description = "The audience's slug"), MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = MembersPage),
        (status = 400, description = "`invalid_field` (`limit`) or `invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn members(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<MembersQuery>,
) -> ApiResult<Json<MembersPage>> {
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
    Ok(Json(MembersPage {
        members: page.iter().map(Member::from).collect(),
        next,
    }))
}

/// The audience-change outbox after `after` (a `seq`), oldest first.
#[utoipa::path(get, path = "/api/audience-changes", tag = TAG,
    params(ChangesQuery),
    responses(
        (status = 200, description = "A page of changes", body = ChangesPage),
        (status = 400, description = "`invalid_field` (`limit`) or `invalid_request`", body = ErrorBody),
    ))]
async fn changes(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
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
    Ok(Json(ChangesPage {
        changes: page.iter().map(AudienceChangeView::from).collect(),
        next: page.last().map(|c| c.seq),
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use crate::api::tests::app;

    /// FilterQL's `WITH` pairs come back as the audience's metadata, and its ignored `LIMIT`
    /// as a note, wherever the audience is shown.
    #[tokio::test]
    async fn filterql_metadata_and_notes_are_returned() {
        let app = app().await;
        let filter =
            "FILTER visits > 3 FROM user LIMIT 100 WITH name = \"Big spenders\", public = false";
        let (status, created) = app
            .post("/api/audiences", json!({"slug": "big", "filter": filter}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let metadata = json!({"name": "Big spenders", "public": false});
        assert_eq!(created["metadata"], metadata);
        let note = created["notes"][0].as_str().unwrap_or_default();
        assert!(note.contains("LIMIT"), "{created}");
        let (_, shown) = app.get("/api/audiences/big").await;
        assert_eq!(shown["metadata"], metadata);
        let (_, list) = app.get("/api/audiences").await;
        assert_eq!(list["audiences"][0]["metadata"], metadata);

        // A filter without them shows neither key, as before.
        let (_, plain) = app
            .post(
                "/api/audiences",
                json!({"slug": "plain", "filter": "visits > 3"}),
            )
            .await;
        assert!(
            plain.get("metadata").is_none() && plain.get("notes").is_none(),
            "{plain}"
        );
        assert!(plain["parsed"].get("metadata").is_none(), "{plain}");
    }
}
