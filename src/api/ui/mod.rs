//! The web UI: one HTML page, one script and one stylesheet, compiled into the binary.
//!
//! # Why plain JavaScript, no framework and no build step
//!
//! Tributary is one binary that a user downloads or builds with `cargo build` and runs. The UI
//! keeps it that way:
//!
//! - **No Node.js to build or run it.** The assets in `src/api/ui/assets/` are the files the
//!   browser gets, embedded with `include_str!`; there is no bundler, no `node_modules`, no
//!   generated files to keep in sync, and `cargo build` alone produces the complete product.
//!   (Node is used only by the browser *test*, never by the build.)
//! - **No framework, no CDN.** The screens are forms, tables and a polling loop over the JSON
//!   API; a ~1,300-line script with a tiny DOM helper does that, works offline and behind
//!   firewalls, and has no supply chain beyond this repository.
//! - **Server-rendered templates were the alternative**, but every screen shows live data from
//!   the same `/api` routes the CLI uses (job status polled every 2 s, drop-downs filled from
//!   AWS, inline validation from the API's own errors), so rendering in the browser from the
//!   API keeps one source of truth and needs no second set of handlers.
//!
//! # Security
//!
//! These routes serve only static files and hold no data, so they need no token: the page asks
//! for the API token once, keeps it in `sessionStorage` (gone when the tab closes) and sends it
//! as `Authorization: Bearer …` on every `/api` call. A strict Content-Security-Policy allows
//! only this origin's script and style (no inline script), and all data is inserted into the page
//! as text nodes, never as HTML.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Only this origin's files; `connect-src 'self'` for the API; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const TAG: &str = "ui";

/// `/` and `/ui/…`: the UI's static files, outside the `/api` token layer.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(ui))
        .routes(routes!(ui_dir))
        .routes(routes!(app_js))
        .routes(routes!(app_css))
        .routes(routes!(favicon))
}

// The page has three addresses; the OpenAPI document names each, hence one handler each.

/// The web UI's page.
#[utoipa::path(get, path = "/", tag = TAG,
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn root() -> Response {
    page()
}

/// The web UI's page.
#[utoipa::path(get, path = "/ui", tag = TAG,
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn ui() -> Response {
    page()
}

/// The web UI's page.
#[utoipa::path(get, path = "/ui/", tag = TAG,
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn ui_dir() -> Response {
    page()
}

#[utoipa::path(get, path = "/ui/app.js", tag = TAG,
    responses((status = 200, description = "The UI's script", content_type = "text/javascript", body = String)))]
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(get, path = "/ui/app.css", tag = TAG,
    responses((status = 200, description = "The UI's stylesheet", content_type = "text/css", body = String)))]
async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[utoipa::path(get, path = "/ui/favicon.svg", tag = TAG,
    responses((status = 200, description = "The UI's icon", content_type = "image/svg+xml", body = String)))]
async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Small files, and a new binary must show its own UI at once: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};

    use crate::api::tests::app;

    #[tokio::test]
    async fn pages_are_served_without_a_token() {
        let app = app().await;
        for path in ["/", "/ui/", "/ui/app.js", "/ui/app.css", "/ui/favicon.svg"] {
            let (status, body) = app.send(Method::GET, path, vec![], false).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.as_str().unwrap_or("").is_empty(), "{path}");
        }
        let (_, page) = app.send(Method::GET, "/", vec![], false).await;
        let page = page.as_str().unwrap();
        assert!(page.contains("/ui/app.js") && page.contains("/ui/app.css"));
        // The API itself still needs the token.
        let (status, _) = app.send(Method::GET, "/api/jobs", vec![], false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn assets_have_no_inline_script_or_remote_urls() {
        let html = super::INDEX_HTML;
        assert!(
            !html.contains("<script>"),
            "inline script would break the CSP"
        );
        for asset in [super::INDEX_HTML, super::APP_JS, super::APP_CSS] {
            assert!(!asset.contains("https://"), "no CDN or remote assets");
        }
    }
}
