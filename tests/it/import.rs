//! The Import Activity Data job end to end: a real `tributary serve` reading Kinesis streams on
//! kinesalite (the faithful data path), moto (IAM enforcement) or kinesis-local (UpdateShardCount,
//! ListShards pages), checked only through the HTTP API: every record stored exactly once,
//! per-key order across resharding, restarts after SIGKILL and SIGTERM, decoding and dead
//! letters, start positions, pause/resume, a deleted stream, least privilege.
//! Faults injected by the proxy (throttling, 500s, expired iterators, revoked access, slowed
//! reads for kills mid-lineage) are in `import_faults.rs`, which shares the helpers here.
//!
//! Records are JSON objects `{"pk": KEY, "n": COUNTER, …}` put with partition key `KEY`, where
//! `n` counts up per key: "exactly once" is "the stored (pk, n) pairs are the put ones, with no
//! Kinesis position twice", and "order per key" is "n strictly increases in storage order".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

const IMPORT_ONLY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards"],
    "Resource":"*"}]}"#;
const NO_GET_RECORDS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:GetShardIterator","kinesis:ListShards"],"Resource":"*"}]}"#;
/// kinesalite checks no signature; the API wants a key id shaped like AWS'.
const KINESALITE_KEY_ID: &str = "AKIAKINESALITE000001";
const TRIBUTARY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["sts:AssumeRole"],"Resource":"*"}]}"#;

// ---------------------------------------------------------------------------------------------
// Helpers (shared with import_faults.rs)
// ---------------------------------------------------------------------------------------------

/// A kinesalite, an admin client on it, and a server reading Kinesis at `server_endpoint`
/// (kinesalite itself or a proxy in front of it) with one keys authorization.
pub(crate) struct Setup {
    #[allow(dead_code)] // kept alive for the test
    pub kinesalite: Kinesalite,
    pub kinesis: Client,
    pub server: TestServer,
    pub auth: String,
}

impl Setup {
    pub async fn on_kinesalite() -> Setup {
        let kinesalite = Kinesalite::start().await;
        let endpoint = kinesalite.endpoint();
        Setup::with(kinesalite, &endpoint).await
    }

    /// `server_endpoint`: where the server's Kinesis calls go.
    pub async fn with(kinesalite: Kinesalite, server_endpoint: &str) -> Setup {
        let kinesis = kinesis_client(&kinesalite.endpoint());
        let server = TestServer::start(server_endpoint).await;
        let auth = create_keys_auth(
            &server,
            "kinesalite",
            KINESALITE_KEY_ID,
            "kinesalite-secret",
        )
        .await;
        Setup {
            kinesalite,
            kinesis,
            server,
            auth,
        }
    }

    pub async fn import(&self, kinesis_stream: &str, event_stream: &str, start: Value) -> String {
        create_import(
            &self.server,
            &self.auth,
            kinesis_stream,
            event_stream,
            start,
        )
        .await
    }
}

/// Creates a running import job; returns its id.
pub(crate) async fn create_import(
    server: &TestServer,
    auth: &str,
    kinesis_stream: &str,
    event_stream: &str,
    start: Value,
) -> String {
    let body = json!({
        "type": "kinesis_import",
        "label": format!("{kinesis_stream} into {event_stream}"),
        "description": "integration test",
        "authorization": auth,
        "config": {
            "stream": event_stream,
            "region": TEST_REGION,
            "role_arn": null,
            "kinesis_stream": kinesis_stream,
            "start_position": start,
        },
    });
    let (status, job) = server.post("/api/jobs", &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create job: {job}\n{}",
        server.logs()
    );
    assert_eq!(job["state"], "running", "{job}");
    id_of(&job)
}

/// The event count of a Tributary stream from `GET /api/streams` (0 while it does not exist).
pub(crate) async fn stream_count(server: &TestServer, name: &str) -> u64 {
    let (status, body) = server.get("/api/streams").await;
    assert_eq!(status, StatusCode::OK, "GET /api/streams: {body}");
    body["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("no streams array: {body}"))
        .iter()
        .find(|s| s["name"] == name)
        .map_or(0, |s| s["events"].as_u64().expect("events count"))
}

/// Every event of a stream, paged through `before`, in storage order (oldest first).
pub(crate) async fn all_events(server: &TestServer, name: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/streams/{name}/events?limit=1000&before={b}"),
            None => format!("/api/streams/{name}/events?limit=1000"),
        };
        let (status, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {page}");
        let batch = page["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events: {page}"));
        let seqs: Vec<i64> = batch
            .iter()
            .map(|e| e["seq"].as_i64().expect("seq"))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "a page is newest first: {seqs:?}"
        );
        if let (Some(b), Some(first)) = (before, seqs.first()) {
            assert!(*first < b, "the page starts before the cursor");
        }
        events.extend(batch.iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    events.reverse();
    events
}

/// Waits until the stream holds at least `n` events.
pub(crate) async fn wait_events(server: &TestServer, job: &str, stream: &str, n: u64) {
    eventually(
        server,
        Some(job),
        &format!("{stream} holds {n} events"),
        || async { stream_count(server, stream).await >= n },
    )
    .await;
}

/// A record carrying its key and per-key counter.
pub(crate) fn record(pk: &str, n: u64, tag: &str) -> (String, Vec<u8>) {
    let body = json!({"pk": pk, "n": n, "tag": tag, "pad": "x".repeat(40)});
    (pk.to_string(), serde_json::to_vec(&body).expect("json"))
}

/// `per_key` records for each of `keys` keys (`user-0`…), interleaved across keys, counters
/// starting at `from`.
pub(crate) fn keyed_records(
    keys: usize,
    per_key: u64,
    from: u64,
    tag: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(keys * per_key as usize);
    for n in from..from + per_key {
        for k in 0..keys {
            out.push(record(&format!("user-{k}"), n, tag));
        }
    }
    out
}

/// `(pk, n)` of records made by [`record`].
pub(crate) fn key_counters(records: &[(String, Vec<u8>)]) -> Vec<(String, u64)> {
    records
        .iter()
        .map(|(pk, data)| {
            let v: Value = serde_json::from_slice(data).expect("record json");
            (pk.clone(), v["n"].as_u64().expect("n"))
        })
        .collect()
}

/// Every put record is stored exactly once: no Kinesis position (or event id) twice, and the
/// stored `(pk, n)` are exactly the put ones.
pub(crate) fn assert_exactly_once(events: &[Value], put: &[(String, u64)]) {
    let mut positions = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for e in events {
        let k = &e["_kinesis"];
        let position = (
            k["shard_id"].as_str().expect("shard_id").to_string(),
            k["sequence_number"]
                .as_str()
                .expect("sequence_number")
                .to_string(),
            k["sub_sequence_number"]
                .as_u64()
                .expect("sub_sequence_number"),
        );
        assert!(
            positions.insert(position.clone()),
            "Kinesis record stored twice: {position:?}"
        );
        assert!(
            ids.insert(e["id"].as_str().expect("id").to_string()),
            "event id twice: {e}"
        );
    }
    let mut stored: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            let pk = e["fields"]["pk"]
                .as_str()
                .unwrap_or_else(|| panic!("no pk: {e}"))
                .to_string();
            assert_eq!(
                e["_kinesis"]["partition_key"],
                pk.as_str(),
                "partition key kept: {e}"
            );
            (pk, e["fields"]["n"].as_u64().expect("n"))
        })
        .collect();
    let mut expected = put.to_vec();
    stored.sort();
    expected.sort();
    if stored != expected {
        let s: BTreeSet<_> = stored.iter().collect();
        let x: BTreeSet<_> = expected.iter().collect();
        let missing: Vec<_> = x.difference(&s).take(10).collect();
        let extra: Vec<_> = s.difference(&x).take(10).collect();
        panic!(
            "stored {} events for {} records; missing (first 10) {missing:?}; unexpected {extra:?}",
            stored.len(),
            expected.len()
        );
    }
}

/// Per partition key, the counters strictly increase in storage order.
pub(crate) fn assert_order_per_key(events: &[Value]) {
    let mut last: HashMap<String, (u64, String)> = HashMap::new();
    for e in events {
        let pk = e["fields"]["pk"].as_str().expect("pk").to_string();
        let n = e["fields"]["n"].as_u64().expect("n");
        let shard = e["_kinesis"]["shard_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some((prev, prev_shard)) = last.get(&pk) {
            assert!(
                n > *prev,
                "order broken for {pk}: {n} (from {shard}) stored after {prev} (from {prev_shard})"
            );
        }
        last.insert(pk, (n, shard));
    }
}

/// The job's shards by id.
pub(crate) fn shards_of(job: &Value) -> BTreeMap<String, Value> {
    job["status"]["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("no shards: {job}"))
        .iter()
        .map(|s| {
            (
                s["shard_id"].as_str().expect("shard_id").to_string(),
                s.clone(),
            )
        })
        .collect()
}

/// `max_batches` for a [`Producer`] that runs until [`Producer::stop`].
pub(crate) const UNTIL_STOPPED: u64 = u64::MAX;

/// A live stream: puts one record per key (`user-0`…, counters counting up per key) every
/// `pace`, up to `max_batches` batches or until stopped.
pub(crate) struct Producer {
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicU64>,
    max_batches: u64,
    handle: tokio::task::JoinHandle<Vec<(String, Vec<u8>)>>,
}

impl Producer {
    pub fn start(
        client: Client,
        stream: &'static str,
        keys: usize,
        max_batches: u64,
        pace: Duration,
    ) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(AtomicU64::new(0));
        let (stop2, batches2) = (stop.clone(), batches.clone());
        let handle = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut tick = tokio::time::interval(pace);
            let mut n = 0;
            while !stop2.load(Ordering::SeqCst) && n < max_batches {
                tick.tick().await;
                let batch = keyed_records(keys, 1, n, "flow");
                put_records(&client, stream, &batch).await;
                all.extend(batch);
                n += 1;
                batches2.store(n, Ordering::SeqCst);
            }
            all
        });
        Producer {
            stop,
            batches,
            max_batches,
            handle,
        }
    }

    /// Batches put so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }

    /// Waits until `more` batches were put after the `since`-th one (or all were).
    pub async fn wait_more(&self, since: u64, more: u64) {
        let target = (since + more).min(self.max_batches);
        wait_until(WAIT, &format!("{target} batches put"), || async {
            self.batches() >= target
        })
        .await;
    }

    /// Stops after the batch in flight; returns every record put, in order.
    pub async fn stop(self) -> Vec<(String, Vec<u8>)> {
        self.stop.store(true, Ordering::SeqCst);
        self.join().await
    }

    /// Waits for all batches; returns every record put, in order.
    pub async fn join(self) -> Vec<(String, Vec<u8>)> {
        self.handle.await.expect("producer task")
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Many records, many keys, four shards.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_record_of_four_shards_becomes_exactly_one_event_in_key_order() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 4).await;
    // Half before the job starts (a backlog), half while it runs (real time).
    let first = keyed_records(200, 25, 0, "backlog");
    let mut placed = put_records(&s.kinesis, "clicks", &first).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    let second = keyed_records(200, 25, 25, "live");
    placed.extend(put_records(&s.kinesis, "clicks", &second).await);
    let put: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(put.len(), 10_000);

    wait_events(&s.server, &job, "web", 10_000).await;
    eventually(
        &s.server,
        Some(&job),
        "the job's totals reach 10,000",
        || async {
            let v = job_view(&s.server, &job).await;
            v["status"]["events_out"] == 10_000 && v["status"]["records_in"] == 10_000
        },
    )
    .await;

    let events = all_events(&s.server, "web").await;
    assert_eq!(events.len(), 10_000);
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    // Each event is where PutRecords said its record went, with the whole origin.
    let stored_at: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            let k = &e["_kinesis"];
            assert_eq!(k["stream"], "clicks", "{e}");
            assert_eq!(k["sub_sequence_number"], 0, "{e}");
            assert!(k["approximate_arrival_timestamp"].is_string(), "{e}");
            (
                k["shard_id"].as_str().unwrap().to_string(),
                k["sequence_number"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(stored_at, placed.into_iter().collect::<BTreeSet<_>>());

    let (status, streams) = s.server.get("/api/streams").await;
    assert_eq!(status, StatusCode::OK);
    let web = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "web")
        .unwrap();
    assert_eq!(web["events"], 10_000);
    assert!(web["last_event_at"].is_string(), "{web}");

    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["status"]["dead_letters"], 0);
    let shards = shards_of(&view);
    assert_eq!(shards.len(), 4, "{view}");
    let mut per_shard_records = 0;
    for (id, shard) in &shards {
        assert_eq!(shard["state"], "reading", "{id}: {shard}");
        assert!(shard["parent_shard_id"].is_null(), "{shard}");
        let last = events
            .iter()
            .rev()
            .find(|e| e["_kinesis"]["shard_id"] == id.as_str())
            .unwrap();
        assert_eq!(
            shard["checkpoint"], last["_kinesis"]["sequence_number"],
            "checkpoint = last stored record of {id}"
        );
        per_shard_records += shard["records"].as_u64().unwrap();
    }
    assert_eq!(per_shard_records, 10_000);

    let job_label = [("job", job.as_str())];
    eventually(
        &s.server,
        Some(&job),
        "records_in metric reaches 10,000",
        || async {
            metric(&s.server, "tributary_import_records_in_total", &job_label).await == 10_000.0
        },
    )
    .await;
    assert!(metric(&s.server, "tributary_get_records_calls_total", &job_label).await >= 4.0);
}

// ---------------------------------------------------------------------------------------------
// 2. Resharding while records flow.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn split_and_merge_while_records_flow_lose_nothing_and_read_parents_first() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 3).await;
    let before = list_shards(&s.kinesis, "clicks").await;
    let ids: Vec<String> = before.iter().map(|x| x.shard_id().to_string()).collect();
    let job = s.import("clicks", "web", json!("trim_horizon")).await;

    let producer = Producer::start(
        s.kinesis.clone(),
        "clicks",
        60,
        UNTIL_STOPPED,
        Duration::from_millis(20),
    );
    wait_events(&s.server, &job, "web", 300).await;

    split_shard_in_half(&s.kinesis, "clicks", &ids[0]).await;
    producer.wait_more(producer.batches(), 10).await;
    merge_shards(&s.kinesis, "clicks", &ids[1], &ids[2]).await;
    producer.wait_more(producer.batches(), 10).await;
    let put = producer.stop().await;
    let total = put.len() as u64;

    wait_events(&s.server, &job, "web", total).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);

    let after = list_shards(&s.kinesis, "clicks").await;
    assert_eq!(
        after.len(),
        6,
        "3 shards, 2 children of the split, 1 of the merge"
    );
    let split_children: Vec<String> = after
        .iter()
        .filter(|x| x.parent_shard_id() == Some(ids[0].as_str()))
        .map(|x| x.shard_id().to_string())
        .collect();
    let merged = after
        .iter()
        .find(|x| x.adjacent_parent_shard_id().is_some())
        .expect("merged shard")
        .shard_id()
        .to_string();
    assert_eq!(split_children.len(), 2);
    // Records went to the children too, so they were read.
    for child in split_children.iter().chain([&merged]) {
        assert!(
            events
                .iter()
                .any(|e| e["_kinesis"]["shard_id"] == child.as_str()),
            "no events from {child}"
        );
    }

    eventually(
        &s.server,
        Some(&job),
        "every shard known, parents finished",
        || async {
            let shards = shards_of(&job_view(&s.server, &job).await);
            shards.len() == 6 && ids.iter().all(|p| shards[p]["state"] == "finished")
        },
    )
    .await;
    let view = job_view(&s.server, &job).await;
    let shards = shards_of(&view);
    for child in &split_children {
        assert_eq!(shards[child]["parent_shard_id"], ids[0].as_str(), "{view}");
        assert_eq!(shards[child]["state"], "reading", "{view}");
    }
    let merged_parents: BTreeSet<&str> = shards[&merged]["parent_shard_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        merged_parents,
        BTreeSet::from([ids[1].as_str(), ids[2].as_str()]),
        "{view}"
    );
    assert_eq!(view["status"]["events_out"], total);

    // A second job finds the whole lineage at once, with parents and children full of records:
    // only reading parents first keeps each key in order here.
    let replay = s.import("clicks", "replay", json!("trim_horizon")).await;
    wait_events(&s.server, &replay, "replay", total).await;
    let events = all_events(&s.server, "replay").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
}

// ---------------------------------------------------------------------------------------------
// 3. SIGKILL mid-import.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_killed_server_resumes_the_job_on_restart_and_stores_each_record_once() {
    let mut s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    // Batches of 100 every 50 ms until stopped: records keep arriving across both kills.
    let producer = Producer::start(
        s.kinesis.clone(),
        "clicks",
        100,
        UNTIL_STOPPED,
        Duration::from_millis(50),
    );

    for threshold in [800, 3000] {
        wait_events(&s.server, &job, "web", threshold).await;
        s.server.kill();
        // Records put while the server is down must be read after the restart.
        producer.wait_more(producer.batches(), 3).await;
        s.server.restart().await;
        let view = job_view(&s.server, &job).await;
        assert_eq!(
            view["state"], "running",
            "the job resumes by itself: {view}"
        );
    }

    producer.wait_more(producer.batches(), 5).await;
    let put = producer.stop().await;
    let total = put.len() as u64;
    wait_events(&s.server, &job, "web", total).await;
    eventually(
        &s.server,
        Some(&job),
        "events_out reaches the records put",
        || async { job_view(&s.server, &job).await["status"]["events_out"] == total },
    )
    .await;
    let events = all_events(&s.server, "web").await;
    assert_eq!(events.len() as u64, total);
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&s.server, &job).await;
    let records: u64 = shards_of(&view)
        .values()
        .map(|x| x["records"].as_u64().unwrap())
        .sum();
    // A batch cut off by the kill was never committed, so counters are exact too.
    assert_eq!(records, total, "per-shard record counts: {view}");
    assert_eq!(view["status"]["records_in"], total, "{view}");
}

// ---------------------------------------------------------------------------------------------
// 4. Decoding through a live job.
// ---------------------------------------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn kpl_gzip_and_cloudwatch_records_become_events_and_bad_ones_dead_letters() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "mixed", 1).await;
    let job = s.import("mixed", "web", json!("trim_horizon")).await;

    let user_records: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("kpl-{i}"),
                serde_json::to_vec(&json!({"kind": "kpl", "i": i})).unwrap(),
            )
        })
        .collect();
    let aggregated = kpl_aggregate(&user_records);
    assert_eq!(aggregated.len(), 1, "five small records make one aggregate");
    assert_eq!(aggregated[0].1[..4], KPL_MAGIC);
    let mut broken_kpl = kpl_aggregate(&[("kpl-bad", br#"{"kind":"never"}"#.as_slice())]).remove(0);
    *broken_kpl.1.last_mut().unwrap() ^= 0xff;

    let envelope = json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/app/web",
        "logStream": "i-0abc",
        "subscriptionFilters": ["to-kinesis"],
        "logEvents": [
            {"id": "e1", "timestamp": 1_700_000_000_000i64, "message": r#"{"kind":"cw","i":0}"#},
            {"id": "e2", "timestamp": 1_700_000_000_001i64, "message": "plain text line"},
        ],
    });
    let not_utf8 = vec![0xff, 0xfe, 0x00, 0x41];
    let bad_json = br#"{"kind": "broken""#.to_vec();
    let ndjson = b"{\"kind\":\"nd\",\"i\":0}\n{\"kind\":\"nd\",\"i\":1}\nnot json\n".to_vec();

    let records: Vec<(String, Vec<u8>)> = vec![
        aggregated[0].clone(),
        ("gz".into(), gzip(br#"{"kind":"gzip","ok":true}"#)),
        ("cw".into(), gzip(envelope.to_string().as_bytes())),
        ("bin".into(), not_utf8.clone()),
        ("json".into(), bad_json.clone()),
        broken_kpl.clone(),
        ("nd".into(), ndjson.clone()),
        (
            "arr".into(),
            br#"[{"kind":"arr","i":0},{"kind":"arr","i":1}]"#.to_vec(),
        ),
        ("after".into(), br#"{"kind":"after"}"#.to_vec()),
    ];
    // One call per record: they land in whatever GetRecords pages they land in.
    let mut placed = Vec::new();
    for r in &records {
        placed.extend(put_records(&s.kinesis, "mixed", std::slice::from_ref(r)).await);
    }

    wait_events(&s.server, &job, "web", 13).await;
    eventually(
        &s.server,
        Some(&job),
        "four dead letters and the checkpoint at the last record",
        || async {
            let v = job_view(&s.server, &job).await;
            v["status"]["dead_letters"] == 4
                && v["status"]["shards"][0]["checkpoint"] == placed[8].1.as_str()
        },
    )
    .await;

    let events = all_events(&s.server, "web").await;
    assert_eq!(
        events.len(),
        13,
        "5 KPL user records, 1 gzip, 2 log events, 2 NDJSON lines, 2 array items, 1 after: {events:#?}"
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["fields"]["kind"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        kinds,
        ["kpl", "kpl", "kpl", "kpl", "kpl", "gzip", "cw", "-", "nd", "nd", "arr", "arr", "after"]
    );
    for (i, e) in events[..5].iter().enumerate() {
        assert_eq!(e["fields"]["i"], i, "{e}");
        let k = &e["_kinesis"];
        assert_eq!(k["sub_sequence_number"], i, "{e}");
        assert_eq!(
            k["sequence_number"],
            placed[0].1.as_str(),
            "one Kinesis record: {e}"
        );
        assert_eq!(
            k["partition_key"],
            format!("kpl-{i}"),
            "the user record's own key: {e}"
        );
    }
    assert_eq!(events[5]["fields"]["ok"], true);
    assert_eq!(events[6]["fields"]["_cloudwatch"]["log_group"], "/app/web");
    assert_eq!(events[7]["fields"]["message"], "plain text line");
    assert_eq!(events[7]["fields"]["_cloudwatch"]["id"], "e2");
    for (e, i) in events[8..12].iter().zip([0, 1, 0, 1]) {
        assert_eq!(e["fields"]["i"], i, "{e}");
        assert_eq!(e["_kinesis"]["sub_sequence_number"], 0, "{e}");
    }
    assert_eq!(
        events[8]["_kinesis"]["sequence_number"],
        placed[6].1.as_str()
    );
    assert_eq!(
        events[10]["_kinesis"]["sequence_number"],
        placed[7].1.as_str()
    );
    assert_eq!(
        events[12]["_kinesis"]["sequence_number"],
        placed[8].1.as_str()
    );

    let (status, body) = s
        .server
        .get(&format!("/api/jobs/{job}/dead-letters?limit=10"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let letters = body["dead_letters"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(letters.len(), 4, "{body}");
    let by_seq: HashMap<&str, &Value> = letters
        .iter()
        .map(|l| (l["sequence_number"].as_str().unwrap(), l))
        .collect();
    let bad_line = b"not json".to_vec();
    for (index, raw, key, reason_has) in [
        (3, &not_utf8, "bin", "UTF-8"),
        (4, &bad_json, "json", "JSON"),
        (5, &broken_kpl.1, broken_kpl.0.as_str(), "MD5"),
        (6, &bad_line, "nd", "line 3"),
    ] {
        let letter = by_seq
            .get(placed[index].1.as_str())
            .unwrap_or_else(|| panic!("no dead letter for record {index}: {body}"));
        assert_eq!(letter["shard_id"], placed[index].0.as_str(), "{letter}");
        assert_eq!(letter["partition_key"], key, "{letter}");
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            reason.contains(reason_has),
            "record {index}: reason {reason:?} should mention {reason_has}"
        );
        let bytes = BASE64
            .decode(letter["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(&bytes, raw, "raw bytes kept for record {index}");
    }
    let view = job_view(&s.server, &job).await;
    assert_eq!(
        view["state"], "running",
        "bad records do not stop the job: {view}"
    );
    assert_eq!(
        by_seq[placed[6].1.as_str()]["position"],
        2,
        "the bad NDJSON line's index"
    );
    assert_eq!(view["status"]["records_in"], 9);
    assert_eq!(view["status"]["events_out"], 13);
}

// ---------------------------------------------------------------------------------------------
// 5. Empty stream; start at latest.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_stream_is_read_without_events_or_failure() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "quiet", 2).await;
    let job = s.import("quiet", "web", json!("trim_horizon")).await;
    let label = [("job", job.as_str())];
    let calls = || metric(&s.server, "tributary_get_records_calls_total", &label);
    // Both shards reading, each past its first calls (a shard's first answer may report it a
    // little behind, which is polled again sooner).
    eventually(
        &s.server,
        Some(&job),
        "both shards reading and polled",
        || async {
            let v = job_view(&s.server, &job).await;
            let shards = shards_of(&v);
            shards.len() == 2
                && shards.values().all(|x| x["state"] == "reading")
                && calls().await >= 4.0
        },
    )
    .await;
    // From then on idle shards are polled at most once a second each: four more calls on two
    // shards take a second at least (a slow machine only makes them take longer).
    let (since, before) = (Instant::now(), calls().await);
    eventually(&s.server, Some(&job), "four more polls", || async {
        calls().await >= before + 4.0
    })
    .await;
    let polled_for = since.elapsed();
    assert!(
        polled_for >= Duration::from_millis(900),
        "4 GetRecords calls on 2 idle shards within {polled_for:?}"
    );
    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert!(view["last_error"].is_null(), "{view}");
    assert_eq!(view["status"]["events_out"], 0);
    assert_eq!(view["status"]["records_in"], 0);
    for shard in shards_of(&view).values() {
        assert!(shard["checkpoint"].is_null(), "{shard}");
        assert_eq!(shard["records"], 0);
    }
    assert_eq!(stream_count(&s.server, "web").await, 0);
    // One lag gauge per shard, at 0 (nothing behind).
    let lags = metric_samples(&s.server, "tributary_millis_behind_latest", &label).await;
    assert_eq!(lags, [0.0, 0.0]);
}

#[tokio::test]
async fn start_at_latest_stores_only_records_put_after_the_job_started() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 1).await;
    put_records(&s.kinesis, "clicks", &keyed_records(10, 5, 0, "old")).await;
    let job = s.import("clicks", "web", json!("latest")).await;
    let label = [("job", job.as_str())];
    // The first GetRecords call means the reader holds its LATEST iterator.
    eventually(&s.server, Some(&job), "the shard is being read", || async {
        metric(&s.server, "tributary_get_records_calls_total", &label).await >= 1.0
    })
    .await;
    let new = keyed_records(10, 3, 5, "new");
    put_records(&s.kinesis, "clicks", &new).await;
    wait_events(&s.server, &job, "web", 30).await;
    // Records after those: stored too, proving the old ones are not merely slow.
    let newer = keyed_records(10, 1, 8, "newer");
    put_records(&s.kinesis, "clicks", &newer).await;
    wait_events(&s.server, &job, "web", 40).await;
    let events = all_events(&s.server, "web").await;
    let put: Vec<_> = new.iter().chain(&newer).cloned().collect();
    assert_exactly_once(&events, &key_counters(&put));
    assert!(events.iter().all(|e| e["fields"]["tag"] != "old"));
    assert_order_per_key(&events);
}

// ---------------------------------------------------------------------------------------------
// 6. The stream deleted mid-run.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deleted_stream_fails_the_job_and_keeps_its_events() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "doomed", 2).await;
    let put = keyed_records(20, 5, 0, "before");
    put_records(&s.kinesis, "doomed", &put).await;
    let job = s.import("doomed", "web", json!("trim_horizon")).await;
    wait_events(&s.server, &job, "web", 100).await;

    delete_stream(&s.kinesis, "doomed").await;
    let view = wait_state(&s.server, &job, "failed").await;
    let error = view["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_error: {view}"));
    eprintln!("last_error after the stream was deleted: {error}");
    assert!(
        error.contains("ResourceNotFound")
            || error.contains("not exist")
            || error.contains("not found"),
        "last_error should say the stream is gone: {error}"
    );
    assert!(
        error.contains("doomed") || error.contains("stream"),
        "{error}"
    );
    assert_eq!(view["status"]["state"], "failed");
    assert_eq!(view["status"]["last_error"], error);

    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_eq!(view["status"]["events_out"], 100);

    // A stream that never existed fails the job the same way, at once.
    let never = s.import("never-was", "other", json!("trim_horizon")).await;
    let view = wait_state(&s.server, &never, "failed").await;
    let error = view["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("never-was") && error.contains("not found"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Least privilege (moto with IAM enforcement).
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn import_runs_with_only_list_shards_get_shard_iterator_and_get_records() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    create_stream(&admin, "orders", 1).await;
    let put = keyed_records(10, 5, 0, "moto");
    put_records(&admin, "orders", &put).await;
    let (own_key, own_secret) = moto
        .create_user_with_policy("tributary", TRIBUTARY_POLICY)
        .await;
    let (key, secret) = moto
        .create_user_with_policy("importer", IMPORT_ONLY_POLICY)
        .await;
    let (nr_key, nr_secret) = moto
        .create_user_with_policy("no-reader", NO_GET_RECORDS_POLICY)
        .await;
    moto.enable_iam_enforcement().await;

    let server = TestServer::builder()
        .kinesis_endpoint(&moto.endpoint())
        .sts_endpoint(&moto.endpoint())
        .credentials(&own_key, &own_secret)
        .start()
        .await;
    let auth = create_keys_auth(&server, "importer", &key, &secret).await;
    let job = create_import(&server, &auth, "orders", "orders", json!("trim_horizon")).await;
    wait_events(&server, &job, "orders", 50).await;
    let events = all_events(&server, "orders").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&server, &job).await;
    assert_eq!(view["state"], "running", "{view}");

    let denied_auth = create_keys_auth(&server, "no-reader", &nr_key, &nr_secret).await;
    let denied = create_import(
        &server,
        &denied_auth,
        "orders",
        "denied",
        json!("trim_horizon"),
    )
    .await;
    let view = wait_state(&server, &denied, "failed").await;
    let error = view["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_error: {view}"));
    assert!(
        error.contains("kinesis:GetRecords"),
        "names the call: {error}"
    );
    assert!(
        error.contains("AccessDenied") || error.contains("permission"),
        "says access is denied: {error}"
    );
    assert_eq!(stream_count(&server, "denied").await, 0);
}

// ---------------------------------------------------------------------------------------------
// 9. Pause and resume; delete.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pause_and_resume_lose_and_repeat_nothing() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    // Records keep flowing before, during and after the pause.
    let producer = Producer::start(
        s.kinesis.clone(),
        "clicks",
        50,
        UNTIL_STOPPED,
        Duration::from_millis(50),
    );
    wait_events(&s.server, &job, "web", 200).await;

    let (status, paused) = s
        .server
        .post(&format!("/api/jobs/{job}/pause"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}\n{}", s.server.logs());
    assert_eq!(paused["state"], "paused", "{paused}");
    let at_pause = stream_count(&s.server, "web").await;
    let label = [("job", job.as_str())];
    let calls_at_pause = metric(&s.server, "tributary_get_records_calls_total", &label).await;

    // While paused nothing is read, however many records arrive.
    producer.wait_more(producer.batches(), 5).await;
    assert_eq!(
        stream_count(&s.server, "web").await,
        at_pause,
        "a paused job stores nothing"
    );
    assert_eq!(
        metric(&s.server, "tributary_get_records_calls_total", &label).await,
        calls_at_pause
    );
    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "paused", "{view}");
    assert_eq!(view["status"]["events_out"], at_pause, "{view}");

    let (status, resumed) = s
        .server
        .post(&format!("/api/jobs/{job}/resume"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "running", "{resumed}");
    producer.wait_more(producer.batches(), 5).await;
    let put = producer.stop().await;
    let total = put.len() as u64;
    wait_events(&s.server, &job, "web", total).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    eventually(
        &s.server,
        Some(&job),
        "events_out is every record put",
        || async { job_view(&s.server, &job).await["status"]["events_out"] == total },
    )
    .await;

    // Deleting the job stops it; its events stay.
    let (status, body) = s.server.delete(&format!("/api/jobs/{job}")).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _) = s.server.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    put_records(
        &s.kinesis,
        "clicks",
        &keyed_records(5, 1, 1_000_000, "after-delete"),
    )
    .await;
    assert_eq!(stream_count(&s.server, "web").await, total);
}

// ---------------------------------------------------------------------------------------------
// 10. Start positions across pauses and restarts.
// ---------------------------------------------------------------------------------------------

/// `latest` means "records put after the job was created": a quiet shard (no record read yet,
/// so no checkpoint) must not skip what arrives while the job is paused or the server is down.
#[tokio::test]
async fn a_latest_job_keeps_records_that_arrive_while_it_is_paused_or_down() {
    let mut s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 1).await;
    put_records(&s.kinesis, "clicks", &keyed_records(5, 2, 0, "old")).await;
    let job = s.import("clicks", "web", json!("latest")).await;
    let label = [("job", job.as_str())];
    eventually(&s.server, Some(&job), "the shard is being read", || async {
        metric(&s.server, "tributary_get_records_calls_total", &label).await >= 1.0
    })
    .await;

    let (status, paused) = s
        .server
        .post(&format!("/api/jobs/{job}/pause"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let while_paused = keyed_records(5, 2, 2, "while-paused");
    put_records(&s.kinesis, "clicks", &while_paused).await;
    let (status, resumed) = s
        .server
        .post(&format!("/api/jobs/{job}/resume"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    wait_events(&s.server, &job, "web", 10).await;

    s.server.kill();
    let while_down = keyed_records(5, 2, 4, "while-down");
    put_records(&s.kinesis, "clicks", &while_down).await;
    s.server.restart().await;
    wait_events(&s.server, &job, "web", 20).await;

    let events = all_events(&s.server, "web").await;
    let put: Vec<_> = while_paused.iter().chain(&while_down).cloned().collect();
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
}

#[tokio::test]
async fn at_timestamp_starts_at_the_first_record_from_that_instant() {
    let s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 2).await;
    put_records(&s.kinesis, "clicks", &keyed_records(10, 3, 0, "before")).await;
    // Arrival timestamps have millisecond precision: step past the last "before" record.
    let cut = chrono::Utc::now() + chrono::Duration::milliseconds(5);
    wait_until(WAIT, "the clock passes the cut", || async {
        chrono::Utc::now() > cut + chrono::Duration::milliseconds(5)
    })
    .await;
    let after = keyed_records(10, 3, 3, "after");
    put_records(&s.kinesis, "clicks", &after).await;
    let job = s
        .import(
            "clicks",
            "web",
            json!({"at_timestamp": cut.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    wait_events(&s.server, &job, "web", 30).await;
    let more = keyed_records(10, 1, 6, "later");
    put_records(&s.kinesis, "clicks", &more).await;
    wait_events(&s.server, &job, "web", 40).await;
    let events = all_events(&s.server, "web").await;
    let put: Vec<_> = after.iter().chain(&more).cloned().collect();
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
}

// ---------------------------------------------------------------------------------------------
// 11. Clean shutdown.
// ---------------------------------------------------------------------------------------------

/// A clean shutdown (SIGTERM) in the middle of an import stops at a consistent point quickly,
/// and the next start carries on from the checkpoints.
#[tokio::test]
async fn a_sigterm_mid_import_exits_cleanly_and_the_next_start_carries_on() {
    let mut s = Setup::on_kinesalite().await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    let producer = Producer::start(
        s.kinesis.clone(),
        "clicks",
        100,
        UNTIL_STOPPED,
        Duration::from_millis(50),
    );
    wait_events(&s.server, &job, "web", 500).await;
    let started = Instant::now();
    assert!(
        s.server.stop().await,
        "tributary exits with success on SIGTERM"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped in {:?}\n{}",
        started.elapsed(),
        s.server.logs()
    );
    producer.wait_more(producer.batches(), 3).await;
    s.server.restart().await;
    producer.wait_more(producer.batches(), 3).await;
    let put = producer.stop().await;
    let total = put.len() as u64;
    wait_events(&s.server, &job, "web", total).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["status"]["records_in"], total, "{view}");
}

// ---------------------------------------------------------------------------------------------
// 12. Least privilege through a role; the control plane on kinesis-local.
// ---------------------------------------------------------------------------------------------

/// The usual deployment: keys that may only assume a role, and the job's `role_arn` naming a
/// role that holds just the import policy.
#[tokio::test]
async fn import_through_a_job_level_role_with_only_the_import_policy() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    create_stream(&admin, "orders", 1).await;
    let put = keyed_records(6, 5, 0, "moto-role");
    put_records(&admin, "orders", &put).await;
    let (own_key, own_secret) = moto
        .create_user_with_policy("tributary", TRIBUTARY_POLICY)
        .await;
    let (key, secret) = moto
        .create_user_with_policy("source", TRIBUTARY_POLICY)
        .await;
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": moto.user_arn("source")},
            "Action": "sts:AssumeRole",
        }],
    })
    .to_string();
    let role = moto
        .create_role("importer-role", &trust, IMPORT_ONLY_POLICY)
        .await;
    moto.enable_iam_enforcement().await;
    let server = TestServer::builder()
        .kinesis_endpoint(&moto.endpoint())
        .sts_endpoint(&moto.endpoint())
        .credentials(&own_key, &own_secret)
        .start()
        .await;
    let auth = create_keys_auth(&server, "source", &key, &secret).await;
    let body = json!({
        "type": "kinesis_import",
        "label": "orders via role",
        "authorization": auth,
        "config": {
            "stream": "orders",
            "region": TEST_REGION,
            "role_arn": role,
            "kinesis_stream": "orders",
            "start_position": "trim_horizon",
        },
    });
    let (status, job) = server.post("/api/jobs", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = id_of(&job);
    wait_events(&server, &job, "orders", 30).await;
    let events = all_events(&server, "orders").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    assert_eq!(job_view(&server, &job).await["state"], "running");
}

/// kinesis-local (kinesis-mock) reshards the way AWS' UpdateShardCount does and answers a closed
/// shard's last GetRecords with ChildShards; its closed shards report an EndingSequenceNumber of
/// i64::MAX. The job follows the new lineage there too.
#[tokio::test]
async fn update_shard_count_on_kinesis_local_is_followed_parents_first() {
    let kl = KinesisLocal::start().await;
    let kinesis = kinesis_client(&kl.endpoint());
    create_stream(&kinesis, "scaled", 2).await;
    let server = TestServer::start(&kl.endpoint()).await;
    let auth = create_keys_auth(&server, "local", KINESALITE_KEY_ID, "local-secret").await;
    let mut put = keyed_records(30, 3, 0, "two-shards");
    put_records(&kinesis, "scaled", &put).await;
    let job = create_import(&server, &auth, "scaled", "web", json!("trim_horizon")).await;
    wait_events(&server, &job, "web", put.len() as u64).await;

    kinesis
        .update_shard_count()
        .stream_name("scaled")
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    wait_stream_active(&kinesis, "scaled").await;
    let more = keyed_records(30, 3, 3, "four-shards");
    put_records(&kinesis, "scaled", &more).await;
    put.extend(more);
    wait_events(&server, &job, "web", put.len() as u64).await;

    let events = all_events(&server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let listed = list_shards(&kinesis, "scaled").await;
    let closed: Vec<String> = listed
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some()
        })
        .map(|s| s.shard_id().to_string())
        .collect();
    assert!(
        !closed.is_empty(),
        "UpdateShardCount closed shards: {listed:?}"
    );
    eventually(
        &server,
        Some(&job),
        "the closed shards are finished",
        || async {
            let shards = shards_of(&job_view(&server, &job).await);
            shards.len() == listed.len() && closed.iter().all(|c| shards[c]["state"] == "finished")
        },
    )
    .await;
}

/// ListShards answers in pages (kinesis-local pages like AWS, 100 shards by default): a job on
/// a stream with more shards than one page holds must find them all.
#[tokio::test]
async fn every_shard_is_found_when_list_shards_pages() {
    let kl = KinesisLocal::start().await;
    let kinesis = kinesis_client(&kl.endpoint());
    create_stream(&kinesis, "wide", 105).await;
    let first_page = kinesis
        .list_shards()
        .stream_name("wide")
        .send()
        .await
        .expect("ListShards");
    assert!(
        first_page.next_token().is_some(),
        "one page does not hold 105 shards"
    );
    let server = TestServer::start(&kl.endpoint()).await;
    let auth = create_keys_auth(&server, "local", KINESALITE_KEY_ID, "local-secret").await;
    let job = create_import(&server, &auth, "wide", "web", json!("trim_horizon")).await;
    eventually(
        &server,
        Some(&job),
        "all 105 shards are known and read",
        || async {
            let v = job_view(&server, &job).await;
            let shards = shards_of(&v);
            shards.len() == 105 && shards.values().all(|s| s["state"] == "reading")
        },
    )
    .await;
    // Records on the last shards (by hash key) arrive too.
    let put = keyed_records(200, 1, 0, "wide");
    put_records(&kinesis, "wide", &put).await;
    wait_events(&server, &job, "web", 200).await;
    let events = all_events(&server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_eq!(job_view(&server, &job).await["state"], "running");
}
