//! Data lifecycle routes: the suppression list (erasing a person is `DELETE /api/profiles/…`,
//! in [`super::profiles`]) and stream retention.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::model::lifecycle::{
    BackupRequest, BackupView, RetentionRequest, RetentionView, SuppressionList, SuppressionView,
};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::config::{format_age, parse_age};
use crate::jobs::import::validate_event_stream_name;

const TAG: &str = "lifecycle";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions))
        .routes(routes!(delete_suppression))
        .routes(routes!(get_retention, put_retention))
        .routes(routes!(backup))
}

/// Copies the store (SQLite: both files, as of one instant) into `dest_dir` while everything
/// keeps running; writes wait for the copy. The master key is not copied. A PostgreSQL store
/// answers 409: back it up with pg_dump.
#[utoipa::path(post, path = "/api/backup", tag = TAG,
    request_body = BackupRequest,
    responses(
        (status = 200, description = "The backup's files", body = BackupView),
        (status = 400, description = "`invalid_field` (`dest_dir` is not an absolute path) or `invalid_request`", body = ErrorBody),
        (status = 409, description = "`conflict`: a file is already there, or the store is PostgreSQL (use pg_dump)", body = ErrorBody),
    ))]
async fn backup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BackupRequest>,
) -> ApiResult<Json<BackupView>> {
    // A relative path would land in the server process's working directory, which a caller
    // cannot know (a fuzzed API once filled a checkout with backups that way).
    if !std::path::Path::new(&req.dest_dir).is_absolute() {
        return Err(ApiError::invalid_field(
            "dest_dir",
            "give an absolute path of a directory on the server's machine",
        ));
    }
    let started = std::time::Instant::now();
    let report = state.store.backup_to(req.dest_dir.clone().into()).await?;
    tracing::info!(dest = %req.dest_dir, bytes = report.bytes, seconds = started.elapsed().as_secs_f64(), "backup written");
    Ok(Json(BackupView {
        files: report
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        bytes: report.bytes,
    }))
}

/// The retention `stream` follows: its own, else the server's default.
async fn retention_view(state: &AppState, stream: &str) -> ApiResult<RetentionView> {
    let own = state
        .store
        .list_stream_retention()
        .await?
        .into_iter()
        .find(|r| r.stream == stream);
    Ok(match own {
        Some(r) => RetentionView {
            stream: stream.to_owned(),
            max_age: r
                .max_age_secs
                .map(|s| format_age(std::time::Duration::from_secs(s.max(0) as u64))),
            source: "stream".into(),
        },
        None => RetentionView {
            stream: stream.to_owned(),
            max_age: state.retention.default_max_age.map(format_age),
            source: "default".into(),
        },
    })
}

/// How long a stream keeps its events.
#[utoipa::path(get, path = "/api/streams/{name}/retention", tag = TAG,
    params(("name" = String, Path, description = "The event stream")),
    responses(
        (status = 200, description = "The stream's retention", body = RetentionView),
        (status = 400, description = "`invalid_field` (the stream name)", body = ErrorBody),
    ))]
async fn get_retention(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<RetentionView>> {
    validate_event_stream_name(&name).map_err(|m| ApiError::invalid_field("stream", m))?;
    Ok(Json(retention_view(&state, &name).await?))
}

/// Sets how long a stream keeps its events: older ones are deleted in the background within
/// a minute of being due (never before the profile processor has applied them).
#[utoipa::path(put, path = "/api/streams/{name}/retention", tag = TAG,
    params(("name" = String, Path, description = "The event stream")),
    request_body = RetentionRequest,
    responses(
        (status = 200, description = "The stream's retention", body = RetentionView),
        (status = 400, description = "`invalid_field` (`max_age` or the stream name) or `invalid_request`", body = ErrorBody),
    ))]
async fn put_retention(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RetentionRequest>,
) -> ApiResult<Json<RetentionView>> {
    validate_event_stream_name(&name).map_err(|m| ApiError::invalid_field("stream", m))?;
    let secs = match req.max_age.as_deref() {
        None => None,
        Some(text) => match parse_age(text) {
            Ok(Some(age)) => Some(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)),
            Ok(None) => None,
            Err(m) => return Err(ApiError::invalid_field("max_age", m)),
        },
    };
    state.store.set_stream_retention(&name, secs).await?;
    tracing::info!(stream = %name, max_age = ?req.max_age, "stream retention set");
    Ok(Json(retention_view(&state, &name).await?))
}

/// The suppression list: identifiers (as SHA-256 hashes of their values) whose events are
/// dropped at import and at `POST /api/collect`.
#[utoipa::path(get, path = "/api/suppressions", tag = TAG,
    responses((status = 200, description = "Every suppressed identifier", body = SuppressionList)))]
async fn list_suppressions(State(state): State<AppState>) -> ApiResult<Json<SuppressionList>> {
    let list = state.store.list_suppressions().await?;
    Ok(Json(SuppressionList {
        suppressions: list.iter().map(SuppressionView::from).collect(),
    }))
}

/// Takes an identifier off the suppression list: its events are stored again from now on.
#[utoipa::path(delete, path = "/api/suppressions/{id}", tag = TAG,
    params(("id" = String, Path, description = "The suppression's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn delete_suppression(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_suppression(&id).await?;
    state
        .cdp
        .refresh_suppressions()
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}
