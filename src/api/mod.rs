//! The HTTP API: one router per resource, merged over shared [`AppState`]. Every `/api/...`
//! route requires the bearer token; `/healthz` and `/metrics` do not.

pub mod authorizations;
pub mod aws;
pub mod error;
pub mod extract;
mod health;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::app::AppState;
use error::ApiError;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(authorizations::router())
        .merge(aws::router())
        .fallback(|| async {
            ApiError::not_found("no such API route; see the README's API reference")
        })
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(health::router())
        .merge(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.api_token.matches(token) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    state
        .metrics
        .http_requests
        .with_label_values(&[&method, response.status().as_str()])
        .inc();
    response
}
