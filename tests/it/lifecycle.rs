//! Data lifecycle end to end on a real `tributary serve` and kinesalite: erasing a person
//! (events, profile and identities gone, exits with the reason in the output stream, the
//! email's bytes absent from every file of the data dir after a clean stop, a suppressed email
//! sent again creating nothing), stream retention under a running import, and an online backup
//! restored into a new data dir.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);
/// kinesalite checks no signature; the API wants a key id shaped like AWS'.
const KINESALITE_KEY_ID: &str = "AKIAKINESALITE000001";

const MAPPING: &str = "SELECT
    email(email)   AS email    KIND string,
    user_id        AS user_id  KIND string,
    tier           AS tier     KIND string,
    count(*)       AS visits   KIND int,
FROM web
INTO user BY email OR user_id";

/// A server on kinesalite with the mapping, a `vip` audience and a keys authorization.
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
        let kinesis = kinesis_client(&kinesalite.endpoint());
        let server = TestServer::start(&kinesalite.endpoint()).await;
        let (status, body) = server.put_mapping("web", MAPPING).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = server
            .post(
                "/api/audiences",
                &json!({"slug": "vip", "name": "VIP", "description": "", "filter": "tier = \"vip\""}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let auth = create_keys_auth(&server, "kinesalite", KINESALITE_KEY_ID, "secret").await;
        Env {
            kinesalite,
            kinesis,
            server,
            auth,
        }
    }

    async fn create_job(&self, body: Value) -> String {
        let (status, job) = self.server.post("/api/jobs", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{job}\n{}", self.server.logs());
        id_of(&job)
    }

    async fn import(&self, kinesis_stream: &str) -> String {
        self.create_job(json!({
            "type": "kinesis_import", "label": format!("import {kinesis_stream}"),
            "description": "", "authorization": self.auth,
            "config": {"stream": "web", "region": TEST_REGION, "kinesis_stream": kinesis_stream,
                       "start_position": "trim_horizon"},
        }))
        .await
    }

    async fn export(&self, kinesis_stream: &str) -> String {
        self.create_job(json!({
            "type": "kinesis_export", "label": format!("export {kinesis_stream}"),
            "description": "", "authorization": self.auth,
            "config": {"audiences": ["vip"], "region": TEST_REGION,
                       "kinesis_stream": kinesis_stream, "user_identifier_field": "email"},
        }))
        .await
    }

    async fn put(&self, stream: &str, events: &[Value]) {
        let records: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| ("pk".to_owned(), serde_json::to_vec(e).unwrap()))
            .collect();
        put_records(&self.kinesis, stream, &records).await;
    }

    /// The profile holding `field = value`, once it exists.
    async fn profile(&self, field: &str, value: &str) -> Value {
        let path = format!("/api/profiles?field={field}&value={value}");
        wait_for(WAIT, &format!("a profile with {field} {value}"), || async {
            let (status, body) = self.server.get(&path).await;
            (status == StatusCode::OK).then_some(body)
        })
        .await
    }
}

/// Every event of the `web` stream, newest first.
async fn web_events(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/streams/web/events?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test]
async fn erasing_a_person_deletes_them_everywhere_tells_exports_and_keeps_them_out() {
    let mut env = Env::start().await;
    const ADA: &str = "ada.lovelace.erased@example.org";
    create_stream(&env.kinesis, "clicks", 1).await;
    create_stream(&env.kinesis, "triggers", 1).await;
    let export = env.export("triggers").await;
    let import = env.import("clicks").await;

    let ada = |n: i64| json!({"email": ADA, "user_id": "u-ada", "tier": "vip", "n": n});
    let bob = |n: i64| json!({"email": "bob@example.org", "tier": "vip", "n": n});
    env.put("clicks", &[ada(1), bob(1), ada(2)]).await;
    // Through the API too, and by the other identifier only.
    let (status, body) = env
        .server
        .post("/api/collect/web", &json!({"user_id": "u-ada", "n": 3}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ada_profile = env.profile("email", ADA).await;
    let ada_id = id_of(&ada_profile);
    env.profile("email", "bob@example.org").await;
    wait_for(WAIT, "both are vip members", || async {
        let (_, body) = env.server.get("/api/audiences").await;
        (body["audiences"][0]["members"] == 2).then_some(())
    })
    .await;
    wait_for(WAIT, "three events applied to ada", || async {
        let (_, p) = env.server.get(&format!("/api/profiles/{ada_id}")).await;
        (p["fields"]["visits"] == 3).then_some(())
    })
    .await;

    // A 404 for nobody; then the erasure, by identifier, with suppression.
    let (status, body) = env
        .server
        .delete("/api/profiles?field=email&value=nobody@example.org")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, erased) = env
        .server
        .delete(&format!(
            "/api/profiles?field=email&value={ADA}&suppress=true"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}\n{}", env.server.logs());
    assert_eq!(erased["profile_id"], ada_id.as_str(), "{erased}");
    assert_eq!(erased["events_deleted"], 3, "{erased}");
    assert_eq!(erased["identities_deleted"], 2, "{erased}");
    assert_eq!(erased["audiences_exited"], 1, "{erased}");
    assert_eq!(erased["suppressed"], 2, "{erased}");

    let (status, _) = env.server.get(&format!("/api/profiles/{ada_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = env
        .server
        .get("/api/profiles?field=user_id&value=u-ada")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = web_events(&env.server).await;
    assert_eq!(events.len(), 1, "only bob's event is left: {events:?}");
    assert_eq!(events[0]["fields"]["email"], "bob@example.org");
    let (status, again) = env.server.delete(&format!("/api/profiles/{ada_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");

    // The exit reaches the output stream, saying why.
    let exit = wait_for(WAIT, "ada's exit in the output stream", || async {
        read_all(&env.kinesis, "triggers")
            .await
            .into_iter()
            .map(|(_, _, _, data)| serde_json::from_slice::<Value>(&data).unwrap())
            .find(|r| {
                r["meta"]["profile_id"] == ada_id.as_str()
                    && r["data"]["segment_events"][0]["event"] == "exit"
            })
    })
    .await;
    assert_eq!(exit["meta"]["reason"], "deleted", "{exit}");
    assert!(exit["data"].get("email").is_none(), "{exit}");

    // The list holds hashes only.
    let (status, list) = env.server.get("/api/suppressions").await;
    assert_eq!(status, StatusCode::OK);
    let list = list["suppressions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(!serde_json::to_string(&list).unwrap().contains(ADA));
    assert!(list.iter().all(|s| s["hash"].as_str().unwrap().len() == 64));

    // Sent again through /api/collect and Kinesis: dropped and counted; bob's still stored.
    let (status, body) = env
        .server
        .post(
            "/api/collect/web",
            &json!([{"email": ADA.to_uppercase(), "n": 4}, {"email": "carol@example.org"}]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 1, "suppressed": 1}));
    env.put(
        "clicks",
        &[ada(5), bob(2), json!({"email": "dan@example.org"})],
    )
    .await;
    env.profile("email", "dan@example.org").await;
    wait_for(WAIT, "the import counts the suppressed event", || async {
        let v = job_view(&env.server, &import).await;
        (v["status"]["suppressed"] == 1).then_some(())
    })
    .await;
    let (status, _) = env
        .server
        .get(&format!("/api/profiles?field=email&value={ADA}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "ada did not come back");
    assert_eq!(
        metric(
            &env.server,
            "tributary_suppressed_events_total",
            &[("source", "collect")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &env.server,
            "tributary_suppressed_events_total",
            &[("source", &import)]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&env.server, "tributary_erasures_total", &[]).await,
        1.0
    );
    assert_eq!(job_view(&env.server, &export).await["state"], "running");

    // After a clean stop no file of the data dir holds the email's bytes.
    assert!(env.server.stop().await, "{}", env.server.logs());
    let hits = files_containing(&env.server.data_dir(), ADA.as_bytes());
    assert!(hits.is_empty(), "the erased email is still in {hits:?}");
    assert!(
        !files_containing(&env.server.data_dir(), b"bob@example.org").is_empty(),
        "the scan reads the store's files"
    );

    // Taking a suppression off lets the identifier in again.
    env.server.restart().await;
    let id = list[0]["id"].as_str().unwrap();
    let (status, _) = env.server.delete(&format!("/api/suppressions/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env.server.delete(&format!("/api/suppressions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retention_deletes_old_events_under_a_running_import_and_keeps_the_new() {
    let env = Env::start().await;
    create_stream(&env.kinesis, "clicks", 1).await;
    let import = env.import("clicks").await;
    let (status, body) = env.server.get("/api/streams/web/retention").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"stream": "web", "max_age": null, "source": "default"})
    );
    let (status, body) = env
        .server
        .put("/api/streams/web/retention", &json!({"max_age": "20 days"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_field", "{body}");
    assert!(
        body["message"].as_str().unwrap().starts_with("max_age"),
        "{body}"
    );

    let old: Vec<Value> = (0..50)
        .map(|i| json!({"email": format!("old{i}@example.org"), "batch": "old"}))
        .collect();
    env.put("clicks", &old).await;
    wait_for(WAIT, "the old events are stored and applied", || async {
        let (_, body) = env.server.get("/api/streams").await;
        let s = &body["streams"][0];
        (s["events"] == 50 && s["processor_lag"] == 0).then_some(())
    })
    .await;
    let (status, body) = env
        .server
        .put("/api/streams/web/retention", &json!({"max_age": "20s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"stream": "web", "max_age": "20s", "source": "stream"})
    );

    // The import keeps running while retention deletes: a record a second.
    let feeding = {
        let kinesis = env.kinesis.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let e = json!({"email": format!("live{i}@example.org"), "batch": "live"});
                put_records(
                    &kinesis,
                    "clicks",
                    &[("pk", serde_json::to_vec(&e).unwrap())],
                )
                .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let count = |batch: &'static str| {
        let server = &env.server;
        async move {
            web_events(server)
                .await
                .iter()
                .filter(|e| e["fields"]["batch"] == batch)
                .count()
        }
    };
    let deadline = WAIT + Duration::from_secs(30);
    wait_for(deadline, "retention deleted the old events", || async {
        (count("old").await == 0).then_some(())
    })
    .await;
    let live_then = count("live").await;
    assert!(live_then > 0, "the import stored while retention ran");
    // The newest events are all there: 10 more arrive, none of them is deleted.
    wait_for(WAIT, "the import goes on", || async {
        (count("live").await >= live_then + 10).then_some(())
    })
    .await;
    feeding.abort();
    let events = web_events(&env.server).await;
    let newest: Vec<i64> = events
        .iter()
        .take(10)
        .map(|e| {
            e["fields"]["email"].as_str().unwrap()["live".len()..]
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        newest.windows(2).all(|w| w[0] == w[1] + 1),
        "the newest ten are consecutive: {newest:?}"
    );
    let stored_before = |e: &Value, secs: i64| {
        let at: chrono::DateTime<chrono::Utc> = e["stored_at"].as_str().unwrap().parse().unwrap();
        at < chrono::Utc::now() - chrono::Duration::seconds(secs)
    };
    assert!(
        !events.iter().any(|e| stored_before(e, 20 + 15 + 10)),
        "nothing stays much past its age"
    );
    assert!(
        metric(
            &env.server,
            "tributary_retention_deleted_total",
            &[("kind", "events")]
        )
        .await
            >= 50.0
    );
    assert!(
        metric(
            &env.server,
            "tributary_store_file_bytes",
            &[("file", "main")]
        )
        .await
            > 0.0
    );
    let (_, streams) = env.server.get("/api/streams").await;
    assert!(
        streams["streams"][0]["approx_bytes"].as_u64().unwrap() > 0,
        "{streams}"
    );
    assert_eq!(job_view(&env.server, &import).await["state"], "running");
}

#[tokio::test]
async fn a_backup_under_load_restores_into_a_new_data_dir_and_resumes_with_nothing_lost() {
    let mut env = Env::start().await;
    create_stream(&env.kinesis, "clicks", 2).await;
    let import = env.import("clicks").await;
    let record = |i: usize| json!({"email": format!("b{i}@example.org"), "i": i});
    let first: Vec<Value> = (0..200).map(record).collect();
    env.put("clicks", &first).await;
    wait_for(WAIT, "some events are stored", || async {
        (web_events(&env.server).await.len() >= 50).then_some(())
    })
    .await;

    // Under load: more records go in while the copy is taken.
    let more: Vec<Value> = (200..400).map(record).collect();
    let kinesis = env.kinesis.clone();
    let feeding = tokio::spawn(async move {
        for chunk in more.chunks(20) {
            let records: Vec<(String, Vec<u8>)> = chunk
                .iter()
                .map(|e| ("pk".to_owned(), serde_json::to_vec(e).unwrap()))
                .collect();
            put_records(&kinesis, "clicks", &records).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let backup_dir = tempfile::tempdir().unwrap();
    let dest = backup_dir.path().join("b1");
    let (status, body) = env
        .server
        .post(
            "/api/backup",
            &json!({"dest_dir": dest.display().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", env.server.logs());
    let files: Vec<&str> = body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{body}");
    assert!(body["bytes"].as_u64().unwrap() > 0);
    assert!(!dest.join("master.key").exists(), "the key is not copied");
    // Not over an existing backup.
    let (status, again) = env
        .server
        .post(
            "/api/backup",
            &json!({"dest_dir": dest.display().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    // Nor into the server's working directory.
    let (status, relative) = env
        .server
        .post("/api/backup", &json!({"dest_dir": "backups/b2"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{relative}");
    feeding.await.unwrap();
    let rest: Vec<Value> = (400..500).map(record).collect();
    env.put("clicks", &rest).await;
    assert_eq!(job_view(&env.server, &import).await["state"], "running");
    assert!(env.server.stop().await);

    // A new data dir on the copy (same master key): the job resumes from the backed-up
    // checkpoints and ends with every record exactly once.
    let store = format!("sqlite://{}", dest.join("tributary.db").display());
    let restored = TestServer::builder()
        .kinesis_endpoint(&env.kinesalite.endpoint())
        .arg("--store")
        .arg(&store)
        .start()
        .await;
    wait_for(WAIT, "all 500 records are stored once", || async {
        let events = web_events_all(&restored).await;
        (events.len() >= 500).then_some(())
    })
    .await;
    let events = web_events_all(&restored).await;
    let mut seen: Vec<i64> = events
        .iter()
        .map(|e| e["fields"]["i"].as_i64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..500).collect::<Vec<i64>>(),
        "nothing lost or duplicated"
    );
    let (_, jobs) = restored.get("/api/jobs").await;
    assert_eq!(jobs["jobs"][0]["id"], import.as_str());
    assert_eq!(jobs["jobs"][0]["state"], "running", "{jobs}");
}

/// Every event of the `web` stream, page by page.
async fn web_events_all(server: &TestServer) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = "/api/streams/web/events?limit=1000".to_owned();
    loop {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        all.extend(body["events"].as_array().unwrap().clone());
        match body["next_before"].as_i64() {
            Some(seq) => path = format!("/api/streams/web/events?limit=1000&before={seq}"),
            None => return all,
        }
    }
}
