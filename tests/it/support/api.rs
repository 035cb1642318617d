//! Helpers over Tributary's HTTP API that every integration test uses: ids, job views,
//! waiting on a condition with a deadline, reading `/metrics`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::TestServer;

/// Long enough for a loaded 2-core machine; conditions usually hold within a few seconds.
pub const WAIT: Duration = Duration::from_secs(90);

pub async fn create_keys_auth(server: &TestServer, label: &str, key: &str, secret: &str) -> String {
    let body = json!({
        "label": label,
        "method": "aws_keys",
        "access_key_id": key,
        "secret_access_key": secret,
    });
    let (status, created) = server.post("/api/authorizations", &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create authorization: {created}\n{}",
        server.logs()
    );
    id_of(&created)
}

pub fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

pub async fn job_view(server: &TestServer, id: &str) -> Value {
    let (status, job) = server.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "GET job {id}: {job}\n{}",
        server.logs()
    );
    job
}

/// Polls until `condition` holds; on timeout panics with `what`, the job's view and the
/// server's logs.
pub async fn eventually<F, Fut>(
    server: &TestServer,
    job: Option<&str>,
    what: &str,
    mut condition: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    let mut pause = Duration::from_millis(20);
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            let view = match job {
                Some(id) => job_view(server, id).await.to_string(),
                None => String::new(),
            };
            let logs = server.logs();
            let tail: String = logs
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("timed out after {WAIT:?} waiting until {what}\njob: {view}\n{tail}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Waits until the job is in `state` (e.g. "failed"); returns its view.
pub async fn wait_state(server: &TestServer, job: &str, state: &str) -> Value {
    eventually(server, Some(job), &format!("job is {state}"), || async {
        job_view(server, job).await["state"] == state
    })
    .await;
    job_view(server, job).await
}

/// `/metrics` sample `name{labels}` where every `(label, value)` of `labels` matches; summed.
pub async fn metric(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_samples(server, name, labels).await.iter().sum()
}

/// The values of every `/metrics` series of `name` whose labels include `labels`.
pub async fn metric_samples(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let resp = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        resp.status().is_success(),
        "GET /metrics: {}",
        resp.status()
    );
    let text = resp.text().await.expect("metrics text");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric_name, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .collect()
}
