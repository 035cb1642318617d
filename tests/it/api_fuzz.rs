//! The HTTP API fuzzed from its own OpenAPI document with schemathesis (see
//! docs/reliability.md): no 5xx, every response matches the document (status, content type,
//! schema), no route answers without the token. The server's Kinesis and STS are a closed port
//! on loopback, so jobs the fuzzer creates fail without leaving the machine; the operations
//! that call AWS may answer their documented 502 (`tests/it/schemathesis.toml`).
//!
//! Examples per operation: `TRIBUTARY_API_FUZZ_EXAMPLES` (default 10; `bench/reliability` runs
//! 100). schemathesis comes from `scripts/setup-peers --reliability`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// How long one schemathesis run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(900);

fn examples() -> u32 {
    std::env::var("TRIBUTARY_API_FUZZ_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_no_schema_mismatch_and_no_open_route() {
    let schemathesis = peer_path("reliability-venv/bin/schemathesis");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let server = TestServer::builder()
        .kinesis_endpoint(&closed)
        .start()
        .await;
    // Some objects, so that operations on existing ids are reached too.
    create_keys_auth(&server, "fuzz", "AKIAFUZZ000000000001", "fuzz-secret").await;
    let (status, _) = server
        .post(
            "/api/audiences",
            &json!({"slug": "fuzzed", "name": "Fuzzed", "description": "", "filter": "visits > 1"}),
        )
        .await;
    assert!(status.is_success());
    let (status, _) = server
        .post("/api/collect/web", &json!([{"user_id": "u1"}]))
        .await;
    assert!(status.is_success());

    let report =
        std::env::temp_dir().join(format!("tributary-schemathesis-{}", std::process::id()));
    let config = repo_root().join("tests/it/schemathesis.toml");
    let mut child = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/api/openapi.json"))
        .args(["--checks", "all"])
        // Not a property of this API: a request the document allows may still be refused for
        // what it refers to (an authorization id that does not exist, a stream with no mapping).
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", &examples().to_string()])
        .args(["--seed", "7"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--report-dir"])
        .arg(&report)
        .arg("-H")
        .arg(format!("Authorization: {}", server.bearer()))
        .env("NO_COLOR", "1")
        // It keeps a cache of what it found in `.schemathesis/` under its working directory.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait schemathesis") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("schemathesis did not finish within {RUN_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = child.wait_with_output().expect("schemathesis output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&report);
    eprintln!("{stdout}");
    assert!(
        status.success(),
        "schemathesis found failures ({status}):\n{stdout}\n{stderr}\n{}",
        server.logs()
    );
    // The run reached the API at all (an auth that is never used would show as a warning).
    assert!(stdout.contains("passed"), "{stdout}");
}
