//! An HTTP proxy in front of a Kinesis peer that injects the faults no emulator produces:
//! throttling (HTTP 400 ProvisionedThroughputExceededException), HTTP 500s, delays, and
//! PutRecords partial failures. Decisions come from a seeded RNG, so a test that makes the
//! same calls in the same order sees the same faults.
//!
//! ```ignore
//! let kinesalite = Kinesalite::start().await;
//! let proxy = FaultProxy::start(&kinesalite.endpoint(), FaultPlan::new(7).throttle("GetRecords", 0.3)).await;
//! let client = kinesis_client_no_retry(&proxy.endpoint());
//! // ... later
//! assert!(proxy.counts("GetRecords").throttled > 0);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::MOTO_ACCOUNT_ID as ACCOUNT_ID;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const MAX_BODY: usize = 64 << 20;

/// What to do to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `{"__type":"ProvisionedThroughputExceededException",...}`; not forwarded.
    Throttle,
    /// HTTP 500 `{"__type":"InternalFailure",...}`; not forwarded.
    InternalError,
    /// Wait, then go on (other rules may still apply, then forward).
    Delay(Duration),
    /// Not forwarded; the connection is cut right after the status line and headers (a 200
    /// whose body never arrives): the client sees an I/O error, as with a connection reset.
    Disconnect,
    /// Any AWS JSON error: HTTP `status` with `{"__type": code, ...}` (e.g. 400
    /// `ExpiredIteratorException`); not forwarded.
    Error(u16, &'static str),
}

#[derive(Clone, Copy, Debug)]
enum When {
    /// Each matching call with this probability.
    Share(f64),
    /// The first n matching calls.
    First(u64),
}

#[derive(Clone, Debug)]
struct Rule {
    /// Kinesis action (`GetRecords`), or `*` for every call.
    action: String,
    fault: Fault,
    when: When,
}

/// Which faults to inject. Rules are checked in the order they were added; the first
/// `Throttle`/`InternalError` that fires answers the call.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    seed: u64,
    rules: Vec<Rule>,
    put_entry_failure_share: f64,
}

impl FaultPlan {
    /// A plan with no faults; `seed` drives every random choice.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rules: Vec::new(),
            put_entry_failure_share: 0.0,
        }
    }

    /// Answers `share` (0.0–1.0) of `action` calls (`*` = all) with a throttling error.
    pub fn throttle(self, action: &str, share: f64) -> FaultPlan {
        self.rule(action, Fault::Throttle, When::Share(share))
    }

    /// Answers `share` of `action` calls with HTTP 500.
    pub fn internal_error(self, action: &str, share: f64) -> FaultPlan {
        self.rule(action, Fault::InternalError, When::Share(share))
    }

    /// Delays `share` of `action` calls by `delay` before handling them.
    pub fn delay(self, action: &str, share: f64, delay: Duration) -> FaultPlan {
        self.rule(action, Fault::Delay(delay), When::Share(share))
    }

    /// Answers `share` of `action` calls with the AWS error `code` and HTTP `status`.
    pub fn error(self, action: &str, share: f64, status: u16, code: &'static str) -> FaultPlan {
        self.rule(action, Fault::Error(status, code), When::Share(share))
    }

    /// Cuts the connection of `share` of `action` calls (see [`Fault::Disconnect`]).
    pub fn disconnect(self, action: &str, share: f64) -> FaultPlan {
        self.rule(action, Fault::Disconnect, When::Share(share))
    }

    /// Applies `fault` to the first `n` calls of `action`.
    pub fn first(self, action: &str, n: u64, fault: Fault) -> FaultPlan {
        self.rule(action, fault, When::First(n))
    }

    /// Fails `share` of the entries of each forwarded PutRecords with
    /// `ProvisionedThroughputExceededException`. Failed entries are removed from the request
    /// before it is forwarded (they are not written, as on AWS), and the response gets them
    /// back at their positions with ErrorCode/ErrorMessage and no SequenceNumber/ShardId.
    pub fn fail_put_records_entries(mut self, share: f64) -> FaultPlan {
        self.put_entry_failure_share = share;
        self
    }

    fn rule(mut self, action: &str, fault: Fault, when: When) -> FaultPlan {
        self.rules.push(Rule {
            action: action.to_string(),
            fault,
            when,
        });
        self
    }
}

/// What the proxy saw and did for one action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls received (faulted or not).
    pub calls: u64,
    pub throttled: u64,
    pub internal_errors: u64,
    pub disconnects: u64,
    /// Calls answered with a [`Fault::Error`].
    pub errors: u64,
    pub delayed: u64,
    /// PutRecords entries failed by the proxy.
    pub failed_entries: u64,
}

struct Decision {
    delay: Duration,
    fault: Option<Fault>,
}

struct PlanState {
    plan: FaultPlan,
    rng: StdRng,
    counts: HashMap<String, FaultCounts>,
}

impl PlanState {
    fn new(plan: FaultPlan) -> PlanState {
        PlanState {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            counts: HashMap::new(),
        }
    }

    fn decide(&mut self, action: &str) -> Decision {
        let counts = self.counts.entry(action.to_string()).or_default();
        counts.calls += 1;
        let call_number = counts.calls;
        let mut decision = Decision {
            delay: Duration::ZERO,
            fault: None,
        };
        for rule in &self.plan.rules {
            if rule.action != "*" && rule.action != action {
                continue;
            }
            let fires = match rule.when {
                When::Share(share) => self.rng.gen_bool(share.clamp(0.0, 1.0)),
                When::First(n) => call_number <= n,
            };
            if !fires {
                continue;
            }
            let counts = self.counts.get_mut(action).expect("counted above");
            match rule.fault {
                Fault::Delay(d) => {
                    counts.delayed += 1;
                    decision.delay += d;
                }
                fault => {
                    match fault {
                        Fault::Throttle => counts.throttled += 1,
                        Fault::InternalError => counts.internal_errors += 1,
                        Fault::Error(..) => counts.errors += 1,
                        _ => counts.disconnects += 1,
                    }
                    decision.fault = Some(fault);
                    break;
                }
            }
        }
        decision
    }

    /// Which of `n` PutRecords entries to fail.
    fn choose_failed_entries(&mut self, n: usize) -> Vec<bool> {
        let share = self.plan.put_entry_failure_share.clamp(0.0, 1.0);
        let chosen: Vec<bool> = (0..n)
            .map(|_| share > 0.0 && self.rng.gen_bool(share))
            .collect();
        let failed = chosen.iter().filter(|f| **f).count() as u64;
        self.counts
            .entry("PutRecords".into())
            .or_default()
            .failed_entries += failed;
        chosen
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<PlanState>,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts the proxy on 127.0.0.1 (free port) in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("reqwest client"),
            state: Mutex::new(PlanState::new(plan)),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            endpoint,
            shared,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`: point the client under test here.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Replaces the plan (and re-seeds); counts are kept.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.shared.state.lock().unwrap();
        state.rng = StdRng::seed_from_u64(plan.seed);
        state.plan = plan;
    }

    /// What happened to calls of `action` (e.g. `"GetRecords"`) so far.
    pub fn counts(&self, action: &str) -> FaultCounts {
        let state = self.shared.state.lock().unwrap();
        state.counts.get(action).copied().unwrap_or_default()
    }

    /// Counts for every action seen so far.
    pub fn all_counts(&self) -> HashMap<String, FaultCounts> {
        self.shared.state.lock().unwrap().counts.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("fault proxy: {e}")).into_response(),
    };
    let action = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_string();
    let decision = shared.state.lock().unwrap().decide(&action);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let request_json: Option<Value> = serde_json::from_slice(&body).ok();
    match decision.fault {
        Some(Fault::Throttle) => {
            let message = throttle_message(request_json.as_ref());
            return error_response(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                &message,
            );
        }
        Some(Fault::InternalError) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "Internal service failure (injected by the test fault proxy).",
            );
        }
        Some(Fault::Error(status, code)) => {
            return error_response(
                StatusCode::from_u16(status).expect("HTTP status"),
                code,
                "Injected by the test fault proxy.",
            );
        }
        Some(Fault::Disconnect) => {
            let failing = futures::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected by the test fault proxy",
                ))
            });
            let mut resp = Response::new(Body::from_stream(failing));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static(JSON_CONTENT_TYPE));
            return resp;
        }
        _ => {}
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    if action == "PutRecords" {
        if let Some(request) = request_json {
            return put_records_with_failures(
                &shared,
                &parts.method,
                &path,
                &parts.headers,
                request,
            )
            .await;
        }
    }
    forward(&shared, &parts.method, &path, &parts.headers, body.to_vec()).await
}

async fn forward(
    shared: &Shared,
    method: &axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Response {
    let mut req = shared
        .http
        .request(method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in headers {
        if !is_hop_header(name.as_str()) {
            req = req.header(name, value);
        }
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => {
            return error_response(
                StatusCode::BAD_GATEWAY,
                "InternalFailure",
                &format!("fault proxy: upstream unreachable: {e}"),
            )
        }
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if !is_hop_header(name.as_str()) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// Removes the entries chosen to fail, forwards the rest, and puts the failures back in place.
async fn put_records_with_failures(
    shared: &Shared,
    method: &axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    mut request: Value,
) -> Response {
    let entries = request["Records"].as_array().cloned().unwrap_or_default();
    let failed = shared
        .state
        .lock()
        .unwrap()
        .choose_failed_entries(entries.len());
    let injected = failed.iter().filter(|f| **f).count();
    if injected == 0 {
        let body = serde_json::to_vec(&request).expect("json");
        return forward(shared, method, path, headers, body).await;
    }
    let stream = request["StreamName"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let kept: Vec<Value> = entries
        .iter()
        .zip(&failed)
        .filter(|(_, f)| !**f)
        .map(|(e, _)| e.clone())
        .collect();
    let mut upstream_results = Vec::new();
    let mut upstream_failed = 0;
    if !kept.is_empty() {
        request["Records"] = Value::Array(kept);
        let body = serde_json::to_vec(&request).expect("json");
        let resp = forward(shared, method, path, headers, body).await;
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let bytes = to_bytes(resp.into_body(), MAX_BODY)
            .await
            .unwrap_or_default();
        let reply: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    "InternalFailure",
                    "fault proxy: upstream PutRecords reply is not JSON",
                )
            }
        };
        upstream_failed = reply["FailedRecordCount"].as_u64().unwrap_or(0);
        upstream_results = reply["Records"].as_array().cloned().unwrap_or_default();
    }
    let mut upstream_results = upstream_results.into_iter();
    let records: Vec<Value> = failed
        .iter()
        .map(|f| {
            if *f {
                json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": format!(
                        "Rate exceeded for shard shardId-000000000000 in stream {stream} under account {ACCOUNT_ID}."
                    ),
                })
            } else {
                upstream_results.next().unwrap_or(Value::Null)
            }
        })
        .collect();
    let body = json!({
        "FailedRecordCount": upstream_failed + injected as u64,
        "Records": records,
    });
    json_response(StatusCode::OK, &body)
}

fn throttle_message(request: Option<&Value>) -> String {
    let stream = request
        .and_then(|r| r["StreamName"].as_str())
        .unwrap_or("unknown");
    let shard = request
        .and_then(|r| r["ShardId"].as_str())
        .unwrap_or("shardId-000000000000");
    format!("Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT_ID}.")
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut resp = json_response(status, &json!({"__type": kind, "message": message}));
    resp.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_str(kind).expect("header value"),
    );
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).expect("json")));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(JSON_CONTENT_TYPE));
    resp.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("00000000-0000-0000-0000-fault0proxy0"),
    );
    resp
}

fn is_hop_header(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade"
    )
}
