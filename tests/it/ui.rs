//! The web UI in a real browser: `tests/ui/flow.test.mjs` (playwright-core driving Debian's
//! headless chromium) clicks through the screens of a real `tributary serve` whose Kinesis is
//! kinesalite and whose STS is moto. This side starts the peers and the server, creates the
//! Kinesis streams and keeps putting records while the browser watches them arrive.
//!
//! Needs Debian's `/usr/bin/chromium`, which `scripts/setup-peers` installs when run as root.
//! Without it the test fails under `CI=true` (a summary must not hide an untested UI) and, on
//! a developer's machine, passes with a warning that says what to install. `TRIBUTARY_SCREENSHOTS=1` makes the test
//! save the screenshots in `docs/screenshots/` that the README shows.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const IMPORT_STREAM: &str = "ui-clickstream";
const TRIGGER_STREAM: &str = "ui-triggers";
/// Under nextest's 180 s limit, so a slow run reports what it saw.
const FLOW_TIMEOUT: Duration = Duration::from_secs(170);
const FLOW_DONE: &str = "UI FLOW OK";

fn record(n: u64) -> (String, Vec<u8>) {
    let user = n % 7;
    let body = json!({"email": format!("user{user}@example.com"), "user_id": format!("u{user}"),
                      "page": format!("/products/{}", n % 13), "n": n, "amount": (n % 5) * 10});
    (format!("u{user}"), body.to_string().into_bytes())
}

#[tokio::test]
async fn web_ui_in_a_real_browser() {
    if !Path::new(CHROMIUM).exists() {
        let why = format!(
            "{CHROMIUM} is missing: run scripts/setup-peers as root (apt-get install chromium)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "the UI test cannot run: {why}"
        );
        eprintln!("WARNING: the UI test did not run: {why}");
        return;
    }
    let playwright = peer_path("node/node_modules/playwright-core/package.json");
    let kinesalite = Kinesalite::start().await;
    let moto = Moto::start().await;
    // The user the browser's AWS-keys authorization holds: moto's STS names it on Verify;
    // kinesalite checks no signature, so the same keys read the stream.
    let (key_id, secret) = moto
        .create_user_with_policy(
            "ui-user",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .await;
    // Tributary reaches kinesalite through the fault proxy, which denies ListStreams (a real
    // AccessDeniedException) while the browser checks the stream field's fallback.
    let proxy = Arc::new(FaultProxy::start(&kinesalite.endpoint(), FaultPlan::new(6)).await);
    let server = TestServer::builder()
        .kinesis_endpoint(&proxy.endpoint())
        .sts_endpoint(&moto.endpoint())
        .start()
        .await;

    let kinesis = kinesis_client(&kinesalite.endpoint());
    create_stream(&kinesis, IMPORT_STREAM, 2).await;
    create_stream(&kinesis, TRIGGER_STREAM, 1).await;
    wait_stream_active(&kinesis, IMPORT_STREAM).await;
    wait_stream_active(&kinesis, TRIGGER_STREAM).await;
    let first: Vec<_> = (0..40).map(record).collect();
    put_records(&kinesis, IMPORT_STREAM, &first).await;
    // One record that is not JSON: the job's dead letters show it with its reason.
    put_records(
        &kinesis,
        IMPORT_STREAM,
        &[("broken", b"\xff\xfe not json at all".to_vec())],
    )
    .await;

    // Records keep arriving while the browser watches: 3 every second.
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(40));
    let putter = {
        let (stop, counter, kinesis) = (stop.clone(), counter.clone(), kinesis.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = counter.fetch_add(3, Ordering::Relaxed);
                let batch: Vec<_> = (n..n + 3).map(record).collect();
                put_records(&kinesis, IMPORT_STREAM, &batch).await;
            }
        })
    };

    let shots = std::env::var("TRIBUTARY_SCREENSHOTS").is_ok_and(|v| v == "1");
    let profile_dir = tempfile::tempdir().expect("browser profile dir");
    let script = repo_root().join("tests/ui/flow.test.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .env("TRIBUTARY_UI_URL", server.base_url())
        .env("TRIBUTARY_UI_TOKEN", TEST_API_TOKEN)
        .env("TRIBUTARY_UI_KINESIS_ENDPOINT", kinesalite.endpoint())
        .env("TRIBUTARY_UI_IMPORT_STREAM", IMPORT_STREAM)
        .env("TRIBUTARY_UI_TRIGGER_STREAM", TRIGGER_STREAM)
        .env("TRIBUTARY_UI_ACCESS_KEY_ID", &key_id)
        .env("TRIBUTARY_UI_SECRET_ACCESS_KEY", &secret)
        .env("TRIBUTARY_UI_PLAYWRIGHT", &playwright)
        .env("TRIBUTARY_UI_PROFILE_DIR", profile_dir.path())
        .env("TRIBUTARY_UI_CHROMIUM", CHROMIUM)
        .env(
            "TRIBUTARY_UI_SCREENSHOT_DIR",
            if shots {
                repo_root().join("docs/screenshots")
            } else {
                profile_dir.path().join("screenshots")
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (Node.js is needed for the browser test)");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stderr = child.stderr.take().expect("stderr");
    // The script asks for ListStreams to be denied and allowed again with `@@ deny ListStreams`
    // and `@@ allow ListStreams` lines; each is answered `@@ done` on its stdin.
    let read_out = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut out = String::new();
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let plan = match line.trim() {
                    "@@ deny ListStreams" => Some(FaultPlan::new(6).error(
                        "ListStreams",
                        1.0,
                        400,
                        "AccessDeniedException",
                    )),
                    "@@ allow ListStreams" => Some(FaultPlan::new(6)),
                    _ => None,
                };
                if let Some(plan) = plan {
                    proxy.set_plan(plan);
                    let _ = stdin.write_all(b"@@ done\n").await;
                    let _ = stdin.flush().await;
                }
                out.push_str(&line);
                out.push('\n');
            }
            out
        })
    };
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let status = match tokio::time::timeout(FLOW_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("wait for node"),
        Err(_) => {
            let _ = child.kill().await;
            panic!(
                "the browser flow took longer than {FLOW_TIMEOUT:?}\n{}\n{}",
                read_out.await.unwrap_or_default(),
                server.logs()
            );
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = putter.await;
    let out = read_out.await.unwrap_or_default();
    let err = read_err.await.unwrap_or_default();
    println!("{out}");
    assert!(
        status.success() && out.contains(FLOW_DONE),
        "the browser flow failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}\n--- server\n{}",
        server.logs()
    );
    // What the browser's export job sent is in the trigger stream, in the documented shape.
    if out.contains("ok - an export job") {
        let triggers = read_all(&kinesis, TRIGGER_STREAM).await;
        assert!(
            triggers.len() >= 8,
            "7 backfilled members and a newcomer: {}",
            triggers.len()
        );
        for t in &triggers {
            let v: serde_json::Value = serde_json::from_slice(&t.3).expect("trigger is JSON");
            assert_eq!(v["data"]["segment_events"][0]["slug"], "ui_shoppers", "{v}");
            assert!(v["data"]["email"].is_string(), "{v}");
        }
    }
    // The flow's import job really ran: what the browser saw is in the store.
    let (_, streams) = server.get("/api/streams").await;
    let web = streams["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "web_events").cloned())
        .unwrap_or_else(|| panic!("no web_events stream: {streams}"));
    assert!(web["events"].as_u64().unwrap_or(0) >= 40, "{web}");
}
