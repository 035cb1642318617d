//! `/api/streams` (Tributary's own event streams, newest events first) and `/api/collect`
//! (events sent over HTTP instead of through Kinesis).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::jobs::clamp_limit;
use super::model::streams::{
    CollectRejected, Collected, EventsPage, EventsQuery, InvalidEvents, StreamList, StreamView,
};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::jobs::import::validate_event_stream_name;
use crate::kinesis::decode::{decode_record, DeadLetter, RawRecord};
use crate::store::NewEvent;

/// The largest body `POST /api/collect/{stream}` takes.
pub const MAX_COLLECT_BYTES: usize = 10 * 1024 * 1024;
const DEFAULT_EVENTS: u32 = 50;
const MAX_EVENTS: u32 = 1000;
/// How many decoding failures a rejected collect request spells out.
const MAX_REASONS: usize = 20;

const TAG: &str = "streams";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(events))
        .routes(routes!(collect).layer(DefaultBodyLimit::max(MAX_COLLECT_BYTES)))
}

/// The 400 for a collect body with undecodable parts: the error format plus the reasons.
fn invalid_events(dead: &[DeadLetter], good: usize) -> InvalidEvents {
    let total = dead.len() + good;
    let listed: Vec<String> = dead
        .iter()
        .take(MAX_REASONS)
        .map(|d| d.reason.clone())
        .collect();
    let more = dead.len().saturating_sub(MAX_REASONS);
    let mut message = format!(
        "{} of {} items are not valid events, so nothing was stored: {}",
        dead.len(),
        total,
        listed.join("; ")
    );
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    InvalidEvents {
        error: "invalid_events".into(),
        message,
        reasons: listed,
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Every event stream with its size and how far the profile processor lags behind it.
#[utoipa::path(get, path = "/api/streams", tag = TAG,
    responses((status = 200, description = "Every event stream", body = StreamList)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<StreamList>> {
    let streams = state.store.list_streams().await?;
    let lag: std::collections::HashMap<String, u64> =
        crate::cdp::lag(&*state.store).await?.into_iter().collect();
    let log_bytes = state.store.store_sizes().await?.event_log_bytes();
    let total_events: u64 = streams.iter().map(|s| s.events).sum();
    let streams = streams
        .iter()
        .map(|s| StreamView {
            approx_bytes: (log_bytes as u128 * u128::from(s.events)
                / u128::from(total_events.max(1))) as u64,
            ..StreamView::new(s, lag.get(&s.name).copied().unwrap_or(0))
        })
        .collect();
    Ok(Json(StreamList { streams }))
}

/// A page of a stream's events, newest first.
#[utoipa::path(get, path = "/api/streams/{name}/events", tag = TAG,
    params(("name" = String, Path, description = "The event stream"), EventsQuery),
    responses(
        (status = 200, description = "A page of events (empty for an unknown stream)", body = EventsPage),
        (status = 400, description = "`invalid_field` (the stream name) or `invalid_request`", body = ErrorBody),
    ))]
async fn events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventsPage>> {
    validate_event_stream_name(&name).map_err(|m| ApiError::invalid_field("stream", m))?;
    let limit = clamp_limit(q.limit, DEFAULT_EVENTS, MAX_EVENTS);
    // One more than asked tells whether another page exists.
    let mut page = state.store.list_events(&name, limit + 1, q.before).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    Ok(Json(EventsPage::new(&page, more)))
}

/// Stores events sent as a JSON object, a JSON array of objects, or NDJSON: all of them, or
/// none when any item is not a valid event.
#[utoipa::path(post, path = "/api/collect/{stream}", tag = TAG,
    params(("stream" = String, Path, description = "The event stream")),
    request_body(description = "A JSON object, a JSON array of objects, or NDJSON (at most 10 MiB)",
        content(
            (Object = "application/json"),
            (String = "application/x-ndjson"),
        )),
    responses(
        (status = 202, description = "Every event was stored", body = Collected),
        (status = 400, description = "`invalid_events` (with the reasons; nothing was stored), `invalid_field` (the stream name) or `invalid_request`",
            body = CollectRejected),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
    ))]
async fn collect(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    validate_event_stream_name(&stream).map_err(|m| ApiError::invalid_field("stream", m))?;
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is larger than {} MiB; send the events in smaller requests",
                    MAX_COLLECT_BYTES / (1024 * 1024)
                ),
            )
        }
        other => ApiError::bad_request(
            "invalid_request",
            format!("could not read the body: {}", other.body_text()),
        ),
    })?;
    let decoded = decode_record(&RawRecord {
        data: &body,
        partition_key: "",
        sequence_number: "",
    });
    if !decoded.dead_letters.is_empty() {
        let body = invalid_events(&decoded.dead_letters, decoded.events.len());
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let mut events: Vec<NewEvent> = decoded
        .events
        .into_iter()
        .map(|e| NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            fields: e.fields.into(),
            origin: None,
        })
        .collect();
    let suppressed = state
        .cdp
        .suppressions()
        .drop_suppressed(&stream, &mut events);
    if suppressed > 0 {
        state
            .metrics
            .lifecycle
            .suppressed_events
            .with_label_values(&["collect"])
            .inc_by(suppressed);
        state.store.count_suppressed("collect", suppressed).await?;
    }
    let accepted = events.len();
    if accepted > 0 {
        state.store.append_events(&stream, events).await?;
    }
    tracing::debug!(%stream, accepted, suppressed, "events collected");
    let suppressed = suppressed as usize;
    Ok((
        StatusCode::ACCEPTED,
        Json(Collected {
            accepted,
            suppressed,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::streams::EventView;
    use crate::store::{KinesisOrigin, StoredEvent};
    use chrono::Utc;
    use serde_json::{json, Value};

    fn event_view(e: &StoredEvent) -> Value {
        serde_json::to_value(EventView::from(e)).unwrap()
    }

    fn events_page(events: &[StoredEvent], more: bool) -> Value {
        serde_json::to_value(EventsPage::new(events, more)).unwrap()
    }

    fn invalid_events_body(dead: &[DeadLetter], good: usize) -> Value {
        serde_json::to_value(invalid_events(dead, good)).unwrap()
    }

    fn stored(seq: i64, origin: bool) -> StoredEvent {
        StoredEvent {
            seq,
            event_id: format!("e{seq}"),
            stream: "web".into(),
            fields: json!({"n": seq}).as_object().unwrap().clone(),
            origin: origin.then(|| KinesisOrigin {
                stream: "clicks".into(),
                shard_id: "shardId-0".into(),
                sequence_number: "4959".into(),
                sub_sequence_number: 1,
                partition_key: "user-1".into(),
                approximate_arrival_timestamp: None,
            }),
            stored_at: Utc::now(),
        }
    }

    #[test]
    fn event_views_carry_their_origin() {
        let v = event_view(&stored(3, true));
        assert_eq!(v["id"], "e3");
        assert_eq!(v["fields"], json!({"n": 3}));
        assert_eq!(v["_kinesis"]["shard_id"], "shardId-0");
        assert_eq!(v["_kinesis"]["sub_sequence_number"], 1);
        assert_eq!(v["_kinesis"]["approximate_arrival_timestamp"], Value::Null);
        assert_eq!(event_view(&stored(4, false))["_kinesis"], Value::Null);
    }

    #[test]
    fn next_before_only_when_more() {
        let page = [stored(9, false), stored(8, false)];
        assert_eq!(events_page(&page, true)["next_before"], 8);
        assert_eq!(events_page(&page, false)["next_before"], Value::Null);
        assert_eq!(events_page(&[], true)["next_before"], Value::Null);
    }

    #[test]
    fn rejected_collect_lists_reasons() {
        let dead: Vec<DeadLetter> = (0..25)
            .map(|i| DeadLetter {
                sub_sequence_number: Some(0),
                index: i,
                reason: format!("line {i}: bad"),
                raw: vec![],
            })
            .collect();
        let v = invalid_events_body(&dead, 5);
        assert_eq!(v["error"], "invalid_events");
        assert_eq!(v["reasons"].as_array().unwrap().len(), MAX_REASONS);
        let message = v["message"].as_str().unwrap();
        assert!(message.starts_with("25 of 30 items"), "{message}");
        assert!(message.contains("line 0: bad; line 1: bad"), "{message}");
        assert!(message.ends_with("and 5 more"), "{message}");
    }

    mod http {
        use axum::http::{Method, StatusCode};
        use serde_json::{json, Value};

        use crate::api::tests::{app, TestApp};

        async fn collect(app: &TestApp, stream: &str, body: &str) -> (StatusCode, Value) {
            app.send(
                Method::POST,
                &format!("/api/collect/{stream}"),
                body.as_bytes().to_vec(),
                true,
            )
            .await
        }

        fn ns(page: &Value) -> Vec<i64> {
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["fields"]["n"].as_i64().unwrap())
                .collect()
        }

        #[tokio::test]
        async fn collect_then_page_newest_first() {
            let app = app().await;
            let (status, v) = collect(&app, "web", r#"{"n": 1}"#).await;
            assert_eq!(
                (status, &v),
                (StatusCode::ACCEPTED, &json!({"accepted": 1}))
            );
            let (status, v) = collect(&app, "web", r#"[{"n": 2}, {"n": 3}]"#).await;
            assert_eq!(
                (status, &v),
                (StatusCode::ACCEPTED, &json!({"accepted": 2}))
            );
            let (status, v) = collect(&app, "web", "{\"n\": 4}\n\n{\"n\": 5}\n").await;
            assert_eq!(
                (status, &v),
                (StatusCode::ACCEPTED, &json!({"accepted": 2}))
            );
            let (status, v) = collect(&app, "other", r#"{"n": 99}"#).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{v}");

            let (status, v) = app.get("/api/streams").await;
            assert_eq!(status, StatusCode::OK);
            let streams = v["streams"].as_array().unwrap();
            assert_eq!(streams.len(), 2, "{v}");
            assert_eq!(streams[1]["name"], "web");
            assert_eq!(streams[1]["events"], 5);
            assert!(streams[1]["last_event_at"].is_string());

            let (status, page) = app.get("/api/streams/web/events?limit=2").await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(ns(&page), [5, 4]);
            let first = &page["events"][0];
            assert_eq!(first["_kinesis"], Value::Null);
            assert!(first["id"].is_string() && first["stored_at"].is_string());
            assert_eq!(page["next_before"], page["events"][1]["seq"]);

            let before = page["next_before"].as_i64().unwrap();
            let (_, page) = app
                .get(&format!("/api/streams/web/events?limit=2&before={before}"))
                .await;
            assert_eq!(ns(&page), [3, 2]);
            let before = page["next_before"].as_i64().unwrap();
            let (_, page) = app
                .get(&format!("/api/streams/web/events?limit=2&before={before}"))
                .await;
            assert_eq!(ns(&page), [1]);
            assert_eq!(page["next_before"], Value::Null, "last page");

            let (_, page) = app.get("/api/streams/web/events").await;
            assert_eq!(ns(&page), [5, 4, 3, 2, 1]);
            let (_, page) = app.get("/api/streams/nothing-here/events").await;
            assert_eq!(page, json!({"events": [], "next_before": null}));
        }

        #[tokio::test]
        async fn a_bad_line_rejects_the_whole_body() {
            let app = app().await;
            let (status, v) = collect(&app, "web", "{\"n\": 1}\n{\"n\": \n{\"n\": 3}\n").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
            assert_eq!(v["error"], "invalid_events");
            assert!(v["message"].as_str().unwrap().contains("line 2"), "{v}");
            assert_eq!(v["reasons"].as_array().unwrap().len(), 1);
            for body in ["", "[1, {\"n\": 2}]", "not json at all"] {
                let (status, v) = collect(&app, "web", body).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {v}");
            }
            let (_, v) = app.get("/api/streams").await;
            assert_eq!(v, json!({"streams": []}), "nothing stored");
        }

        #[tokio::test]
        async fn stream_names_and_size_are_checked() {
            let app = app().await;
            let (status, v) = collect(&app, "bad%20name", r#"{"n": 1}"#).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
            assert!(v["message"].as_str().unwrap().starts_with("stream:"), "{v}");
            let (status, v) = app.get("/api/streams/bad%20name/events").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

            let mut big = String::from("[");
            let item = format!("{{\"pad\": \"{}\"}},", "x".repeat(1000));
            while big.len() <= super::MAX_COLLECT_BYTES {
                big.push_str(&item);
            }
            big.push_str("{}]");
            let (status, v) = collect(&app, "web", &big).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
            assert!(v["message"].as_str().unwrap().contains("10 MiB"), "{v}");
            // Just under the limit is fine (the default 2 MB body limit does not apply).
            let mut ok = String::from("[");
            while ok.len() < 3 * 1024 * 1024 {
                ok.push_str(&item);
            }
            ok.push_str("{}]");
            let (status, v) = collect(&app, "web", &ok).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        }
    }
}
