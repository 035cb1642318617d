//! `/api/jobs`: create, inspect, pause, resume and delete import and export jobs.
//!
//! The store holds a job's durable state; the [`crate::jobs::JobManager`] runs it. Every change
//! is written to the store first and then applied to the manager, so a crash in between leaves
//! the store right and the next start does what it says.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::model::jobs::{
    Backfill, CreateJob, DeadLetterList, DeadLetterView, DeadLettersQuery, JobConfig, JobList,
    JobView,
};
use super::model::ErrorBody;
use crate::app::AppState;
use crate::store::{Job, JobState, JobTotals, JobType, ShardCheckpoint, StoreError};

const TAG: &str = "jobs";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(dead_letters))
}

const MAX_LABEL: usize = 100;
const MAX_DESCRIPTION: usize = 2000;
const DEFAULT_DEAD_LETTERS: u32 = 100;
const MAX_DEAD_LETTERS: u32 = 1000;

/// [`CreateJob`] as it arrives: every field optional and `config` untyped, so that a missing
/// or malformed one is answered like an invalid one, with a 400 `invalid_field` naming it
/// (down to the key inside `config`), which a typed body's serde error could not do.
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
// Validation (pure)
// ---------------------------------------------------------------------------------------------

/// The request, typed and normalized (everything but the authorization check, which needs
/// the store): its config is what is stored, so the job runs on exactly what was validated.
fn validate(req: CreateRequest) -> ApiResult<CreateJob> {
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
        Some(config) => JobConfig::parse(job_type, &config)
            .map_err(|e| ApiError::invalid_field(&e.field, e.message))?,
    };
    Ok(CreateJob {
        label,
        description,
        authorization,
        config,
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Creates a job and starts it. An export job publishes the changes from this moment on.
#[utoipa::path(post, path = "/api/jobs", tag = TAG,
    request_body = CreateJob,
    responses(
        (status = 201, description = "Created and started (`status` has no `backfill` yet)", body = JobView),
        (status = 400, description = "`invalid_field`, named in the message (`type`, `label`, `authorization`, `config.region`, …), or `invalid_request`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let req = validate(req)?;
    match state.store.get_authorization(&req.authorization).await {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid_field(
                "authorization",
                format!(
                    "no authorization has id {:?}; list them with GET /api/authorizations",
                    req.authorization
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if let JobConfig::KinesisExport(config) = &req.config {
        config
            .check(&*state.store)
            .await
            .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
    }
    let now = Utc::now();
    let job = Job {
        id: uuid::Uuid::now_v7().to_string(),
        job_type: req.config.job_type(),
        label: req.label,
        description: req.description,
        authorization_id: req.authorization,
        config: req.config.to_stored().map_err(ApiError::internal)?,
        state: JobState::Running,
        last_error: None,
        totals: JobTotals::default(),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_job(job.clone()).await?;
    if let JobConfig::KinesisExport(config) = &req.config {
        // Changes from this moment on belong to the job, even before its task runs.
        crate::jobs::export::starting_point(&(&state.store).into(), &job.id, config).await?;
    }
    tracing::info!(id = %job.id, label = %job.label, kind = job.job_type.as_str(), "job created");
    state.jobs.start(&job);
    Ok((StatusCode::CREATED, Json(view(&job, &[])?)))
}

/// The view of `job` with `shards`; a stored config that no longer parses is a server fault.
fn view(job: &Job, shards: &[ShardCheckpoint]) -> ApiResult<JobView> {
    JobView::new(job, shards)
        .map_err(|e| ApiError::internal(format!("job {}: stored config: {e}", job.id)))
}

/// The job's current view, read fresh from the store.
async fn load_view(state: &AppState, id: &str) -> ApiResult<JobView> {
    let job = state.store.get_job(id).await?;
    job_view(state, &job).await
}

/// The view of `job` with its shards, and for export jobs the backfill progress.
async fn job_view(state: &AppState, job: &Job) -> ApiResult<JobView> {
    let shards = state.store.list_checkpoints(&job.id).await?;
    let mut v = view(job, &shards)?;
    v.status.suppressed = state
        .store
        .suppressed_counts()
        .await?
        .into_iter()
        .find(|(source, _)| *source == job.id)
        .map_or(0, |(_, n)| n);
    if let JobConfig::KinesisExport(_) = v.config {
        let progress = state.store.get_export_progress(&job.id).await?;
        v.status.backfill = Some(
            progress
                .and_then(|p| p.backfill)
                .as_ref()
                .map(Backfill::from),
        );
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/jobs", tag = TAG,
    responses((status = 200, description = "Every job with its status", body = JobList)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<JobList>> {
    let jobs = state.store.list_jobs().await?;
    let mut views = Vec::with_capacity(jobs.len());
    for job in &jobs {
        views.push(job_view(&state, job).await?);
    }
    Ok(Json(JobList { jobs: views }))
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = TAG,
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job with its status", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
    Ok(Json(load_view(&state, &id).await?))
}

/// Paused in the store first (so a restart does not resume it), then stopped here. A pause
/// always ends `paused`: a job that failed before (or while) stopping keeps its last error.
#[utoipa::path(post, path = "/api/jobs/{id}/pause", tag = TAG,
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Paused", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
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
#[utoipa::path(post, path = "/api/jobs/{id}/resume", tag = TAG,
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Running (its error cleared)", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn resume(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
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
#[utoipa::path(delete, path = "/api/jobs/{id}", tag = TAG,
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 204, description = "Stopped and deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.get_job(&id).await?;
    state.jobs.stop(&id).await;
    state.store.delete_job(&id).await?;
    tracing::info!(%id, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// What the job could not decode, newest first.
#[utoipa::path(get, path = "/api/jobs/{id}/dead-letters", tag = TAG,
    params(("id" = String, Path, description = "The job's id"), DeadLettersQuery),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetterList),
        (status = 400, description = "`invalid_request`: bad query parameters", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn dead_letters(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeadLettersQuery>,
) -> ApiResult<Json<DeadLetterList>> {
    state.store.get_job(&id).await?;
    let limit = clamp_limit(q.limit, DEFAULT_DEAD_LETTERS, MAX_DEAD_LETTERS);
    let letters = state.store.list_dead_letters(&id, limit).await?;
    Ok(Json(DeadLetterList {
        dead_letters: letters.iter().map(DeadLetterView::from).collect(),
    }))
}

/// `limit` query parameters: the default when absent, else at least 1 and at most `max`.
pub fn clamp_limit(limit: Option<u32>, default: u32, max: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeadLetter, NewDeadLetter, ShardState, StartPosition};
    use serde_json::json;

    fn view(job: &Job, shards: &[ShardCheckpoint]) -> Value {
        serde_json::to_value(super::view(job, shards).unwrap()).unwrap()
    }

    fn dead_letter_view(dead: &DeadLetter) -> Value {
        serde_json::to_value(DeadLetterView::from(dead)).unwrap()
    }

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
            config: json!({"stream": "web", "region": "us-east-1", "role_arn": null,
                           "kinesis_stream": "clicks", "start_position": "trim_horizon"}),
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
        let config = validate(req(good.clone()))
            .unwrap()
            .config
            .to_stored()
            .unwrap();
        assert_eq!(config["start_position"], "trim_horizon");
        assert_eq!(config["role_arn"], Value::Null);

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
        let config = validate(req(export)).unwrap().config.to_stored().unwrap();
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
