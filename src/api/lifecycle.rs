//! Data lifecycle routes: the suppression list (erasing a person is `DELETE /api/profiles/…`,
//! in [`super::profiles`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::model::lifecycle::{SuppressionList, SuppressionView};
use super::model::ErrorBody;
use crate::app::AppState;

const TAG: &str = "lifecycle";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions))
        .routes(routes!(delete_suppression))
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
        .map_err(super::error::ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}
