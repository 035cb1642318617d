//! `/api/streams/{name}/mapping` (one mapping per event stream) and `/api/schema` (every
//! profile field the mappings define).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use tributary_lang::parse_mapping;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::model::mappings::{MappingJson, MappingView, ProfileSchema, SchemaField, ScoreField};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::cdp::CdpError;

/// Mapping texts longer than this are refused.
const MAX_MAPPING_BYTES: usize = 256 * 1024;

const TAG: &str = "mappings";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, set))
        .routes(routes!(schema))
}

/// The body is the mapping text; a JSON string, or an object with `mapping` (or `text`), is
/// accepted too.
fn mapping_text(body: String) -> ApiResult<String> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('"') || trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            return match v {
                Value::String(s) => Ok(s),
                Value::Object(o) => o
                    .get("mapping")
                    .or_else(|| o.get("text"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_request",
                            "send the mapping text as the body (or JSON {\"mapping\": \"SELECT …\"})",
                        )
                    }),
                _ => Err(ApiError::bad_request(
                    "invalid_request",
                    "send the mapping text as the body",
                )),
            };
        }
    }
    Ok(body)
}

/// Sets the stream's mapping: the events of `name` become profile fields as it says.
#[utoipa::path(put, path = "/api/streams/{name}/mapping", tag = TAG,
    params(("name" = String, Path, description = "The event stream (the mapping's FROM)")),
    request_body(description = "The mapping text (`SELECT … FROM name INTO user BY …`), plain or as JSON",
        content(
            (String = "text/plain"),
            (MappingJson = "application/json"),
        )),
    responses(
        (status = 200, description = "Set; its parsed fields, and `unapplied_events` (with a `hint` when > 0)", body = MappingView),
        (status = 400, description = "`invalid_mapping` (the message says where) or `invalid_request`", body = ErrorBody),
    ))]
async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<MappingView>> {
    // Bytes, not String: axum's own rejection of invalid UTF-8 is a text/plain body.
    let body = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("the mapping must be UTF-8 text: {e}"),
        )
    })?;
    if body.len() > MAX_MAPPING_BYTES {
        return Err(ApiError::bad_request(
            "invalid_mapping",
            format!("the mapping is over {MAX_MAPPING_BYTES} bytes"),
        ));
    }
    let text = mapping_text(body)?;
    match state.cdp.set_mapping(&name, &text).await {
        Ok((mapping, stored)) => {
            tracing::info!(stream = %name, "mapping set");
            let unapplied = state.cdp.passed_events(&name).await?;
            Ok(Json(
                MappingView::new(&stored, &mapping).with_unapplied(unapplied),
            ))
        }
        Err(CdpError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::bad_request("invalid_mapping", e.to_string())),
    }
}

#[utoipa::path(get, path = "/api/streams/{name}/mapping", tag = TAG,
    params(("name" = String, Path, description = "The event stream")),
    responses(
        (status = 200, description = "The mapping and its parsed fields", body = MappingView),
        (status = 404, description = "`not_found`: the stream has no mapping", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<MappingView>> {
    let stored = state.store.get_mapping(&name).await?;
    let mapping = parse_mapping(&stored.text).map_err(ApiError::internal)?;
    Ok(Json(MappingView::new(&stored, &mapping)))
}

/// Every profile field the mappings define.
#[utoipa::path(get, path = "/api/schema", tag = TAG,
    responses((status = 200, description = "The profile schema", body = ProfileSchema)))]
async fn schema(State(state): State<AppState>) -> ApiResult<Json<ProfileSchema>> {
    let registry = state.cdp.mappings().await?;
    Ok(Json(ProfileSchema {
        fields: registry
            .schema()
            .into_iter()
            .map(SchemaField::from)
            .collect(),
        scores: ScoreField::all(),
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};

    use crate::api::tests::app;

    const MAPPING: &str = "SELECT
    email(email) AS email KIND string,
    count(*)     AS visits KIND int
FROM web
INTO user BY email";

    #[tokio::test]
    async fn put_checks_the_mapping_and_shows_its_fields() {
        let app = app().await;
        let (status, body) = app
            .send(
                Method::PUT,
                "/api/streams/web/mapping",
                MAPPING.into(),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["fields"][1]["name"], "visits");
        assert_eq!(body["fields"][1]["merge_op"], "COUNT");
        assert_eq!(body["by"][0], "email");
        let (status, got) = app.get("/api/streams/web/mapping").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["text"], MAPPING);

        let bad = "SELECT\n  count(*) AS visits KIND string\nFROM web INTO user BY visits";
        let (status, body) = app
            .send(Method::PUT, "/api/streams/web/mapping", bad.into(), true)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_mapping");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("line 2, column"),
            "{body}"
        );
        let (status, body) = app
            .send(
                Method::PUT,
                "/api/streams/other/mapping",
                MAPPING.into(),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = app.get("/api/streams/nope/mapping").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, schema) = app.get("/api/schema").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(schema["fields"][0]["name"], "email");
        assert_eq!(schema["fields"][0]["identity"], true);
        assert_eq!(schema["fields"][1]["kind"], "int");
        assert_eq!(schema["fields"][1]["streams"][0], "web");
    }

    /// A mapping set after events were stored says how many it is not applied to, and how to
    /// apply it to them.
    #[tokio::test]
    async fn put_names_the_stored_events_the_mapping_is_not_applied_to() {
        let app = app().await;
        let put = || {
            app.send(
                Method::PUT,
                "/api/streams/web/mapping",
                MAPPING.into(),
                true,
            )
        };
        let (status, first) = put().await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["unapplied_events"], 0);
        assert!(first.get("hint").is_none(), "{first}");

        let events = r#"[{"email": "a@x.io"}, {"email": "b@x.io"}]"#;
        let (status, _) = app
            .send(Method::POST, "/api/collect/other", events.into(), true)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, _) = app
            .send(Method::POST, "/api/collect/web", events.into(), true)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        // Not yet processed: the mapping will reach them.
        assert_eq!(put().await.1["unapplied_events"], 0);
        // Processed (under the mapping before): a new one does not reach them.
        app.state.cdp.step(1000).await.unwrap();
        let (_, again) = put().await;
        assert_eq!(again["unapplied_events"], 2, "{again}");
        let hint = again["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("POST /api/profiles/rebuild"), "{again}");
        assert!(app
            .get("/api/streams/web/mapping")
            .await
            .1
            .get("unapplied_events")
            .is_none());
    }

    /// Windowed fields show their window in the schema and their value at the request's
    /// time in the profile; every profile shows its engagement scores.
    #[tokio::test]
    async fn windowed_fields_and_scores_show_in_the_schema_and_the_profile() {
        let app = app().await;
        let mapping = r#"SELECT email(email) AS email,
            count(*) AS buys_7d KIND int WINDOW 7d IF eq(event, "buy")
            FROM web INTO user BY email"#;
        let (status, body) = app
            .send(
                Method::PUT,
                "/api/streams/web/mapping",
                mapping.into(),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let now = chrono::Utc::now();
        let events = serde_json::json!([
            {"email": "a@x.io", "event": "buy", "ts": now.to_rfc3339()},
            {"email": "a@x.io", "event": "buy", "ts": (now - chrono::Duration::days(9)).to_rfc3339()},
        ]);
        let (status, _) = app
            .send(
                Method::POST,
                "/api/collect/web",
                events.to_string().into(),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        app.state.cdp.step(1000).await.unwrap();

        let (_, schema) = app.get("/api/schema").await;
        let buys = &schema["fields"][0];
        assert_eq!(
            (&buys["name"], &buys["window"]),
            (&"buys_7d".into(), &"7d".into())
        );
        let names: Vec<&str> = schema["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, tributary_lang::SCORE_NAMES);

        let (status, p) = app.get("/api/profiles?field=email&value=a@x.io").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(
            p["fields"]["buys_7d"], 1,
            "the buy of 9 days ago is outside: {p}"
        );
        let recency = p["scores"]["recency"].as_u64().unwrap();
        assert!(recency >= 99, "{p}");
        assert!(p["scores"]["momentum"].as_u64().unwrap() <= 100);
    }
}
