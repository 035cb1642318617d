//! `/api/streams/{name}/mapping` (one mapping per event stream) and `/api/schema` (every
//! profile field the mappings define).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tributary_lang::{parse_mapping, Mapping};

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::cdp::CdpError;
use crate::store::StreamMapping;

/// Mapping texts longer than this are refused.
const MAX_MAPPING_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/streams/{name}/mapping", get(show).put(set))
        .route("/api/schema", get(schema))
}

/// The parsed field list of a mapping.
pub fn mapping_view(stored: &StreamMapping, mapping: &Mapping) -> Value {
    json!({
        "stream": stored.stream,
        "text": stored.text,
        "into": mapping.into,
        "by": mapping.identities,
        "alias": mapping.alias,
        "fields": mapping.fields.iter().map(|f| json!({
            "name": f.name,
            "kind": f.kind,
            "aggregate": format!("{:?}", f.aggregate).to_lowercase(),
            "merge_op": f.merge_op.name(),
            "short_desc": f.short_desc,
            "line": f.span.line,
            "column": f.span.column,
        })).collect::<Vec<_>>(),
        "updated_at": stored.updated_at,
    })
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

async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Value>> {
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
            Ok(Json(mapping_view(&stored, &mapping)))
        }
        Err(CdpError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::bad_request("invalid_mapping", e.to_string())),
    }
}

async fn show(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let stored = state.store.get_mapping(&name).await?;
    let mapping = parse_mapping(&stored.text).map_err(ApiError::internal)?;
    Ok(Json(mapping_view(&stored, &mapping)))
}

async fn schema(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let registry = state.cdp.mappings().await?;
    Ok(Json(json!({ "fields": registry.schema() })))
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
}
