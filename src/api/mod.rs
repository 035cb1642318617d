//! The HTTP API: one router per resource, merged over shared [`AppState`]. Every `/api/...`
//! route requires the bearer token; `/healthz`, `/metrics`, `/api/openapi.json` and the UI's
//! files do not. Each resource's router is an [`OpenApiRouter`], so the OpenAPI document
//! (see [`openapi`]) is built from the very routes served.

pub mod audiences;
pub mod authorizations;
pub mod aws;
pub mod cluster;
pub mod error;
pub mod extract;
mod health;
pub mod jobs;
pub mod lifecycle;
pub mod mapping;
pub mod model;
mod openapi;
pub mod profiles;
pub mod streams;
mod ui;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use error::ApiError;

pub fn router(state: AppState) -> Router {
    let api = protected_routes()
        .fallback(|| async {
            ApiError::not_found("no such API route; see the README's API reference")
        })
        // `layer`, not `route_layer`: the fallback needs the token too, so that without it an
        // unknown `/api` path and a real one both answer 401 and the routes cannot be listed.
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let (router, _) = public_routes().merge(api).split_for_parts();
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The routes anyone may call: liveness, metrics, the UI's files and the OpenAPI document.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(ui::router())
        .merge(openapi::router())
}

/// The routes that need the bearer token; the document says so of each.
fn protected_routes() -> OpenApiRouter<AppState> {
    openapi::token_required(
        OpenApiRouter::new()
            .merge(authorizations::router())
            .merge(aws::router())
            .merge(jobs::router())
            .merge(streams::router())
            .merge(mapping::router())
            .merge(profiles::router())
            .merge(audiences::router())
            .merge(cluster::router())
            .merge(lifecycle::router()),
    )
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

/// An in-process server for HTTP-level tests: a temp-dir SQLite store, token `t`, no network.
#[cfg(test)]
pub(crate) mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use crate::app::AppState;
    use crate::aws::AwsConnector;
    use crate::metrics::Metrics;
    use crate::secrets::{ApiToken, MasterKey};

    pub const TOKEN: &str = "t";

    pub struct TestApp {
        pub state: AppState,
        router: axum::Router,
        _dir: tempfile::TempDir,
    }

    pub async fn app() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("store opens");
        let store: crate::store::DynStore = std::sync::Arc::new(store);
        let state = AppState::new(
            store,
            MasterKey::from_hex(&"ab".repeat(32)).expect("key"),
            ApiToken {
                value: TOKEN.into(),
                generated: false,
                path: None,
            },
            AwsConnector::from_environment().await,
            Metrics::new(),
        );
        TestApp {
            router: super::router(state.clone()),
            state,
            _dir: dir,
        }
    }

    impl TestApp {
        /// Sends raw bytes; `token` false leaves the Authorization header out.
        pub async fn send(
            &self,
            method: Method,
            path: &str,
            body: Vec<u8>,
            token: bool,
        ) -> (StatusCode, Value) {
            let mut req = Request::builder().method(method).uri(path);
            if token {
                req = req.header("authorization", format!("Bearer {TOKEN}"));
            }
            let req = req
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request builds");
            let resp = self
                .router
                .clone()
                .oneshot(req)
                .await
                .expect("router answers");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body reads");
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            (status, value)
        }

        pub async fn get(&self, path: &str) -> (StatusCode, Value) {
            self.send(Method::GET, path, vec![], true).await
        }

        pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
            self.send(Method::POST, path, body.to_string().into_bytes(), true)
                .await
        }

        pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
            self.send(Method::DELETE, path, vec![], true).await
        }
    }
}
