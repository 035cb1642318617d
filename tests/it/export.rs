//! The Export Audience Triggers job end to end: a real `tributary serve` turning collected
//! events into profiles that enter and leave audiences, and an export job publishing each change
//! to a Kinesis stream on kinesalite (moto for IAM). Everything is driven and checked through the
//! HTTP API and by reading the stream back with GetRecords: partition keys, the selected fields,
//! the Lytics-shaped `segment_events`/`meta`, per-user order, backfill, SIGKILL, oversize
//! records, partial failures and throttling, least privilege and a missing stream.
//!
//! Users are identified by `user_id` (the mapping's identity); `tier = "vip"` puts them in the
//! `vip` audience and any other tier takes them out. Before leaving an audience a test waits until
//! the entry is visible (the processor batches events: an entry and exit in one batch cancel out).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

/// kinesalite checks no signature; the API wants a key id shaped like AWS'.
const KINESALITE_KEY_ID: &str = "AKIAKINESALITE000001";
const EXPORT_ONLY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"*"}]}"#;
const NO_PUT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:ListShards","kinesis:DescribeStreamSummary"],"Resource":"*"}]}"#;
const READER_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:ListShards","kinesis:GetShardIterator","kinesis:GetRecords"],
    "Resource":"*"}]}"#;
const TRIBUTARY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["sts:AssumeRole"],"Resource":"*"}]}"#;

const MAPPING: &str = "-- web events → users
SELECT
    user_id          AS user_id     KIND string,
    handle           AS handle      KIND string,
    first_name       AS first_name  KIND string,
    tier             AS tier        KIND string,
    bio              AS bio         KIND string,
    count(*)         AS visits      KIND int,
FROM web
INTO user BY user_id
ALIAS web";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A kinesalite, an admin client on it, and a server (Kinesis at `endpoint`) with the mapping,
/// the `vip` and `engaged` audiences and one keys authorization.
struct Env {
    #[allow(dead_code)] // kept alive for the test
    kinesalite: Kinesalite,
    kinesis: Client,
    server: TestServer,
    auth: String,
}

impl Env {
    async fn start() -> Env {
        let kinesalite = Kinesalite::start().await;
        let endpoint = kinesalite.endpoint();
        Env::with(kinesalite, &endpoint).await
    }

    async fn with(kinesalite: Kinesalite, endpoint: &str) -> Env {
        let kinesis = kinesis_client(&kinesalite.endpoint());
        let server = TestServer::start(endpoint).await;
        setup_cdp(&server).await;
        let auth = create_keys_auth(
            &server,
            "kinesalite",
            KINESALITE_KEY_ID,
            "kinesalite-secret",
        )
        .await;
        Env {
            kinesalite,
            kinesis,
            server,
            auth,
        }
    }
}

async fn setup_cdp(server: &TestServer) {
    let (status, body) = server.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (slug, filter) in [("vip", "tier = \"vip\""), ("engaged", "visits >= 3")] {
        let (status, body) = server
            .post(
                "/api/audiences",
                &json!({"slug": slug, "name": slug, "description": "test", "filter": filter}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

async fn collect(server: &TestServer, events: Value) {
    let (status, body) = server.post("/api/collect/web", &events).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// `POST /api/jobs` for an export job with `config` (region filled in).
async fn post_export(server: &TestServer, auth: &str, mut config: Value) -> (StatusCode, Value) {
    config["region"] = json!(TEST_REGION);
    let body = json!({
        "type": "kinesis_export",
        "label": format!("export to {}", config["kinesis_stream"]),
        "description": "integration test",
        "authorization": auth,
        "config": config,
    });
    server.post("/api/jobs", &body).await
}

/// Creates an export job and waits until it has taken its starting point (its first progress
/// is kept at once, which touches the job's `updated_at`): changes from then on are its own.
async fn create_export(server: &TestServer, auth: &str, config: Value) -> String {
    let (status, job) = post_export(server, auth, config).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create job: {job}\n{}",
        server.logs()
    );
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["type"], "kinesis_export", "{job}");
    let id = id_of(&job);
    wait_for(WAIT, "the export job has started", || async {
        let v = job_view(server, &id).await;
        (v["updated_at"] != v["created_at"]).then_some(())
    })
    .await;
    id
}

/// Audience slug → `(id, members)`.
async fn audiences(server: &TestServer) -> HashMap<String, (String, u64)> {
    let (status, body) = server.get("/api/audiences").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["slug"].as_str().unwrap().to_owned(),
                (
                    a["id"].as_str().unwrap().to_owned(),
                    a["members"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

async fn wait_members(server: &TestServer, slug: &str, n: u64) {
    wait_for(WAIT, &format!("{slug} has {n} members"), || async {
        (audiences(server).await[slug].1 == n).then_some(())
    })
    .await;
}

/// The whole audience-change outbox: `(seq, audience slug, profile id, kind, at)`.
async fn outbox(server: &TestServer) -> Vec<(i64, String, String, String, DateTime<Utc>)> {
    let mut all = Vec::new();
    let mut after = 0i64;
    loop {
        let (status, body) = server
            .get(&format!("/api/audience-changes?after={after}&limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["changes"].as_array().unwrap();
        for c in page {
            all.push((
                c["seq"].as_i64().unwrap(),
                c["audience"].as_str().unwrap().to_owned(),
                c["profile_id"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c["at"].as_str().unwrap().parse().unwrap(),
            ));
        }
        match body["next"].as_i64() {
            Some(n) if !page.is_empty() => after = n,
            _ => return all,
        }
    }
}

/// `user_id` → profile id.
async fn profile_id(server: &TestServer, user: &str) -> String {
    let (status, body) = server
        .get(&format!("/api/profiles?field=user_id&value={user}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id_of(&body)
}

async fn profile(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/api/profiles/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// One record read back from the stream.
#[derive(Debug, Clone)]
struct Out {
    shard: String,
    pk: String,
    v: Value,
}

impl Out {
    fn seg(&self) -> &Value {
        &self.v["data"]["segment_events"][0]
    }
    fn event(&self) -> &str {
        self.seg()["event"].as_str().unwrap_or_default()
    }
    fn slug(&self) -> &str {
        self.seg()["slug"].as_str().unwrap_or_default()
    }
    fn profile(&self) -> &str {
        self.v["meta"]["profile_id"].as_str().unwrap_or_default()
    }
    fn change_id(&self) -> &str {
        self.v["meta"]["change_id"].as_str().unwrap_or_default()
    }
    fn backfill(&self) -> bool {
        self.v["meta"]["backfill"] == true
    }
    fn user(&self) -> &str {
        self.v["data"]["user_id"].as_str().unwrap_or_default()
    }
}

/// Every record of the stream, shard by shard, in sequence order within a shard (so in put
/// order per partition key).
async fn read_out(kinesis: &Client, stream: &str) -> Vec<Out> {
    read_all(kinesis, stream)
        .await
        .into_iter()
        .map(|(shard, _seq, pk, data)| Out {
            shard,
            pk,
            v: serde_json::from_slice(&data).unwrap_or_else(|e| {
                panic!(
                    "record is not JSON ({e}): {}",
                    String::from_utf8_lossy(&data)
                )
            }),
        })
        .collect()
}

/// Reads the stream until `done` holds on its records; panics with the job and logs on timeout.
async fn wait_out(
    env_server: &TestServer,
    kinesis: &Client,
    stream: &str,
    job: &str,
    what: &str,
    done: impl Fn(&[Out]) -> bool,
) -> Vec<Out> {
    let deadline = Instant::now() + WAIT;
    let mut pause = Duration::from_millis(50);
    loop {
        let out = read_out(kinesis, stream).await;
        if done(&out) {
            return out;
        }
        if Instant::now() >= deadline {
            let view = job_view(env_server, job).await;
            let logs = env_server.logs();
            let tail = &logs[logs.len().saturating_sub(6000)..];
            panic!(
                "timed out waiting until {what} ({} records so far)\njob: {view}\n{tail}",
                out.len()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Records grouped by partition key, each group in stream order.
fn by_key(out: &[Out]) -> BTreeMap<String, Vec<&Out>> {
    let mut map: BTreeMap<String, Vec<&Out>> = BTreeMap::new();
    for o in out {
        map.entry(o.pk.clone()).or_default().push(o);
    }
    map
}

/// Records grouped by `meta.profile_id`, each group in stream order (one key per profile).
fn by_profile(out: &[Out]) -> BTreeMap<String, Vec<&Out>> {
    let mut map: BTreeMap<String, Vec<&Out>> = BTreeMap::new();
    for o in out {
        map.entry(o.profile().to_owned()).or_default().push(o);
    }
    map
}

/// Records with one `change_id` are one change: same profile, audience, event, key, payload.
fn assert_duplicates_are_identical(out: &[Out]) {
    let mut seen: HashMap<&str, &Out> = HashMap::new();
    for o in out {
        assert!(!o.change_id().is_empty(), "no change_id: {}", o.v);
        if let Some(first) = seen.insert(o.change_id(), o) {
            assert_eq!(
                (first.profile(), first.slug(), first.event(), &first.pk),
                (o.profile(), o.slug(), o.event(), &o.pk),
                "one change_id, two changes"
            );
        }
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {v}"))
}

fn sha256_key(value: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// 1. Entries and exits, field by field.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn entries_and_exits_arrive_field_by_field_keyed_by_the_identifier_in_order() {
    let env = Env::start().await;
    let s = &env.server;
    create_stream(&env.kinesis, "triggers", 2).await;
    create_stream(&env.kinesis, "everything", 1).await;
    let chosen = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "triggers",
               "user_identifier_field": "handle",
               "export_fields": ["handle", "first_name", "visits"], "existing_users": false}),
    )
    .await;
    let all = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip", "engaged"], "kinesis_stream": "everything"}),
    )
    .await;
    let view = job_view(s, &chosen).await;
    assert_eq!(view["config"]["user_identifier_field"], "handle", "{view}");
    assert!(view["status"]["backfill"].is_null(), "{view}");

    let long_handle = format!("{}@example.com", "l".repeat(300));
    let mut events: Vec<Value> = (0..10)
        .map(|i| {
            json!({"user_id": format!("u{i}"), "handle": format!("h{i}@x.io"),
                   "first_name": format!("F{i}"), "tier": "vip", "bio": format!("bio {i}")})
        })
        .collect();
    events.push(json!({"user_id": "u10", "first_name": "Nohandle", "tier": "vip"}));
    events.push(
        json!({"user_id": "u11", "handle": long_handle, "first_name": "Long", "tier": "vip"}),
    );
    collect(s, json!(events)).await;
    wait_members(s, "vip", 12).await;
    // u0–u4 leave vip; u5–u9 visit twice more and become engaged (visits >= 3).
    let mut more: Vec<Value> = (0..5)
        .map(|i| json!({"user_id": format!("u{i}"), "tier": "basic"}))
        .collect();
    for i in 5..10 {
        more.push(json!({"user_id": format!("u{i}")}));
        more.push(json!({"user_id": format!("u{i}")}));
    }
    collect(s, json!(more)).await;

    let triggers = wait_out(
        s,
        &env.kinesis,
        "triggers",
        &chosen,
        "17 vip changes",
        |o| o.len() >= 17,
    )
    .await;
    let everything = wait_out(s, &env.kinesis, "everything", &all, "22 changes", |o| {
        o.len() >= 22
    })
    .await;
    assert_eq!(triggers.len(), 17, "12 enters + 5 exits, no duplicates");
    assert_eq!(everything.len(), 22, "12 + 5 vip, 5 engaged enters");

    let ids = audiences(s).await;
    let mut pid = HashMap::new();
    for i in 0..12 {
        pid.insert(format!("u{i}"), profile_id(s, &format!("u{i}")).await);
    }
    let user_of: HashMap<&str, &str> = pid.iter().map(|(u, p)| (p.as_str(), u.as_str())).collect();
    let changes = outbox(s).await;
    let change_at = |p: &str, slug: &str, kind: &str| -> DateTime<Utc> {
        let found: Vec<_> = changes
            .iter()
            .filter(|c| c.2 == p && c.1 == slug && c.3 == kind)
            .collect();
        assert_eq!(found.len(), 1, "one {kind} of {p} in {slug}: {found:?}");
        found[0].4
    };

    // Every record, field by field.
    for (stream, job, out) in [
        ("triggers", &chosen, &triggers),
        ("everything", &all, &everything),
    ] {
        let mut change_ids = HashSet::new();
        for o in out.iter() {
            let user = user_of
                .get(o.profile())
                .unwrap_or_else(|| panic!("unknown profile in {}", o.v));
            let meta = &o.v["meta"];
            assert_eq!(
                keys(meta),
                [
                    "backfill",
                    "change_id",
                    "object",
                    "profile_id",
                    "subscription_id",
                    "timestamp"
                ]
            );
            assert_eq!(meta["object"], "user");
            assert_eq!(meta["subscription_id"], job.as_str(), "{stream}: {}", o.v);
            assert_eq!(meta["backfill"], false);
            assert!(
                change_ids.insert(o.change_id().to_owned()),
                "change_id repeats: {}",
                o.v
            );
            time(&meta["timestamp"]);
            let seg = o.seg();
            assert_eq!(
                o.v["data"]["segment_events"].as_array().unwrap().len(),
                1,
                "{}",
                o.v
            );
            assert_eq!(seg["id"], ids[o.slug()].0.as_str(), "{}", o.v);
            let at = change_at(o.profile(), o.slug(), o.event());
            match o.event() {
                "enter" => {
                    assert!(seg.get("exit").is_none(), "{}", o.v);
                    assert_eq!(
                        time(&seg["enter"]).timestamp_millis(),
                        at.timestamp_millis()
                    );
                }
                "exit" => {
                    assert_eq!(time(&seg["exit"]).timestamp_millis(), at.timestamp_millis());
                }
                other => panic!("event {other:?}: {}", o.v),
            }
            let p = profile(s, o.profile()).await;
            let fields = &p["fields"];
            let data = &o.v["data"];
            if stream == "triggers" {
                assert_eq!(o.slug(), "vip");
                // Only the chosen fields, keyed by the handle.
                let mut want = vec!["first_name", "segment_events", "visits"];
                match *user {
                    "u10" => assert_eq!(o.pk, o.profile(), "no handle: the profile id keys it"),
                    "u11" => {
                        assert_eq!(o.pk, sha256_key(&long_handle), "a long key is hashed");
                        assert_eq!(o.pk.len(), 71);
                        want.insert(1, "handle");
                    }
                    u => {
                        assert_eq!(o.pk, format!("h{}@x.io", &u[1..]));
                        want.insert(1, "handle");
                    }
                }
                assert_eq!(keys(data), want, "{}", o.v);
                assert_eq!(data["first_name"], fields["first_name"]);
                if data.get("handle").is_some() {
                    assert_eq!(data["handle"], fields["handle"]);
                }
                assert!(data["visits"].as_u64().unwrap() >= 1);
            } else {
                // All the profile's fields, keyed by the profile id.
                assert_eq!(o.pk, o.profile());
                let mut want = keys(fields);
                want.push("segment_events".into());
                want.sort();
                assert_eq!(keys(data), want, "{}", o.v);
                for f in ["user_id", "handle", "first_name", "bio"] {
                    assert_eq!(data.get(f), fields.get(f), "{f}: {}", o.v);
                }
                assert_eq!(data["user_id"], *user);
            }
            if o.event() == "exit" {
                assert!(data.get("visits").is_some());
                if stream == "everything" {
                    assert_eq!(data["tier"], "basic", "{}", o.v);
                }
            }
        }
    }

    // Per user, in change order.
    let t = by_profile(&triggers);
    let e = by_profile(&everything);
    for i in 0..12 {
        let p = pid[&format!("u{i}")].as_str();
        let chosen_events: Vec<&str> = t[p].iter().map(|o| o.event()).collect();
        let all_events: Vec<(&str, &str)> = e[p].iter().map(|o| (o.slug(), o.event())).collect();
        match i {
            0..=4 => {
                assert_eq!(chosen_events, ["enter", "exit"], "u{i}");
                assert_eq!(all_events, [("vip", "enter"), ("vip", "exit")], "u{i}");
                assert!(time(&t[p][0].seg()["enter"]) <= time(&t[p][1].seg()["exit"]));
                // The exit carries when that membership began, as trigger consumers expect.
                assert_eq!(t[p][1].seg()["enter"], t[p][0].seg()["enter"], "u{i}");
            }
            5..=9 => {
                assert_eq!(chosen_events, ["enter"], "u{i}");
                assert_eq!(all_events, [("vip", "enter"), ("engaged", "enter")], "u{i}");
            }
            _ => {
                assert_eq!(chosen_events, ["enter"], "u{i}");
                assert_eq!(all_events, [("vip", "enter")], "u{i}");
            }
        }
        // One user, one key, one shard.
        assert_eq!(
            t[p].iter().map(|o| &o.shard).collect::<HashSet<_>>().len(),
            1
        );
    }

    let view = job_view(s, &chosen).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["status"]["events_out"], 17, "{view}");
    assert_eq!(view["status"]["dead_letters"], 0, "{view}");
    assert_eq!(
        metric(
            s,
            "tributary_export_records_sent_total",
            &[("job", chosen.as_str())]
        )
        .await,
        17.0
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Validation.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_audiences_and_fields_are_400_naming_them() {
    let server = TestServer::builder().start().await;
    setup_cdp(&server).await;
    let auth = create_keys_auth(&server, "keys", KINESALITE_KEY_ID, "secret").await;
    let base = json!({"audiences": ["vip"], "kinesis_stream": "t",
                      "user_identifier_field": "handle", "export_fields": ["first_name"]});
    let cases = [
        (
            "audiences",
            json!(["vip", "nope_aud"]),
            "config.audiences",
            "nope_aud",
        ),
        ("audiences", json!([]), "config.audiences", "at least one"),
        (
            "export_fields",
            json!(["first_name", "shoe_size"]),
            "config.export_fields",
            "shoe_size",
        ),
        (
            "user_identifier_field",
            json!("phone"),
            "config.user_identifier_field",
            "phone",
        ),
    ];
    for (key, value, field, name) in cases {
        let mut config = base.clone();
        config[key] = value;
        let (status, body) = post_export(&server, &auth, config).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(field) && message.contains(name),
            "{key}: {body}"
        );
    }
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["jobs"], json!([]), "nothing was created");
    let (status, body) = post_export(&server, &auth, base).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------------------------------------
// 3. A record over 1 MiB.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_record_over_1_mib_is_dead_lettered_never_sent_and_the_rest_keep_flowing() {
    let env = Env::start().await;
    let s = &env.server;
    create_stream(&env.kinesis, "bios", 2).await;
    let job = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "bios",
               "user_identifier_field": "user_id", "export_fields": ["user_id", "bio"]}),
    )
    .await;
    let huge = "b".repeat(1_100_000);
    let mut events: Vec<Value> = (0..5)
        .map(|i| json!({"user_id": format!("a{i}"), "tier": "vip", "bio": "short"}))
        .collect();
    events.push(json!({"user_id": "big", "tier": "vip", "bio": huge}));
    events.extend(
        (5..10).map(|i| json!({"user_id": format!("a{i}"), "tier": "vip", "bio": "short"})),
    );
    collect(s, json!(events)).await;
    wait_out(s, &env.kinesis, "bios", &job, "10 small records", |o| {
        o.len() >= 10
    })
    .await;
    eventually(s, Some(&job), "one dead letter", || async {
        job_view(s, &job).await["status"]["dead_letters"] == 1
    })
    .await;
    let (status, body) = s.get(&format!("/api/jobs/{job}/dead-letters")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{body}");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("1048576") && reason.contains("bytes"),
        "the reason says why: {reason}"
    );
    assert_eq!(letters[0]["partition_key"], "big");
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(letters[0]["raw_base64"].as_str().unwrap())
        .unwrap();
    assert!(raw.len() > 1_048_576);
    let payload: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(payload["data"]["user_id"], "big");

    // Still flowing after it.
    collect(
        s,
        json!({"user_id": "after", "tier": "vip", "bio": "short"}),
    )
    .await;
    let out = wait_out(s, &env.kinesis, "bios", &job, "the record after it", |o| {
        o.iter().any(|o| o.user() == "after")
    })
    .await;
    assert_eq!(out.len(), 11);
    assert!(out.iter().all(|o| o.pk != "big" && o.user() != "big"));
    let view = job_view(s, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["status"]["events_out"], 11, "{view}");
    assert!(
        metric(
            s,
            "tributary_export_failures_total",
            &[("job", job.as_str())]
        )
        .await
            >= 1.0
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Backfill of 5,000 members while live changes flow.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn backfill_sends_every_member_once_while_live_changes_flow() {
    const MEMBERS: usize = 5000;
    let env = Env::start().await;
    let s = &env.server;
    create_stream(&env.kinesis, "backfill", 4).await;
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(1000) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"user_id": format!("m{i}"), "tier": "vip", "first_name": format!("M{i}")}))
            .collect();
        collect(s, json!(events)).await;
    }
    wait_members(s, "vip", MEMBERS as u64).await;
    // The members as the job will find them: profile id → entered_at.
    let mut members: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/audiences/vip/members?limit=1000&after={a}"),
            None => "/api/audiences/vip/members?limit=1000".to_owned(),
        };
        let (status, body) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for m in body["members"].as_array().unwrap() {
            members.insert(
                m["profile_id"].as_str().unwrap().to_owned(),
                time(&m["entered_at"]),
            );
        }
        match body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(members.len(), MEMBERS);

    // First a backfill with no live changes: exactly the 5,000 members, each once.
    create_stream(&env.kinesis, "quiet", 2).await;
    let quiet = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "quiet",
               "export_fields": ["user_id"], "existing_users": true}),
    )
    .await;
    eventually(s, Some(&quiet), "the quiet backfill is done", || async {
        job_view(s, &quiet).await["status"]["backfill"]["done"] == true
    })
    .await;
    let view = job_view(s, &quiet).await;
    assert_eq!(
        view["status"]["backfill"],
        json!({"total": MEMBERS, "sent": MEMBERS, "done": true}),
        "{view}"
    );
    let out = wait_out(s, &env.kinesis, "quiet", &quiet, "5,000 backfilled", |o| {
        o.len() >= MEMBERS
    })
    .await;
    assert_eq!(out.len(), MEMBERS, "no duplicates without a crash");
    let profiles: HashSet<&str> = out.iter().map(|o| o.profile()).collect();
    assert_eq!(profiles.len(), MEMBERS);
    assert!(out
        .iter()
        .all(|o| o.backfill() && o.event() == "enter" && members.contains_key(o.profile())));
    let change_ids: HashSet<&str> = out.iter().map(|o| o.change_id()).collect();
    assert_eq!(change_ids.len(), MEMBERS);

    // Then one while members leave and new users join.
    let job = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "backfill",
               "user_identifier_field": "user_id", "export_fields": ["user_id", "first_name"],
               "existing_users": true}),
    )
    .await;
    let started = job_view(s, &job).await;
    assert_eq!(
        started["status"]["backfill"]["total"], MEMBERS as u64,
        "{started}"
    );

    // Live changes while the backfill runs, in waves: every 25th member leaves, new users join.
    let leaving: Vec<usize> = (0..MEMBERS).step_by(25).collect();
    let joining: Vec<usize> = (0..100).collect();
    let mut waves_during_backfill = 0;
    for wave in 0..4 {
        let mut events: Vec<Value> = leaving
            .iter()
            .skip(wave)
            .step_by(4)
            .map(|i| json!({"user_id": format!("m{i}"), "tier": "basic"}))
            .collect();
        events.extend(
            joining
                .iter()
                .skip(wave)
                .step_by(4)
                .map(|j| json!({"user_id": format!("n{j}"), "tier": "vip", "first_name": "New"})),
        );
        let backfill = job_view(s, &job).await["status"]["backfill"].clone();
        if backfill["done"] == false {
            waves_during_backfill += 1;
        }
        collect(s, json!(events)).await;
        // Let the next wave land later in the backfill.
        let sent = backfill["sent"].as_u64().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let b = job_view(s, &job).await["status"]["backfill"].clone();
            if b["done"] == true || b["sent"].as_u64().unwrap_or(0) > sent {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("{waves_during_backfill} of 4 live waves were collected while the backfill ran");

    eventually(s, Some(&job), "the backfill is done", || async {
        job_view(s, &job).await["status"]["backfill"]["done"] == true
    })
    .await;
    let leaving_users: HashSet<String> = leaving.iter().map(|i| format!("m{i}")).collect();
    let joining_users: HashSet<String> = joining.iter().map(|j| format!("n{j}")).collect();
    let out = wait_out(
        s,
        &env.kinesis,
        "backfill",
        &job,
        "every leaver's exit and every newcomer's enter",
        |out| {
            let exits: HashSet<&str> = out
                .iter()
                .filter(|o| o.event() == "exit")
                .map(|o| o.user())
                .collect();
            let live_enters: HashSet<&str> = out
                .iter()
                .filter(|o| o.event() == "enter" && !o.backfill())
                .map(|o| o.user())
                .collect();
            leaving_users.iter().all(|u| exits.contains(u.as_str()))
                && joining_users
                    .iter()
                    .all(|u| live_enters.contains(u.as_str()))
        },
    )
    .await;
    assert_duplicates_are_identical(&out);
    let view = job_view(s, &job).await;
    let backfill = &view["status"]["backfill"];
    eprintln!(
        "backfill status: {backfill}; {} records read back",
        out.len()
    );

    // Backfill records: one distinct change per member, with its membership's entry time.
    let mut backfilled: HashMap<&str, HashSet<&str>> = HashMap::new();
    for o in out.iter().filter(|o| o.backfill()) {
        assert_eq!(o.event(), "enter", "{}", o.v);
        assert_eq!(o.v["meta"]["subscription_id"], job.as_str());
        assert_eq!(o.pk, o.user(), "keyed by user_id");
        assert_eq!(
            keys(&o.v["data"]),
            ["first_name", "segment_events", "user_id"]
        );
        if let Some(entered) = members.get(o.profile()) {
            assert_eq!(
                time(&o.seg()["enter"]).timestamp_millis(),
                entered.timestamp_millis(),
                "{}",
                o.v
            );
        } else {
            assert!(
                joining_users.contains(o.user()),
                "only members and newcomers are backfilled: {}",
                o.v
            );
        }
        backfilled
            .entry(o.profile())
            .or_default()
            .insert(o.change_id());
    }
    assert!(
        backfilled.values().all(|ids| ids.len() == 1),
        "each member is backfilled once (duplicates only with the same change_id)"
    );
    let distinct_backfill: u64 = backfilled.len() as u64;
    // `total` counted the members at the start; once done it is what was sent (members who
    // left before their page got their exit instead).
    assert_eq!(backfill["total"], backfill["sent"], "{view}");
    assert!(distinct_backfill <= MEMBERS as u64 + 100, "{view}");
    assert_eq!(backfill["done"], true, "{view}");
    assert_eq!(
        backfill["sent"], distinct_backfill,
        "sent counts the backfilled members: {view}"
    );

    let groups = by_key(&out);
    let user_of: HashMap<&str, &str> = out.iter().map(|o| (o.profile(), o.user())).collect();
    let mut stayed = 0;
    for p in members.keys() {
        let Some(&user) = user_of.get(p.as_str()) else {
            panic!("member {p} never arrived");
        };
        let records = &groups[user];
        if leaving_users.contains(user) {
            // Final state downstream: out; an exit comes after the backfilled enter.
            assert_eq!(
                records.last().unwrap().event(),
                "exit",
                "{user}: {records:?}"
            );
            let exit_at = records.iter().position(|o| o.event() == "exit").unwrap();
            if let Some(enter_at) = records.iter().position(|o| o.backfill()) {
                assert!(enter_at < exit_at, "{user}: enter after exit: {records:?}");
            }
        } else {
            stayed += 1;
            assert_eq!(
                backfilled.get(p.as_str()).map(|ids| ids.len()),
                Some(1),
                "{user} is backfilled exactly once"
            );
            assert!(records.iter().all(|o| o.event() == "enter" && o.backfill()));
        }
    }
    assert_eq!(stayed, MEMBERS - leaving.len());
    for u in &joining_users {
        let records = &groups[u];
        assert_eq!(records.last().unwrap().event(), "enter", "{u}: {records:?}");
    }
    assert_eq!(view["state"], "running", "{view}");
}

// ---------------------------------------------------------------------------------------------
// 5. SIGKILL mid-export.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_killed_server_sends_every_change_at_least_once_after_restart() {
    const USERS: usize = 1500;
    let kinesalite = Kinesalite::start().await;
    // Slow PutRecords (Kinesis' answer takes 700 ms): the kill lands mid-export.
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(5).delay("PutRecords", 1.0, Duration::from_millis(700)),
    )
    .await;
    let mut env = Env::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&env.kinesis, "crash", 2).await;
    let job = create_export(
        &env.server,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "crash", "user_identifier_field": "user_id",
               "export_fields": ["user_id"]}),
    )
    .await;
    let events: Vec<Value> = (0..USERS)
        .map(|i| json!({"user_id": format!("k{i}"), "tier": "vip"}))
        .collect();
    collect(&env.server, json!(events)).await;
    let before = wait_out(
        &env.server,
        &env.kinesis,
        "crash",
        &job,
        "the first records",
        |o| !o.is_empty(),
    )
    .await;
    env.server.kill();
    let committed = {
        // Read what the dead server had committed, from its next life.
        env.server.restart().await;
        job_view(&env.server, &job).await["status"]["events_out"].clone()
    };
    eprintln!(
        "killed with {} of {USERS} records in Kinesis; {committed} committed",
        before.len()
    );
    assert!(before.len() < USERS, "the kill came before the end");
    proxy.set_plan(FaultPlan::new(6));
    let s = &env.server;
    wait_members(s, "vip", USERS as u64).await;
    let leaving: Vec<Value> = (0..USERS)
        .step_by(5)
        .map(|i| json!({"user_id": format!("k{i}"), "tier": "basic"}))
        .collect();
    collect(s, json!(leaving)).await;
    wait_members(s, "vip", (USERS - USERS / 5) as u64).await;

    let changes = outbox(s).await;
    let want: HashSet<(String, String)> = changes
        .iter()
        .filter(|c| c.1 == "vip")
        .map(|c| (c.2.clone(), c.3.clone()))
        .collect();
    assert_eq!(want.len(), USERS + USERS / 5);
    let out = wait_out(s, &env.kinesis, "crash", &job, "every change", |o| {
        let got: HashSet<(String, String)> = o
            .iter()
            .map(|o| (o.profile().to_owned(), o.event().to_owned()))
            .collect();
        want.is_subset(&got)
    })
    .await;
    assert_duplicates_are_identical(&out);
    let distinct: HashSet<&str> = out.iter().map(|o| o.change_id()).collect();
    assert_eq!(
        distinct.len(),
        want.len(),
        "nothing but the outbox's changes"
    );
    eprintln!(
        "{} records for {} changes ({} duplicates)",
        out.len(),
        want.len(),
        out.len() - want.len()
    );
    for (user, records) in by_key(&out) {
        let events: Vec<&str> = records.iter().map(|o| o.event()).collect();
        let first_exit = events.iter().position(|e| *e == "exit");
        if let Some(x) = first_exit {
            assert!(
                events[..x].contains(&"enter") && events[x..].iter().all(|e| *e == "exit"),
                "{user}: {events:?}"
            );
        }
    }
    let view = job_view(s, &job).await;
    assert_eq!(view["state"], "running", "{view}");
}

// ---------------------------------------------------------------------------------------------
// 6. Partial failures and throttling.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn partial_failures_and_throttles_retry_only_the_failed_entries_in_order() {
    const USERS: usize = 300;
    let kinesalite = Kinesalite::start().await;
    let proxy = FaultProxy::start(&kinesalite.endpoint(), FaultPlan::new(11)).await;
    let env = Env::with(kinesalite, &proxy.endpoint()).await;
    let s = &env.server;
    create_stream(&env.kinesis, "faulty", 2).await;
    let job = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "faulty", "user_identifier_field": "user_id",
               "export_fields": ["user_id", "tier"]}),
    )
    .await;
    // Paused while every user enters and leaves: one round then holds both changes of each user.
    let (status, body) = s.post(&format!("/api/jobs/{job}/pause"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events: Vec<Value> = (0..USERS)
        .map(|i| json!({"user_id": format!("f{i}"), "tier": "vip"}))
        .collect();
    collect(s, json!(events)).await;
    wait_members(s, "vip", USERS as u64).await;
    let events: Vec<Value> = (0..USERS)
        .map(|i| json!({"user_id": format!("f{i}"), "tier": "basic"}))
        .collect();
    collect(s, json!(events)).await;
    wait_members(s, "vip", 0).await;

    proxy.set_plan(
        FaultPlan::new(12)
            .throttle("PutRecords", 0.2)
            .fail_put_records_entries(0.1),
    );
    let (status, body) = s.post(&format!("/api/jobs/{job}/resume"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = wait_out(
        s,
        &env.kinesis,
        "faulty",
        &job,
        "every enter and exit",
        |o| o.len() >= 2 * USERS,
    )
    .await;
    eventually(s, Some(&job), "the round is committed", || async {
        job_view(s, &job).await["status"]["events_out"] == 2 * USERS as u64
    })
    .await;
    let counts = proxy.counts("PutRecords");
    eprintln!("PutRecords through the proxy: {counts:?}");
    assert!(counts.failed_entries > 0, "{counts:?}");
    assert!(counts.throttled > 0, "{counts:?}");

    // Nothing lost, nothing twice: a failed entry is not written and an accepted one is never
    // sent again.
    assert_eq!(
        out.len(),
        2 * USERS,
        "exactly the changes, no re-sent entries"
    );
    let distinct: HashSet<&str> = out.iter().map(|o| o.change_id()).collect();
    assert_eq!(distinct.len(), 2 * USERS);
    let groups = by_key(&out);
    assert_eq!(groups.len(), USERS);
    for (user, records) in &groups {
        let events: Vec<(&str, &Value)> = records
            .iter()
            .map(|o| (o.event(), &o.v["data"]["tier"]))
            .collect();
        assert_eq!(
            events.iter().map(|e| e.0).collect::<Vec<_>>(),
            ["enter", "exit"],
            "{user}"
        );
    }

    let job_label = [("job", job.as_str())];
    let retries = metric(s, "tributary_export_retries_total", &job_label).await;
    let throttles = metric(s, "tributary_export_throttles_total", &job_label).await;
    let sent = metric(s, "tributary_export_records_sent_total", &job_label).await;
    eprintln!("metrics: retries {retries}, throttles {throttles}, sent {sent}");
    assert_eq!(sent, (2 * USERS) as f64);
    // Each failed entry is sent again once per failure, a throttled call with all its entries;
    // every throttled call and entry is counted once.
    let failed = counts.failed_entries as f64;
    let throttled = counts.throttled as f64;
    assert!(retries >= failed + throttled, "retries {retries}");
    assert!(retries <= failed + 500.0 * throttled, "retries {retries}");
    assert_eq!(throttles, failed + throttled, "throttles");
    let view = job_view(s, &job).await;
    assert_eq!(view["state"], "running", "{view}");
}

// ---------------------------------------------------------------------------------------------
// 7. A stream that does not exist; least privilege.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_stream_fails_the_job_and_its_changes_arrive_after_resume() {
    let env = Env::start().await;
    let s = &env.server;
    let job = create_export(
        s,
        &env.auth,
        json!({"audiences": ["vip"], "kinesis_stream": "later", "user_identifier_field": "user_id",
               "export_fields": ["user_id"]}),
    )
    .await;
    let events: Vec<Value> = (0..20)
        .map(|i| json!({"user_id": format!("w{i}"), "tier": "vip"}))
        .collect();
    collect(s, json!(events)).await;
    let view = wait_state(s, &job, "failed").await;
    let error = view["last_error"].as_str().unwrap_or_default().to_owned();
    eprintln!("last_error with no stream: {error}");
    assert!(
        error.contains("ResourceNotFound") || error.contains("not found"),
        "says the stream is missing: {error}"
    );
    assert!(error.contains("later"), "names the stream: {error}");

    create_stream(&env.kinesis, "later", 1).await;
    let (status, body) = s.post(&format!("/api/jobs/{job}/resume"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = wait_out(s, &env.kinesis, "later", &job, "the kept changes", |o| {
        o.len() >= 20
    })
    .await;
    let users: HashSet<&str> = out.iter().map(|o| o.user()).collect();
    assert_eq!(users.len(), 20);
    assert!(out.iter().all(|o| o.event() == "enter"));
    let view = job_view(s, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert!(view["last_error"].is_null(), "{view}");
}

#[tokio::test]
async fn export_runs_with_only_put_record_and_put_records() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    create_stream(&admin, "iam-triggers", 1).await;
    let (own_key, own_secret) = moto
        .create_user_with_policy("tributary", TRIBUTARY_POLICY)
        .await;
    let (key, secret) = moto
        .create_user_with_policy("exporter", EXPORT_ONLY_POLICY)
        .await;
    let (np_key, np_secret) = moto.create_user_with_policy("no-put", NO_PUT_POLICY).await;
    let (r_key, r_secret) = moto.create_user_with_policy("reader", READER_POLICY).await;
    moto.enable_iam_enforcement().await;

    let server = TestServer::builder()
        .kinesis_endpoint(&moto.endpoint())
        .sts_endpoint(&moto.endpoint())
        .credentials(&own_key, &own_secret)
        .start()
        .await;
    setup_cdp(&server).await;
    let auth = create_keys_auth(&server, "exporter", &key, &secret).await;
    let job = create_export(
        &server,
        &auth,
        json!({"audiences": ["vip"], "kinesis_stream": "iam-triggers",
               "user_identifier_field": "user_id", "export_fields": ["user_id"]}),
    )
    .await;
    let denied_auth = create_keys_auth(&server, "no-put", &np_key, &np_secret).await;
    let denied = create_export(
        &server,
        &denied_auth,
        json!({"audiences": ["vip"], "kinesis_stream": "iam-triggers"}),
    )
    .await;
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"user_id": format!("i{i}"), "tier": "vip"}))
        .collect();
    collect(&server, json!(events)).await;
    wait_members(&server, "vip", 10).await;
    collect(&server, json!({"user_id": "i0", "tier": "basic"})).await;

    let reader = kinesis_client_as(&moto.endpoint(), &r_key, &r_secret);
    let out = wait_out(&server, &reader, "iam-triggers", &job, "11 records", |o| {
        o.len() >= 11
    })
    .await;
    assert_eq!(out.len(), 11, "moto: one writer, exactly the changes");
    let i0: Vec<&str> = by_key(&out)["i0"].iter().map(|o| o.event()).collect();
    assert_eq!(i0, ["enter", "exit"]);
    let view = job_view(&server, &job).await;
    assert_eq!(view["state"], "running", "{view}");

    let view = wait_state(&server, &denied, "failed").await;
    let error = view["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error without PutRecords: {error}");
    assert!(error.contains("PutRecords"), "names the call: {error}");
    assert!(
        error.contains("AccessDenied") || error.contains("not authorized"),
        "says access is denied: {error}"
    );
}

/// A windowed field ages out: with the server's clock moved (test-only settings) to just
/// before an hour boundary, a buyer enters `buys_1h >= 1` and, once the clock passes the
/// boundary, the ageing sweep makes her exit; the exit reaches the export stream.
#[tokio::test]
async fn a_member_exits_when_the_window_passes_and_the_exit_is_exported() {
    const LEAD: i64 = 30;
    let kinesalite = Kinesalite::start().await;
    let kinesis = kinesis_client(&kinesalite.endpoint());
    // The server's now is LEAD seconds before the next hour when the test starts.
    let real = Utc::now().timestamp();
    let offset = (3600 - LEAD - real.rem_euclid(3600)).rem_euclid(3600);
    let boundary = DateTime::<Utc>::from_timestamp(real + offset + LEAD, 0).unwrap();
    let s = &TestServer::builder()
        .kinesis_endpoint(&kinesalite.endpoint())
        .env("TRIBUTARY_TEST_CLOCK_OFFSET_SECS", &offset.to_string())
        .env("TRIBUTARY_TEST_AGING_EVERY_MS", "300")
        .start()
        .await;
    let mapping = r#"SELECT user_id AS user_id KIND string,
        count(*) AS buys_1h KIND int WINDOW 1h IF eq(event, "buy")
        FROM shop INTO user BY user_id"#;
    let (status, body) = s.put_mapping("shop", mapping).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post(
            "/api/audiences",
            &json!({"slug": "buyers", "name": "buyers", "description": "", "filter": "buys_1h >= 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let auth = create_keys_auth(s, "kinesalite", KINESALITE_KEY_ID, "kinesalite-secret").await;
    create_stream(&kinesis, "behavior", 1).await;
    let job = create_export(
        s,
        &auth,
        json!({"audiences": ["buyers"], "kinesis_stream": "behavior"}),
    )
    .await;

    // A purchase now by the server's clock: inside this hour's bucket.
    let server_now = Utc::now() + chrono::Duration::seconds(offset);
    assert!(
        boundary - server_now > chrono::Duration::seconds(5),
        "setting up took longer than {LEAD}s; the purchase would not land before the hour ends"
    );
    let (status, body) = s
        .post(
            "/api/collect/shop",
            &json!([{"user_id": "u1", "event": "buy", "ts": server_now.to_rfc3339()}]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let out = wait_out(s, &kinesis, "behavior", &job, "an enter and an exit", |o| {
        o.iter().any(|r| r.event() == "exit")
    })
    .await;
    let events: Vec<(&str, &str)> = out.iter().map(|o| (o.event(), o.slug())).collect();
    assert_eq!(events, [("enter", "buyers"), ("exit", "buyers")], "{out:?}");
    assert_eq!(out[0].profile(), out[1].profile());
    let exit_at = time(&out[1].seg()["exit"]);
    assert!(
        exit_at >= boundary,
        "exit at {exit_at}, the window ends at {boundary}"
    );
    let (_, profile) = s.get(&format!("/api/profiles/{}", out[1].profile())).await;
    assert_eq!(profile["fields"]["buys_1h"], 0, "{profile}");
    assert!(
        profile["scores"]["recency"].as_u64().unwrap() > 90,
        "{profile}"
    );
}
