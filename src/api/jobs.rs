//! `/api/jobs`: create, inspect, pause, resume and delete import (and, later, export) jobs.
//!
//! The store holds a job's durable state; the [`crate::jobs::JobManager`] runs it. Every change
//! is written to the store first and then applied to the manager, so a crash in between leaves
//! the store right and the next start does what it says.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::jobs::export::ExportConfig;
use crate::jobs::import::ImportConfig;
use crate::store::{DeadLetter, Job, JobState, JobTotals, JobType, ShardCheckpoint, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", get(list).post(create))
        .route("/api/jobs/{id}", get(show).delete(remove))
        .route("/api/jobs/{id}/pause", post(pause))
        .route("/api/jobs/{id}/resume", post(resume))
        .route("/api/jobs/{id}/dead-letters", get(dead_letters))
}

const MAX_LABEL: usize = 100;
const MAX_DESCRIPTION: usize = 2000;
const DEFAULT_DEAD_LETTERS: u32 = 100;
const MAX_DEAD_LETTERS: u32 = 1000;

/// Every field optional so that a missing one is answered like an invalid one: a 400 naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(rename = "type")]
    job_type: Option<String>,
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    authorization: Option<String>,
    config: Option<Value>,
}

// ---------------------------------------------------------------------------------------------
// Views (pure)
// ---------------------------------------------------------------------------------------------

/// The public view of a job with its status: totals from the job, one entry per known shard.
pub fn view(job: &Job, shards: &[ShardCheckpoint]) -> Value {
    json!({
        "id": job.id,
        "type": job.job_type.as_str(),
        "label": job.label,
        "description": job.description,
        "authorization": job.authorization_id,
        "config": job.config,
        "state": job.state.as_str(),
        "last_error": job.last_error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "status": status_view(job.state, job.last_error.as_deref(), &job.totals, shards),
    })
}

fn status_view(
    state: JobState,
    last_error: Option<&str>,
    totals: &JobTotals,
    shards: &[ShardCheckpoint],
) -> Value {
    json!({
        "state": state.as_str(),
        "last_error": last_error,
        "records_in": totals.records_in,
        "events_out": totals.events_out,
        "dead_letters": totals.dead_letters,
        "shards": shards.iter().map(shard_view).collect::<Vec<_>>(),
    })
}

/// One shard's progress. `checkpoint` is the sequence number of the last record fully stored.
pub fn shard_view(shard: &ShardCheckpoint) -> Value {
    json!({
        "shard_id": shard.shard_id,
        "parent_shard_id": shard.parent_shard_ids.first(),
        "parent_shard_ids": shard.parent_shard_ids,
        "state": shard.state.as_str(),
        "checkpoint": shard.sequence_number,
        "sub_sequence_number": shard.sub_sequence_number,
        "millis_behind_latest": shard.millis_behind_latest,
        "records": shard.records,
    })
}

/// A dead letter with its raw bytes in standard base64 (they are often not text).
pub fn dead_letter_view(dead: &DeadLetter) -> Value {
    let l = &dead.letter;
    json!({
        "id": dead.id,
        "shard_id": l.shard_id,
        "sequence_number": l.sequence_number,
        "sub_sequence_number": l.sub_sequence_number,
        "position": l.position,
        "partition_key": l.partition_key,
        "reason": l.reason,
        "raw_base64": base64::engine::general_purpose::STANDARD.encode(&l.raw),
        "created_at": dead.created_at,
    })
}

// ---------------------------------------------------------------------------------------------
// Validation (pure)
// ---------------------------------------------------------------------------------------------

/// What a valid create request becomes (everything but the authorization check, which needs
/// the store).
#[derive(Debug)]
struct Validated {
    job_type: JobType,
    label: String,
    description: String,
    authorization: String,
    /// Normalized: what is stored, so the job runs on exactly what was validated.
    config: Value,
}

fn validate(req: CreateRequest) -> ApiResult<Validated> {
    let type_text = req
        .job_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "type",
                "is required: \"kinesis_import\" or \"kinesis_export\"",
            )
        })?;
    let job_type = JobType::parse(type_text).ok_or_else(|| {
        ApiError::invalid_field(
            "type",
            format!(
                "{type_text:?} is not a job type; use \"kinesis_import\" or \"kinesis_export\""
            ),
        )
    })?;
    let label = req.label.as_deref().unwrap_or("").trim().to_owned();
    if label.is_empty() {
        return Err(ApiError::invalid_field(
            "label",
            "is required; give the job a name",
        ));
    }
    if label.chars().count() > MAX_LABEL {
        return Err(ApiError::invalid_field(
            "label",
            format!("is longer than {MAX_LABEL} characters"),
        ));
    }
    let description = req.description.as_deref().unwrap_or("").trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_field(
            "description",
            format!("is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    let authorization = req
        .authorization
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "authorization",
                "is required: the id of an authorization (GET /api/authorizations)",
            )
        })?
        .to_owned();
    let config = match req.config {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("config", "is required"));
        }
        Some(config) => config,
    };
    let config = match job_type {
        JobType::KinesisImport => {
            let parsed = ImportConfig::parse(&config)
                .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
            serde_json::to_value(&parsed).map_err(ApiError::internal)?
        }
        JobType::KinesisExport => {
            let parsed = ExportConfig::parse(&config)
                .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
            serde_json::to_value(&parsed).map_err(ApiError::internal)?
        }
    };
    Ok(Validated {
        job_type,
        label,
        description,
        authorization,
        config,
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let v = validate(req)?;
    match state.store.get_authorization(&v.authorization).await {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid_field(
                "authorization",
                format!(
                    "no authorization has id {:?}; list them with GET /api/authorizations",
                    v.authorization
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let export_config = match v.job_type {
        JobType::KinesisExport => {
            let config = ExportConfig::parse(&v.config)
                .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
            config
                .check(&*state.store, &state.cdp)
                .await
                .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
            Some(config)
        }
        JobType::KinesisImport => None,
    };
    let now = Utc::now();
    let job = Job {
        id: uuid::Uuid::now_v7().to_string(),
        job_type: v.job_type,
        label: v.label,
        description: v.description,
        authorization_id: v.authorization,
        config: v.config,
        state: JobState::Running,
        last_error: None,
        totals: JobTotals::default(),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_job(job.clone()).await?;
    if let Some(config) = &export_config {
        // Changes from this moment on belong to the job, even before its task runs.
        crate::jobs::export::starting_point(&(&state.store).into(), &job.id, config).await?;
    }
    tracing::info!(id = %job.id, label = %job.label, kind = job.job_type.as_str(), "job created");
    state.jobs.start(&job);
    Ok((StatusCode::CREATED, Json(view(&job, &[]))))
}

/// The job's current view, read fresh from the store.
async fn load_view(state: &AppState, id: &str) -> ApiResult<Value> {
    let job = state.store.get_job(id).await?;
    job_view(state, &job).await
}

/// The view of `job` with its shards, and for export jobs the backfill progress.
async fn job_view(state: &AppState, job: &Job) -> ApiResult<Value> {
    let shards = state.store.list_checkpoints(&job.id).await?;
    let mut v = view(job, &shards);
    if job.job_type == JobType::KinesisExport {
        let progress = state.store.get_export_progress(&job.id).await?;
        let backfill = progress
            .and_then(|p| p.backfill)
            .map(|b| json!({"total": b.total, "sent": b.sent, "done": b.done}));
        v["status"]["backfill"] = backfill.unwrap_or(Value::Null);
    }
    Ok(v)
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let jobs = state.store.list_jobs().await?;
    let mut views = Vec::with_capacity(jobs.len());
    for job in &jobs {
        views.push(job_view(&state, job).await?);
    }
    Ok(Json(json!({ "jobs": views })))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(load_view(&state, &id).await?))
}

/// Paused in the store first (so a restart does not resume it), then stopped here. A pause
/// always ends `paused`: a job that failed before (or while) stopping keeps its last error.
async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let job = state.store.get_job(&id).await?;
    state
        .store
        .set_job_state(&id, JobState::Paused, job.last_error.as_deref())
        .await?;
    state.jobs.stop(&id).await;
    // The task may have recorded a failure between the two steps above.
    let job = state.store.get_job(&id).await?;
    if job.state != JobState::Paused {
        state
            .store
            .set_job_state(&id, JobState::Paused, job.last_error.as_deref())
            .await?;
    }
    tracing::info!(%id, "job paused");
    Ok(Json(load_view(&state, &id).await?))
}

/// Running again from its checkpoints; also how a failed job is retried. Resuming a job that
/// is running here already changes nothing.
async fn resume(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let job = state.store.get_job(&id).await?;
    if job.state == JobState::Running && state.jobs.is_running(&id) {
        return Ok(Json(load_view(&state, &id).await?));
    }
    // A task still winding down (a failing one) must not overwrite the new state.
    state.jobs.stop(&id).await;
    state
        .store
        .set_job_state(&id, JobState::Running, None)
        .await?;
    let job = state.store.get_job(&id).await?;
    state.jobs.start(&job);
    tracing::info!(%id, "job resumed");
    // The view of what was just done: the new task may fail at once, and `show` will say so.
    Ok(Json(job_view(&state, &job).await?))
}

/// Stopped, then deleted with its checkpoints and dead letters; its events stay.
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.get_job(&id).await?;
    state.jobs.stop(&id).await;
    state.store.delete_job(&id).await?;
    tracing::info!(%id, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DeadLettersQuery {
    limit: Option<u32>,
}

async fn dead_letters(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeadLettersQuery>,
) -> ApiResult<Json<Value>> {
    state.store.get_job(&id).await?;
    let limit = clamp_limit(q.limit, DEFAULT_DEAD_LETTERS, MAX_DEAD_LETTERS);
    let letters = state.store.list_dead_letters(&id, limit).await?;
    Ok(Json(
        json!({ "dead_letters": letters.iter().map(dead_letter_view).collect::<Vec<_>>() }),
    ))
}

/// `limit` query parameters: the default when absent, else at least 1 and at most `max`.
pub fn clamp_limit(limit: Option<u32>, default: u32, max: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDeadLetter, ShardState, StartPosition};

    fn job() -> Job {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        Job {
            id: "j1".into(),
            job_type: JobType::KinesisImport,
            label: "web".into(),
            description: "d".into(),
            authorization_id: "a1".into(),
            config: json!({"stream": "web"}),
            state: JobState::Failed,
            last_error: Some("boom".into()),
            totals: JobTotals {
                records_in: 7,
                events_out: 5,
                dead_letters: 2,
            },
            created_at: t,
            updated_at: t,
        }
    }

    fn shard(id: &str, parents: &[&str], seq: Option<&str>) -> ShardCheckpoint {
        ShardCheckpoint {
            shard_id: id.into(),
            parent_shard_ids: parents.iter().map(|p| p.to_string()).collect(),
            state: ShardState::Reading,
            start_position: StartPosition::TrimHorizon,
            sequence_number: seq.map(str::to_owned),
            sub_sequence_number: seq.map(|_| 3),
            records: 9,
            millis_behind_latest: Some(120),
        }
    }

    #[test]
    fn view_has_status_totals_and_shards() {
        let shards = [
            shard("shardId-0", &[], None),
            shard("shardId-2", &["shardId-0", "shardId-1"], Some("4959")),
        ];
        let v = view(&job(), &shards);
        assert_eq!(v["type"], "kinesis_import");
        assert_eq!(v["authorization"], "a1");
        assert_eq!(v["state"], "failed");
        assert_eq!(v["created_at"], "2026-01-02T03:04:05Z");
        let s = &v["status"];
        assert_eq!(s["state"], "failed");
        assert_eq!(s["last_error"], "boom");
        assert_eq!(
            (&s["records_in"], &s["events_out"], &s["dead_letters"]),
            (&json!(7), &json!(5), &json!(2))
        );
        assert_eq!(s["shards"][0]["parent_shard_id"], Value::Null);
        assert_eq!(s["shards"][0]["checkpoint"], Value::Null);
        assert_eq!(s["shards"][0]["parent_shard_ids"], json!([]));
        assert_eq!(s["shards"][1]["parent_shard_id"], "shardId-0");
        assert_eq!(s["shards"][1]["checkpoint"], "4959");
        assert_eq!(s["shards"][1]["sub_sequence_number"], 3);
        assert_eq!(s["shards"][1]["state"], "reading");
        assert_eq!(s["shards"][1]["millis_behind_latest"], 120);
        assert_eq!(s["shards"][1]["records"], 9);
    }

    #[test]
    fn dead_letter_raw_is_standard_base64() {
        let d = DeadLetter {
            id: 4,
            job_id: "j1".into(),
            letter: NewDeadLetter {
                shard_id: "shardId-0".into(),
                sequence_number: "1".into(),
                sub_sequence_number: None,
                position: 2,
                partition_key: "k".into(),
                reason: "invalid JSON".into(),
                raw: vec![0xff, 0xfe, b'{'],
            },
            created_at: Utc::now(),
        };
        let v = dead_letter_view(&d);
        assert_eq!(v["raw_base64"], "//57");
        assert_eq!(v["sub_sequence_number"], Value::Null);
        assert_eq!(v["position"], 2);
        assert_eq!(v["id"], 4);
    }

    fn req(v: Value) -> CreateRequest {
        serde_json::from_value(v).expect("request shape")
    }

    fn field_of(err: ApiError) -> String {
        assert_eq!(err.code, "invalid_field", "{err:?}");
        err.message.split(':').next().unwrap().to_owned()
    }

    #[test]
    fn validation_names_the_field() {
        let good = json!({"type": "kinesis_import", "label": "web", "authorization": "a",
            "config": {"stream": "web", "region": "us-east-1", "kinesis_stream": "clicks"}});
        let v = validate(req(good.clone())).unwrap();
        assert_eq!(v.config["start_position"], "trim_horizon");
        assert_eq!(v.config["role_arn"], Value::Null);

        let with = |key: &str, value: Value| {
            let mut r = good.clone();
            r[key] = value;
            field_of(validate(req(r)).unwrap_err())
        };
        assert_eq!(with("type", json!("kinesis_magic")), "type");
        assert_eq!(with("type", Value::Null), "type");
        assert_eq!(with("label", json!("   ")), "label");
        assert_eq!(with("label", json!("x".repeat(101))), "label");
        assert_eq!(with("authorization", json!("")), "authorization");
        assert_eq!(with("config", Value::Null), "config");
        assert_eq!(
            with(
                "config",
                json!({"stream": "web", "region": "mars-1", "kinesis_stream": "c"})
            ),
            "config.region"
        );

        let mut export = good.clone();
        export["type"] = json!("kinesis_export");
        export["config"] = json!([1]);
        assert_eq!(
            field_of(validate(req(export.clone())).unwrap_err()),
            "config"
        );
        export["config"] = json!({"anything": true});
        assert_eq!(
            field_of(validate(req(export.clone())).unwrap_err()),
            "config.anything"
        );
        export["config"] =
            json!({"audiences": ["vip"], "region": "us-east-1", "kinesis_stream": "t"});
        let config = validate(req(export)).unwrap().config;
        assert_eq!(config["existing_users"], false);
        assert_eq!(config["export_fields"], json!([]));
    }

    #[test]
    fn limits_clamp() {
        assert_eq!(clamp_limit(None, 100, 1000), 100);
        assert_eq!(clamp_limit(Some(0), 100, 1000), 1);
        assert_eq!(clamp_limit(Some(5000), 100, 1000), 1000);
        assert_eq!(clamp_limit(Some(7), 100, 1000), 7);
    }

    mod http {
        use axum::http::{Method, StatusCode};
        use serde_json::{json, Value};

        use crate::api::tests::{app, TestApp};
        use crate::store::JobState;

        async fn authorization(app: &TestApp) -> String {
            let (status, v) = app
                .post(
                    "/api/authorizations",
                    json!({"label": "prod", "method": "aws_role",
                           "role_arn": "arn:aws:iam::123456789012:role/Tributary"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }

        fn import_request(auth: &str) -> Value {
            json!({"type": "kinesis_import", "label": "web events", "description": "clicks",
                   "authorization": auth,
                   "config": {"stream": "web_events", "region": "us-east-1", "role_arn": null,
                              "kinesis_stream": "clickstream", "start_position": "trim_horizon"}})
        }

        /// The field a 400 `invalid_field` names.
        fn field(status: StatusCode, v: &Value) -> String {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
            assert_eq!(v["error"], "invalid_field", "{v}");
            v["message"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        }

        #[tokio::test]
        async fn create_names_the_invalid_field() {
            let app = app().await;
            let auth = authorization(&app).await;
            let cases: Vec<(&str, Value, &str)> = vec![
                ("authorization", json!("no-such-id"), "authorization"),
                ("label", json!(""), "label"),
                ("type", json!("kinesis_teleport"), "type"),
                (
                    "config",
                    json!({"stream": "web", "region": "nowhere", "kinesis_stream": "c"}),
                    "config.region",
                ),
                (
                    "config",
                    json!({"stream": "bad name", "region": "us-east-1", "kinesis_stream": "c"}),
                    "config.stream",
                ),
                ("config", json!("not an object"), "config"),
            ];
            for (key, value, expected) in cases {
                let mut body = import_request(&auth);
                body[key] = value;
                let (status, v) = app.post("/api/jobs", body).await;
                assert_eq!(field(status, &v), expected, "{key}: {v}");
            }
            let (status, v) = app.get("/api/jobs").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(v["jobs"], json!([]), "nothing stored by failed creates");
        }

        #[tokio::test]
        async fn import_job_lifecycle() {
            let app = app().await;
            let auth = authorization(&app).await;
            let (status, created) = app.post("/api/jobs", import_request(&auth)).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            let id = created["id"].as_str().unwrap().to_owned();
            assert_eq!(created["type"], "kinesis_import");
            assert_eq!(created["label"], "web events");
            assert_eq!(created["description"], "clicks");
            assert_eq!(created["authorization"], auth.as_str());
            assert_eq!(created["state"], "running");
            assert_eq!(created["status"]["state"], "running");
            assert_eq!(created["status"]["records_in"], 0);
            assert_eq!(created["status"]["shards"], json!([]));
            assert_eq!(created["config"]["kinesis_stream"], "clickstream");
            // The consumer runs for real from here on: without AWS it soon fails, so the
            // states read back below are the ones this API sets, not the consumer's.

            let (status, list) = app.get("/api/jobs").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
            assert_eq!(list["jobs"][0]["id"], id.as_str());

            let (status, shown) = app.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(shown["config"], created["config"]);
            assert_eq!(shown["label"], "web events");

            let (status, paused) = app.post(&format!("/api/jobs/{id}/pause"), json!({})).await;
            assert_eq!(status, StatusCode::OK, "{paused}");
            assert_eq!(paused["state"], "paused");
            assert_eq!(paused["status"]["state"], "paused");
            assert!(!app.state.jobs.is_running(&id));
            let (_, shown) = app.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(shown["state"], "paused", "pausing sticks");

            let (status, resumed) = app.post(&format!("/api/jobs/{id}/resume"), json!({})).await;
            assert_eq!(status, StatusCode::OK, "{resumed}");
            assert_eq!(resumed["state"], "running");
            assert_eq!(resumed["last_error"], Value::Null);

            // A failed job is retried by resuming it; its error is cleared.
            app.state.jobs.stop(&id).await;
            app.state
                .store
                .set_job_state(&id, JobState::Failed, Some("boom"))
                .await
                .unwrap();
            let (_, failed) = app.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(failed["state"], "failed");
            assert_eq!(failed["last_error"], "boom");
            let (status, retried) = app.post(&format!("/api/jobs/{id}/resume"), json!({})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(retried["state"], "running");
            assert_eq!(retried["last_error"], Value::Null);

            let (status, letters) = app
                .get(&format!("/api/jobs/{id}/dead-letters?limit=5"))
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(letters, json!({"dead_letters": []}));

            let (status, _) = app.delete(&format!("/api/jobs/{id}")).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert!(!app.state.jobs.is_running(&id));
            let (status, v) = app.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        }

        #[tokio::test]
        async fn unknown_ids_are_404() {
            let app = app().await;
            for (method, path) in [
                (Method::GET, "/api/jobs/nope"),
                (Method::POST, "/api/jobs/nope/pause"),
                (Method::POST, "/api/jobs/nope/resume"),
                (Method::DELETE, "/api/jobs/nope"),
                (Method::GET, "/api/jobs/nope/dead-letters"),
            ] {
                let (status, v) = app.send(method.clone(), path, vec![], true).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
                assert_eq!(v["error"], "not_found");
            }
        }

        #[tokio::test]
        async fn every_route_needs_the_token() {
            let app = app().await;
            for (method, path) in [
                (Method::GET, "/api/jobs"),
                (Method::POST, "/api/jobs"),
                (Method::GET, "/api/jobs/x"),
                (Method::DELETE, "/api/jobs/x"),
                (Method::POST, "/api/jobs/x/pause"),
                (Method::POST, "/api/jobs/x/resume"),
                (Method::GET, "/api/jobs/x/dead-letters"),
                (Method::GET, "/api/streams"),
                (Method::GET, "/api/streams/web/events"),
                (Method::POST, "/api/collect/web"),
            ] {
                let (status, v) = app.send(method.clone(), path, b"{}".to_vec(), false).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
            }
        }
    }
}
