//! Several `tributary serve` nodes on one PostgreSQL database share the work: each shard of an
//! import job is read by one node at a time, the shards spread over the nodes and move off a
//! node that is killed or stops, and every record is stored once, in order per key, whichever
//! node read it. Checked only through the HTTP API.
//!
//! Needs a PostgreSQL server where the user may create databases:
//! `TRIBUTARY_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::import::{
    all_events, assert_exactly_once, assert_order_per_key, create_import, key_counters,
    stream_count, Producer, UNTIL_STOPPED,
};
use crate::support::*;

/// The nodes' lease timeout (seconds): short, so a killed node's work moves quickly.
const LEASE_TIMEOUT: &str = "5";

/// A fresh database for one test, dropped at its end (also used by `crash.rs`).
pub(crate) struct Database {
    admin: tokio_postgres::Client,
    name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) async fn create() -> Database {
        let base = std::env::var("TRIBUTARY_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let config = tokio_postgres::Config::from_str(&base).expect("a PostgreSQL URL");
        let (admin, connection) = config.connect(NoTls).await.unwrap_or_else(|e| {
            panic!("the cluster tests need PostgreSQL at {base} (TRIBUTARY_TEST_POSTGRES): {e}")
        });
        tokio::spawn(connection);
        let name = format!("tributary_it_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
        Database {
            admin,
            url: format!("{prefix}/{name}?pool_max=3"),
            name,
        }
    }

    pub(crate) async fn drop_it(self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

impl Database {
    /// Makes the database refuse (`true`) or take writes again, as a PostgreSQL server put in
    /// read-only mode (or out of disk) does: every transaction of a new session is read-only,
    /// and the sessions open now are ended so the pool reconnects into the new setting.
    pub(crate) async fn refuse_writes(&self, refuse: bool) {
        let setting = if refuse {
            format!(
                "ALTER DATABASE {} SET default_transaction_read_only = on",
                self.name
            )
        } else {
            format!(
                "ALTER DATABASE {} RESET default_transaction_read_only",
                self.name
            )
        };
        self.admin.batch_execute(&setting).await.expect(&setting);
        self.admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("end the database's sessions");
    }

    /// `host:port` of the PostgreSQL server.
    fn server_addr(&self) -> String {
        let rest = self.url.split_once("://").expect("scheme").1;
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        rest.split_once('/')
            .expect("a database in the URL")
            .0
            .to_owned()
    }

    /// The database's URL with the server reached through `relay` instead.
    fn url_through(&self, relay: &TcpRelay) -> String {
        self.url
            .replacen(&self.server_addr(), &relay.addr().to_string(), 1)
    }
}

async fn node(db: &Database, kinesis: &str) -> TestServer {
    node_with_timeout(db, kinesis, LEASE_TIMEOUT).await
}

async fn node_with_timeout(db: &Database, kinesis: &str, lease_timeout: &str) -> TestServer {
    TestServer::builder()
        .kinesis_endpoint(kinesis)
        .arg("--store")
        .arg(&db.url)
        .arg("--lease-timeout")
        .arg(lease_timeout)
        .start()
        .await
}

/// Like `wait_for`, but a timeout shows every node's log: what the cluster did matters.
async fn wait_on<T, F, Fut>(nodes: &[TestServer], what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if std::time::Instant::now() >= deadline {
            let logs: Vec<String> = nodes.iter().map(TestServer::logs).collect();
            panic!(
                "timed out after {WAIT:?} waiting for {what}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cluster(server: &TestServer) -> Value {
    let (status, body) = server.get("/api/cluster").await;
    assert_eq!(status, StatusCode::OK, "GET /api/cluster: {body}");
    body
}

/// The lease named `name` as `GET /api/cluster` shows it.
async fn lease(server: &TestServer, name: &str) -> Option<Value> {
    cluster(server).await["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
}

/// The leases of the shards of import job `job`, by name.
async fn shard_leases(server: &TestServer, job: &str) -> Vec<Value> {
    let prefix = format!("import/{job}/");
    cluster(server).await["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .filter(|l| l["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .cloned()
        .collect()
}

/// The shard leases of `job` once there are `shards` of them, each held by one of `owners`.
async fn all_shards_held(
    server: &TestServer,
    job: &str,
    shards: usize,
    owners: &[String],
) -> Option<Vec<Value>> {
    let leases = shard_leases(server, job).await;
    (leases.len() == shards && leases.iter().all(|l| held_by(l, owners))).then_some(leases)
}

/// The shard leases of `job` once every node in `owners` sees all of them alive and the leases
/// have stayed with the same owners for two seconds: the nodes have settled who reads what.
async fn settled_shards(
    nodes: &[TestServer],
    job: &str,
    shards: usize,
    owners: &[String],
) -> Vec<Value> {
    const STEADY: Duration = Duration::from_secs(2);
    wait_on(nodes, "every node sees the others alive", || async {
        let c = cluster(&nodes[0]).await;
        let alive = c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .count();
        (alive == owners.len()).then_some(())
    })
    .await;
    let seen: std::cell::RefCell<Option<(Vec<Value>, std::time::Instant)>> = Default::default();
    let who =
        |leases: &[Value]| -> Vec<Value> { leases.iter().map(|l| l["owner"].clone()).collect() };
    wait_on(nodes, "the shard leases settle", || async {
        let leases = all_shards_held(&nodes[0], job, shards, owners).await?;
        let mut seen = seen.borrow_mut();
        match &*seen {
            Some((owners_then, since)) if *owners_then == who(&leases) => {
                (since.elapsed() >= STEADY).then_some(leases)
            }
            _ => {
                *seen = Some((who(&leases), std::time::Instant::now()));
                None
            }
        }
    })
    .await
}

/// The id a node gives itself (`this_node`).
async fn node_id(server: &TestServer) -> String {
    cluster(server).await["this_node"]
        .as_str()
        .expect("this_node")
        .to_owned()
}

/// Whether `lease` is held, unexpired, by one of `owners`.
fn held_by(lease: &Value, owners: &[String]) -> bool {
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(lease["expires_at"].clone()).expect("expires_at");
    owners.iter().any(|o| lease["owner"] == o.as_str()) && expires > chrono::Utc::now()
}

#[tokio::test]
async fn an_import_moves_off_a_killed_node_and_stores_every_record_once() {
    let db = Database::create().await;
    let kinesalite = Kinesalite::start().await;
    let endpoint = kinesalite.endpoint();
    let kinesis = kinesis_client(&endpoint);
    create_stream(&kinesis, "clicks", 8).await;

    let mut nodes = vec![
        node(&db, &endpoint).await,
        node(&db, &endpoint).await,
        node(&db, &endpoint).await,
    ];
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(node_id(n).await);
    }
    wait_until(WAIT, "every node sees the three", || async {
        let c = cluster(&nodes[0]).await;
        c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .count()
            == 3
    })
    .await;

    let auth = create_keys_auth(&nodes[0], "kinesalite", "AKIAKINESALITE000001", "secret").await;
    let export = start_regulars_export(&nodes[2], &kinesis, &auth).await;
    let job = create_import(&nodes[1], &auth, "clicks", "web", json!("trim_horizon")).await;
    let producer = Producer::start(
        kinesis.clone(),
        "clicks",
        40,
        UNTIL_STOPPED,
        Duration::from_millis(50),
    );

    // The eight shards spread over the three nodes.
    let before = wait_for(WAIT, "live nodes hold all eight shards", || async {
        all_shards_held(&nodes[2], &job, 8, &ids).await
    })
    .await;
    let owners: std::collections::BTreeSet<&str> = before
        .iter()
        .map(|l| l["owner"].as_str().unwrap())
        .collect();
    assert!(
        owners.len() >= 2,
        "the shards spread over the nodes: {before:?}"
    );
    wait_until(WAIT, "events arrive", || async {
        stream_count(&nodes[0], "web").await >= 400
    })
    .await;

    // Kill a node that reads shards while records flow; a fourth node joins meanwhile.
    let victim = ids
        .iter()
        .position(|id| owners.contains(id.as_str()))
        .expect("a node reading shards");
    let victim_id = ids.remove(victim);
    nodes.remove(victim).kill();
    let fourth = node(&db, &endpoint).await;
    ids.push(node_id(&fourth).await);
    nodes.push(fourth);

    let after = wait_for(WAIT, "live nodes hold every shard again", || async {
        all_shards_held(&nodes[0], &job, 8, &ids).await
    })
    .await;
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old["name"], new["name"]);
        if old["owner"] == victim_id.as_str() {
            assert!(
                new["token"].as_i64() > old["token"].as_i64(),
                "the dead node's shard changed hands: {old} → {new}"
            );
        }
    }
    // A shard splits while records flow: its children are read (by live nodes) once it is done.
    let parent = after[0]["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    split_shard_in_half(&kinesis, "clicks", &parent).await;
    wait_stream_active(&kinesis, "clicks").await;
    let children: Vec<String> = list_shards(&kinesis, "clicks")
        .await
        .into_iter()
        .filter(|s| s.parent_shard_id() == Some(parent.as_str()))
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(children.len(), 2, "the split made two children");
    wait_on(&nodes, "live nodes read both children", || async {
        let leases = shard_leases(&nodes[0], &job).await;
        children
            .iter()
            .all(|c| {
                leases.iter().any(|l| {
                    l["name"].as_str().is_some_and(|n| n.ends_with(c.as_str())) && held_by(l, &ids)
                })
            })
            .then_some(())
    })
    .await;

    producer.wait_more(producer.batches(), 20).await;
    let put = producer.stop().await;
    let total = put.len() as u64;
    wait_until(WAIT, "every record is stored", || async {
        stream_count(&nodes[1], "web").await >= total
    })
    .await;

    let events = all_events(&nodes[2], "web").await;
    assert_eq!(events.len() as u64, total, "no record twice");
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    assert_order_per_shard(&events);
    assert!(
        events.iter().any(|e| children
            .iter()
            .any(|c| e["_kinesis"]["shard_id"] == c.as_str())),
        "records of the children were stored"
    );
    let view = job_view(&nodes[0], &job).await;
    assert_eq!(view["state"], "running", "{view}");

    assert_every_entry_exported(&nodes, &nodes[1], &kinesis, &put, &export).await;

    // The processor runs on a live node too, and every node answers for the whole cluster.
    let processor = wait_for(WAIT, "a live node runs the processor", || async {
        lease(&nodes[1], "processor")
            .await
            .filter(|l| held_by(l, &ids))
    })
    .await;
    assert!(ids.iter().any(|id| processor["owner"] == id.as_str()));
    // Who holds what (renewals move the expiry times between two reads).
    let holders = |c: &Value| -> Vec<(Value, Value, Value)> {
        c["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| (l["name"].clone(), l["owner"].clone(), l["token"].clone()))
            .collect()
    };
    for n in &nodes {
        let c = cluster(n).await;
        assert_eq!(c["clustered"], true);
        assert_eq!(holders(&c), holders(&cluster(&nodes[0]).await));
    }
    // One lease change on the new holder at least (import or processor moved).
    let acquired: f64 = {
        let mut sum = 0.0;
        for n in &nodes {
            sum += metric(
                n,
                "tributary_cluster_lease_changes_total",
                &[("change", "acquired")],
            )
            .await;
        }
        sum
    };
    assert!(acquired >= 1.0, "lease changes are counted");

    drop(nodes);
    db.drop_it().await;
}

#[tokio::test]
async fn a_node_stopping_cleanly_hands_its_work_over_at_once() {
    let db = Database::create().await;
    let kinesalite = Kinesalite::start().await;
    let endpoint = kinesalite.endpoint();
    let kinesis = kinesis_client(&endpoint);
    create_stream(&kinesis, "clicks", 2).await;
    // A long lease timeout: a takeover well before it proves the leases were handed back.
    let mut nodes = vec![
        node_with_timeout(&db, &endpoint, "60").await,
        node_with_timeout(&db, &endpoint, "60").await,
    ];
    let ids = vec![node_id(&nodes[0]).await, node_id(&nodes[1]).await];
    let auth = create_keys_auth(&nodes[0], "kinesalite", "AKIAKINESALITE000001", "secret").await;
    let job = create_import(&nodes[0], &auth, "clicks", "web", json!("trim_horizon")).await;
    let first = wait_for(WAIT, "the nodes hold both shards", || async {
        all_shards_held(&nodes[0], &job, 2, &ids).await
    })
    .await;
    let holder = ids
        .iter()
        .position(|id| first[0]["owner"] == id.as_str())
        .unwrap();
    let other = 1 - holder;
    assert!(nodes[holder].stop().await, "clean exit");
    let survivor = &nodes[other];
    let survivor_id = vec![ids[other].clone()];
    // Handed back, not timed out: the survivor takes them well within the lease timeout.
    let taken = wait_for(
        Duration::from_secs(20),
        "the survivor takes every shard over",
        || async { all_shards_held(survivor, &job, 2, &survivor_id).await },
    )
    .await;
    for (old, new) in first.iter().zip(&taken) {
        if old["owner"] == ids[holder].as_str() {
            assert!(
                new["token"].as_i64() > old["token"].as_i64(),
                "{old} → {new}"
            );
        }
    }
    let c = cluster(survivor).await;
    assert_eq!(
        c["nodes"].as_array().unwrap().len(),
        1,
        "the stopped node left: {c}"
    );
    let put = keyed_records_for(&kinesis).await;
    wait_until(WAIT, "records put after the move are stored", || async {
        stream_count(survivor, "web").await >= put
    })
    .await;
    drop(nodes);
    db.drop_it().await;
}

/// Puts 10 records per key for 10 keys; returns how many.
async fn keyed_records_for(kinesis: &aws_sdk_kinesis::Client) -> u64 {
    let records = crate::import::keyed_records(10, 10, 0, "after");
    put_records(kinesis, "clicks", &records).await;
    records.len() as u64
}

/// Profiles and an export beside an import of [`Producer`] records into `web`: a person (a
/// partition key) enters audience `regulars` at their third record, and the export job sends
/// each entry to the Kinesis stream `out`. Returns the export job.
async fn start_regulars_export(
    node: &TestServer,
    kinesis: &aws_sdk_kinesis::Client,
    auth: &str,
) -> Value {
    create_stream(kinesis, "out", 2).await;
    let (status, body) = node.put_mapping("web", KEY_MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node
        .post(
            "/api/audiences",
            &json!({"slug": "regulars", "name": "Regulars", "filter": "visits >= 3"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, export) = node
        .post(
            "/api/jobs",
            &json!({
                "type": "kinesis_export",
                "label": "regulars out",
                "description": "",
                "authorization": auth,
                "config": {"audiences": ["regulars"], "kinesis_stream": "out", "region": TEST_REGION,
                           "user_identifier_field": "user_key", "export_fields": ["user_key"]},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    export
}

/// Once the processor and the export caught up: every person of `put` entered `regulars` and
/// that entry reached the stream `out`; the export job still runs.
async fn assert_every_entry_exported(
    nodes: &[TestServer],
    asked: &TestServer,
    kinesis: &aws_sdk_kinesis::Client,
    put: &[(String, Vec<u8>)],
    export: &Value,
) {
    let keys: HashSet<&str> = put.iter().map(|(pk, _)| pk.as_str()).collect();
    wait_on(nodes, "every entry is exported", || async {
        let out = exported(kinesis, "out").await;
        (out.len() == keys.len() && out.iter().all(|(_, event)| event == "enter")).then_some(())
    })
    .await;
    let view = job_view(asked, &id_of(export)).await;
    assert_eq!(view["state"], "running", "{view}");
}

/// Profiles of the import tests' records, one per partition key.
const KEY_MAPPING: &str = "SELECT
    pk       AS user_key KIND string,
    count(*) AS visits   KIND int,
FROM web
INTO user BY user_key
ALIAS web";

/// Within each shard, records are stored in the shard's order: no two nodes read one shard at
/// once (a stale reader, were its writes not fenced, would store records out of order or twice).
fn assert_order_per_shard(events: &[Value]) {
    // Sequence numbers are decimals of up to 128 digits: compared by length, then digits.
    let mut last: HashMap<String, (usize, String)> = HashMap::new();
    for e in events {
        let k = &e["_kinesis"];
        let shard = k["shard_id"].as_str().expect("shard_id").to_owned();
        let seq = k["sequence_number"]
            .as_str()
            .expect("sequence_number")
            .to_owned();
        let seq = (seq.len(), seq);
        if let Some(prev) = last.insert(shard.clone(), seq.clone()) {
            assert!(seq > prev, "{shard}: {} stored after {}", seq.1, prev.1);
        }
    }
}

const MAPPING: &str = "SELECT
    email(email) AS email KIND string,
    count(*)     AS visits KIND int,
    sum(amount)  AS spent KIND number,
FROM web
INTO user BY email
ALIAS web";

#[tokio::test]
async fn mappings_audiences_and_rebuilds_asked_of_any_node_reach_the_processor() {
    let db = Database::create().await;
    let nodes = vec![
        node_with_timeout(&db, "http://127.0.0.1:9", "60").await,
        node_with_timeout(&db, "http://127.0.0.1:9", "60").await,
    ];
    let ids = vec![node_id(&nodes[0]).await, node_id(&nodes[1]).await];
    let processor = wait_on(&nodes, "a node runs the processor", || async {
        lease(&nodes[0], "processor")
            .await
            .filter(|l| held_by(l, &ids))
    })
    .await;
    // Everything is asked of the node that does not run the processor.
    let runs = ids
        .iter()
        .position(|id| processor["owner"] == id.as_str())
        .unwrap();
    let (runs, asked) = (&nodes[runs], &nodes[1 - runs]);

    let (status, body) = asked.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = asked
        .post(
            "/api/audiences",
            &json!({"slug": "buyers", "name": "Buyers", "filter": "spent >= 10"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = asked
        .post(
            "/api/collect/web",
            &json!([
                {"email": "ann@example.com", "amount": 4},
                {"email": "ann@example.com", "amount": 7},
                {"email": "bob@example.com", "amount": 1},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ann = wait_for(
        WAIT,
        "ann's profile, with her audience, on the other node",
        || async {
            let (status, body) = runs
                .get("/api/profiles?field=email&value=ann@example.com")
                .await;
            (status == StatusCode::OK && body["audiences"] == json!(["buyers"])).then_some(body)
        },
    )
    .await;
    assert_eq!(ann["fields"]["visits"], 2);

    // A rebuild asked of the node without the processor is carried out by the one with it.
    let (status, body) = asked.post("/api/profiles/rebuild", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_until(WAIT, "the rebuild is done", || async {
        let (_, status) = asked.get("/api/profiles/rebuild").await;
        status["state"] == "done" && status["processed"] == 3
    })
    .await;
    let (status, ann) = asked
        .get("/api/profiles?field=email&value=ann@example.com")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ann["fields"]["spent"].as_f64(), Some(11.0));
    assert_eq!(ann["audiences"], json!(["buyers"]));

    drop(nodes);
    db.drop_it().await;
}

const VIP_MAPPING: &str = "SELECT
    user_id AS user_id KIND string,
    tier    AS tier    KIND string,
FROM web
INTO user BY user_id
ALIAS web";

/// Distinct `(profile id, event)` of the records in Kinesis stream `stream`.
async fn exported(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> HashSet<(String, String)> {
    read_all(kinesis, stream)
        .await
        .into_iter()
        .map(|(_, _, _, data)| {
            let v: Value = serde_json::from_slice(&data).expect("a JSON record");
            (
                v["meta"]["profile_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["data"]["segment_events"][0]["event"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_export_job_moves_off_a_killed_node_and_sends_every_change() {
    let db = Database::create().await;
    let kinesalite = Kinesalite::start().await;
    let endpoint = kinesalite.endpoint();
    let kinesis = kinesis_client(&endpoint);
    create_stream(&kinesis, "out", 2).await;
    let mut nodes = vec![node(&db, &endpoint).await, node(&db, &endpoint).await];
    let mut ids = vec![node_id(&nodes[0]).await, node_id(&nodes[1]).await];

    let (status, body) = nodes[0].put_mapping("web", VIP_MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = nodes[0]
        .post(
            "/api/audiences",
            &json!({"slug": "vip", "name": "VIP", "filter": "tier = \"vip\""}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let auth = create_keys_auth(&nodes[1], "kinesalite", "AKIAKINESALITE000001", "secret").await;
    let (status, job) = nodes[1]
        .post(
            "/api/jobs",
            &json!({
                "type": "kinesis_export",
                "label": "vip out",
                "description": "",
                "authorization": auth,
                "config": {"audiences": ["vip"], "kinesis_stream": "out", "region": TEST_REGION,
                           "user_identifier_field": "user_id", "export_fields": ["user_id"]},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let lease_name = format!("export/{}", id_of(&job));
    let first = wait_on(&nodes, "a node runs the export", || async {
        lease(&nodes[0], &lease_name)
            .await
            .filter(|l| held_by(l, &ids))
    })
    .await;

    let collect = |server: &TestServer, from: usize, to: usize| {
        let events: Vec<Value> = (from..to)
            .map(|i| json!({"user_id": format!("u{i}"), "tier": "vip"}))
            .collect();
        let server_url = server.url("/api/collect/web");
        let (client, bearer) = (server.client(), server.bearer());
        async move {
            let resp = client
                .post(server_url)
                .header("Authorization", bearer)
                .json(&events)
                .send()
                .await
                .expect("collect");
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
    };
    collect(&nodes[0], 0, 200).await;
    wait_until(WAIT, "the first records are exported", || async {
        !exported(&kinesis, "out").await.is_empty()
    })
    .await;

    // Kill the node running the export; the other takes it (and the processor) over.
    let holder = ids
        .iter()
        .position(|id| first["owner"] == id.as_str())
        .unwrap();
    ids.remove(holder);
    nodes.remove(holder).kill();
    let survivor = &nodes[0];
    let second = wait_on(&nodes, "the survivor runs the export", || async {
        lease(survivor, &lease_name)
            .await
            .filter(|l| held_by(l, &ids))
    })
    .await;
    assert!(second["token"].as_i64() > first["token"].as_i64());
    collect(survivor, 200, 300).await;

    wait_until(WAIT, "every entry is exported", || async {
        let out = exported(&kinesis, "out").await;
        out.len() == 300 && out.iter().all(|(_, event)| event == "enter")
    })
    .await;
    drop(nodes);
    db.drop_it().await;
}

/// How a node loses its database in [`a_node_cut_off_from_the_database_stops_and_rejoins`].
#[derive(Clone, Copy, Debug)]
enum Partition {
    /// Connections reset.
    Cut,
    /// Connections stay open, nothing passes.
    Stall,
}

#[tokio::test]
async fn a_node_whose_database_connections_reset_stops_and_rejoins() {
    a_node_cut_off_from_the_database_stops_and_rejoins(Partition::Cut).await;
}

#[tokio::test]
async fn a_node_whose_database_link_stalls_stops_and_rejoins() {
    a_node_cut_off_from_the_database_stops_and_rejoins(Partition::Stall).await;
}

/// Two nodes, each reaching PostgreSQL through its own relay; the one reading shards loses its
/// link while records flow. The other takes its shards over once their leases expire, the cut-off
/// node notices and stops that work (its late writes are fenced out), and when the link returns it
/// takes its share back as an ordinary member. Every record is stored once, in order per key.
async fn a_node_cut_off_from_the_database_stops_and_rejoins(partition: Partition) {
    let db = Database::create().await;
    let kinesalite = Kinesalite::start().await;
    let endpoint = kinesalite.endpoint();
    let kinesis = kinesis_client(&endpoint);
    create_stream(&kinesis, "clicks", 8).await;
    let relays = [
        TcpRelay::start(&db.server_addr()).await,
        TcpRelay::start(&db.server_addr()).await,
    ];
    let mut nodes = Vec::new();
    for relay in &relays {
        nodes.push(
            TestServer::builder()
                .kinesis_endpoint(&endpoint)
                .arg("--store")
                .arg(&db.url_through(relay))
                .arg("--lease-timeout")
                .arg(LEASE_TIMEOUT)
                .start()
                .await,
        );
    }
    let ids = vec![node_id(&nodes[0]).await, node_id(&nodes[1]).await];
    let auth = create_keys_auth(&nodes[0], "kinesalite", "AKIAKINESALITE000001", "secret").await;
    let export = start_regulars_export(&nodes[1], &kinesis, &auth).await;
    let job = create_import(&nodes[0], &auth, "clicks", "web", json!("trim_horizon")).await;
    let producer = Producer::start(
        kinesis.clone(),
        "clicks",
        40,
        UNTIL_STOPPED,
        Duration::from_millis(50),
    );
    let before = settled_shards(&nodes, &job, 8, &ids).await;
    wait_until(WAIT, "events arrive", || async {
        stream_count(&nodes[0], "web").await >= 200
    })
    .await;

    // Cut off a node that reads shards; the other is asked everything from here on (the cut-off
    // node's API waits on its store).
    let victim = ids
        .iter()
        .position(|id| before.iter().any(|l| l["owner"] == id.as_str()))
        .expect("a node reading shards");
    let survivor = 1 - victim;
    let victims_shards: Vec<&Value> = before
        .iter()
        .filter(|l| l["owner"] == ids[victim].as_str())
        .collect();
    match partition {
        Partition::Cut => relays[victim].cut(),
        Partition::Stall => relays[victim].stall(),
    }
    let only_survivor = vec![ids[survivor].clone()];
    let taken = wait_on(&nodes, "the other node takes every shard over", || async {
        all_shards_held(&nodes[survivor], &job, 8, &only_survivor).await
    })
    .await;
    for old in &victims_shards {
        let new = taken.iter().find(|l| l["name"] == old["name"]).unwrap();
        assert!(
            new["token"].as_i64() > old["token"].as_i64(),
            "the cut-off node's shard changed hands: {old} → {new}"
        );
    }
    // The cut-off node saw its leases go unrenewed and stopped their work (its metrics need no
    // store).
    wait_on(&nodes, "the cut-off node gives its leases up", || async {
        let lost = metric(
            &nodes[victim],
            "tributary_cluster_lease_changes_total",
            &[("change", "lost")],
        )
        .await;
        (lost >= victims_shards.len() as f64).then_some(())
    })
    .await;
    let stored = stream_count(&nodes[survivor], "web").await;
    wait_until(WAIT, "records keep being stored meanwhile", || async {
        stream_count(&nodes[survivor], "web").await >= stored + 200
    })
    .await;

    // The link returns: the node rejoins and takes back its share, under new tokens.
    relays[victim].restore();
    let back = wait_on(&nodes, "the node takes its share back", || async {
        let leases = all_shards_held(&nodes[survivor], &job, 8, &ids).await?;
        leases
            .iter()
            .any(|l| l["owner"] == ids[victim].as_str())
            .then_some(leases)
    })
    .await;
    for lease in back.iter().filter(|l| l["owner"] == ids[victim].as_str()) {
        let old = taken.iter().find(|l| l["name"] == lease["name"]).unwrap();
        assert!(
            lease["token"].as_i64() > old["token"].as_i64(),
            "{old} → {lease}"
        );
    }
    producer.wait_more(producer.batches(), 20).await;
    let put = producer.stop().await;
    let total = put.len() as u64;
    wait_until(WAIT, "every record is stored", || async {
        stream_count(&nodes[victim], "web").await >= total
    })
    .await;
    let events = all_events(&nodes[victim], "web").await;
    assert_eq!(events.len() as u64, total, "no record twice");
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&nodes[survivor], &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_every_entry_exported(&nodes, &nodes[survivor], &kinesis, &put, &export).await;

    drop(nodes);
    db.drop_it().await;
}

#[tokio::test]
async fn two_nodes_starting_together_on_an_empty_database_migrate_once_and_both_serve() {
    let db = Database::create().await;
    let (mut first, mut second) = tokio::join!(
        node_with_timeout(&db, "http://127.0.0.1:9", "60"),
        node_with_timeout(&db, "http://127.0.0.1:9", "60"),
    );
    let (base, _) = db.url.split_once('?').unwrap_or((&db.url, ""));
    let (client, connection) = tokio_postgres::connect(base, NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM tributary_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("the migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!versions.is_empty(), "migrations ran");
    let expected: Vec<i32> = (1..=versions.len() as i32).collect();
    assert_eq!(versions, expected, "each migration ran once, in order");

    let ids = [node_id(&first).await, node_id(&second).await];
    assert_ne!(ids[0], ids[1]);
    for n in [&first, &second] {
        let c = cluster(n).await;
        let alive: HashSet<&str> = c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(alive, ids.iter().map(String::as_str).collect(), "{c}");
    }
    // Both write: an authorization made on one is listed by the other.
    let auth = create_keys_auth(&first, "shared", "AKIAKINESALITE000001", "secret").await;
    let (status, listed) = second.get("/api/authorizations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed.to_string().contains(&auth), "{listed}");
    assert!(first.stop().await && second.stop().await, "clean exits");
    db.drop_it().await;
}
