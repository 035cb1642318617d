//! Profiles and audiences end to end through the HTTP API: a mapping, events collected,
//! profiles that merge, audiences with members and the entry/exit outbox, a crash and
//! restart without double counting, a rebuild.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::wait_for;
use crate::support::TestServer;

const WAIT: Duration = Duration::from_secs(30);

const MAPPING: &str = "-- web events → users
SELECT
    email(email)     AS email     KIND string,
    user_id          AS user_id   KIND string,
    lower(country)   AS country   KIND string,
    count(*)         AS visits    KIND int,
    sum(amount)      AS spent     KIND number,
    set(page)        AS pages     KIND []string,
FROM web
INTO user BY email OR user_id
ALIAS web";

async fn collect(server: &TestServer, events: Value) {
    let (status, body) = server.post("/api/collect/web", &events).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The profile holding `field = value` once `check` holds on it.
async fn profile_when(
    server: &TestServer,
    field: &str,
    value: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(WAIT, what, || async {
        let (status, body) = server
            .get(&format!("/api/profiles?field={field}&value={value}"))
            .await;
        (status == StatusCode::OK && check(&body)).then_some(body)
    })
    .await
}

async fn changes(server: &TestServer) -> Vec<(String, String, String)> {
    let (status, body) = server.get("/api/audience-changes?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["audience"].as_str().unwrap().to_owned(),
                c["profile_id"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn members(server: &TestServer, slug: &str) -> Vec<String> {
    let (status, body) = server
        .get(&format!("/api/audiences/{slug}/members?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["profile_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn mappings_and_audiences_are_checked_with_positions() {
    let server = TestServer::builder().start().await;
    let (status, body) = server.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fields"].as_array().unwrap().len(), 6);
    assert_eq!(body["fields"][3]["merge_op"], "COUNT");
    let (status, body) = server
        .put_mapping(
            "web",
            "SELECT\n    count(*) AS visits KIND string\nFROM web INTO user BY visits",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2, column "),
        "{body}"
    );
    let (status, got) = server.get("/api/streams/web/mapping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["text"], MAPPING);
    let (status, schema) = server.get("/api/schema").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["country", "email", "pages", "spent", "user_id", "visits"]
    );

    let (status, body) = server
        .post(
            "/api/audiences",
            &json!({"slug": "bad", "name": "Bad", "filter": "FILTER AND (\n  visits > ,\n)"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2, column 12"),
        "{body}"
    );
    let (status, body) = server
        .post(
            "/api/audiences",
            &json!({"slug": "a", "name": "A", "filter": "visits > 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["parsed"].is_object());
    let (status, _) = server
        .post(
            "/api/audiences",
            &json!({"slug": "b", "name": "B", "filter": "INCLUDE a"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = server
        .put("/api/audiences/a", &json!({"filter": "INCLUDE b"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("cycle"),
        "{body}"
    );
    let (status, _) = server.delete("/api/audiences/a").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server
        .post(
            "/api/audiences",
            &json!({"slug": "a", "name": "A", "filter": "visits > 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server.delete("/api/audiences/b").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = server.get("/api/audiences").await;
    assert_eq!(list["audiences"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn collected_events_become_profiles_audiences_and_changes() {
    let mut server = TestServer::builder().start().await;
    let (status, body) = server.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (slug, filter) in [
        ("buyers", "spent >= 10"),
        ("us", "country = \"us\""),
        ("us_buyers", "FILTER AND (INCLUDE us, INCLUDE buyers,)"),
    ] {
        let (status, body) = server
            .post(
                "/api/audiences",
                &json!({"slug": slug, "name": slug, "filter": filter}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    collect(
        &server,
        json!([
            {"email": "Ann@Example.com", "country": "US", "amount": 4, "page": "/"},
            {"email": "ann@example.com", "amount": 7, "page": "/pricing"},
            {"user_id": "u-bob", "country": "us", "amount": 1},
            {"page": "/anonymous"},
        ]),
    )
    .await;
    let ann = profile_when(
        &server,
        "email",
        "ann@example.com",
        "ann has 2 visits",
        |p| p["fields"]["visits"] == 2,
    )
    .await;
    assert_eq!(ann["fields"]["spent"].as_f64(), Some(11.0));
    assert_eq!(ann["fields"]["pages"], json!(["/", "/pricing"]));
    assert_eq!(ann["identities"]["email"], json!(["ann@example.com"]));
    let ann_id = ann["id"].as_str().unwrap().to_owned();
    let bob = profile_when(&server, "user_id", "u-bob", "bob exists", |_| true).await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    assert_ne!(ann_id, bob_id);
    let ann = profile_when(
        &server,
        "email",
        "ann@example.com",
        "ann is in us_buyers",
        |p| p["audiences"] == json!(["buyers", "us", "us_buyers"]),
    )
    .await;
    assert_eq!(ann["id"], ann_id.as_str());
    assert_eq!(members(&server, "us").await.len(), 2);

    // Bob's user id shows up with Ann's email: one person (Ann's profile is older).
    collect(
        &server,
        json!({"email": "ann@example.com", "user_id": "u-bob", "amount": 0}),
    )
    .await;
    let merged = profile_when(&server, "user_id", "u-bob", "bob merged into ann", |p| {
        p["id"] == ann_id.as_str()
    })
    .await;
    assert_eq!(merged["fields"]["visits"], 4);
    assert_eq!(merged["fields"]["spent"].as_f64(), Some(12.0));
    assert_eq!(
        merged["identities"],
        json!({"email": ["ann@example.com"], "user_id": ["u-bob"]})
    );
    let (status, old) = server.get(&format!("/api/profiles/{bob_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old["id"], ann_id.as_str());
    assert_eq!(members(&server, "us").await, std::slice::from_ref(&ann_id));

    // Moving away: latest country wins, so she exits `us` and, through INCLUDE, `us_buyers`.
    collect(&server, json!({"user_id": "u-bob", "country": "CA"})).await;
    profile_when(&server, "email", "ann@example.com", "ann left us", |p| {
        p["audiences"] == json!(["buyers"])
    })
    .await;
    let seen = changes(&server).await;
    let ann_changes: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(_, p, _)| *p == ann_id)
        .map(|(a, _, k)| (a.as_str(), k.as_str()))
        .collect();
    // Her first entries (in one batch or two, depending on timing), then the merge: Bob's id
    // exits `us` and she enters it again (the merged person is in), then the move to CA.
    let mut first: Vec<(&str, &str)> = ann_changes[..3].to_vec();
    first.sort();
    assert_eq!(
        first,
        [("buyers", "enter"), ("us", "enter"), ("us_buyers", "enter")]
    );
    assert_eq!(
        ann_changes[3..],
        [("us", "enter"), ("us", "exit"), ("us_buyers", "exit")]
    );
    let bob_changes: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(_, p, _)| *p == bob_id)
        .map(|(a, _, k)| (a.as_str(), k.as_str()))
        .collect();
    assert_eq!(bob_changes, [("us", "enter"), ("us", "exit")]);

    // SIGKILL and restart: nothing is counted twice, and processing goes on.
    server.kill();
    server.restart().await;
    collect(&server, json!({"email": "ann@example.com", "amount": 1})).await;
    let after = profile_when(
        &server,
        "email",
        "ann@example.com",
        "6 visits after restart",
        |p| p["fields"]["visits"] == 6,
    )
    .await;
    assert_eq!(after["fields"]["spent"].as_f64(), Some(13.0), "{after}");
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains("tributary_cdp_processor_lag_events_total"),
        "{metrics}"
    );

    // Rebuild from the stored events: same profile fields, progress visible.
    let (status, body) = server.post("/api/profiles/rebuild", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["total"], 7);
    wait_for(WAIT, "the rebuild finishes", || async {
        let (_, s) = server.get("/api/profiles/rebuild").await;
        (s["state"] == "done" && s["processed"] == 7).then_some(())
    })
    .await;
    let rebuilt = profile_when(&server, "email", "ann@example.com", "ann rebuilt", |p| {
        p["fields"]["visits"] == 6
    })
    .await;
    assert_eq!(rebuilt["fields"], after["fields"]);
    assert_eq!(rebuilt["audiences"], json!(["buyers"]));
}

/// Runs the `tributary` CLI against `server`; `(success, stdout, stderr)`.
fn cli(server: &TestServer, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .arg("--server")
        .arg(server.base_url())
        .env("TRIBUTARY_API_TOKEN", crate::support::TEST_API_TOKEN)
        .env_remove("TRIBUTARY_SERVER")
        .env_remove("TRIBUTARY_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tributary CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("CLI output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_sets_mappings_manages_audiences_and_finds_profiles() {
    let server = TestServer::builder().start().await;
    let (ok, out, err) = cli(&server, &["mapping", "set", "web", "-"], MAPPING);
    assert!(ok, "{out}{err}");
    assert!(out.contains("visits"), "{out}");
    let (ok, _, err) = cli(&server, &["mapping", "set", "web", "-"], "SELECT nope");
    assert!(!ok);
    assert!(err.contains("line 1, column"), "{err}");
    let (ok, out, _) = cli(&server, &["mapping", "show", "web"], "");
    assert!(ok && out.contains("INTO user BY email OR user_id"), "{out}");

    let (ok, out, err) = cli(
        &server,
        &["audience", "create", "buyers", "--filter", "spent >= 10"],
        "",
    );
    assert!(ok, "{out}{err}");
    collect(&server, json!([{"email": "c@x.io", "amount": 20}])).await;
    let profile = profile_when(&server, "email", "c@x.io", "c is a buyer", |p| {
        p["audiences"] == json!(["buyers"])
    })
    .await;
    let (ok, out, _) = cli(&server, &["audience", "list"], "");
    assert!(
        ok && out.contains("buyers") && out.contains("spent >= 10"),
        "{out}"
    );
    let (ok, out, _) = cli(&server, &["audience", "members", "buyers"], "");
    assert!(ok && out.contains(profile["id"].as_str().unwrap()), "{out}");
    let (ok, out, _) = cli(
        &server,
        &[
            "profile", "get", "--field", "email", "--value", "c@x.io", "--json",
        ],
        "",
    );
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["fields"]["visits"], 1);
    let (ok, out, _) = cli(&server, &["audience", "changes"], "");
    assert!(ok && out.contains("enter"), "{out}");
    let (ok, _, _) = cli(&server, &["audience", "delete", "buyers"], "");
    assert!(ok);
    let (ok, _, err) = cli(&server, &["audience", "show", "buyers"], "");
    assert!(!ok && err.contains("404"), "{err}");
}
