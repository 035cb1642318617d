//! Crash anywhere (see docs/reliability.md): the server is SIGKILLed at random moments, round
//! after round, while an import (its stream resharded halfway), the profile processor and an
//! export job are all busy. After the last restart:
//!
//! * every Kinesis record is in the event log exactly once, in order per key;
//! * every profile's `visits` (count) and `total` (sum) equal a recomputation from the stored
//!   events;
//! * the outbox equals a brute-force re-evaluation of the audiences on the recomputed profiles
//!   (one entry per member of the monotonic audience; alternating entries and exits, ending in
//!   the right state, for the other);
//! * every audience change reached the output stream at least once, in the outbox's order per
//!   profile.
//!
//! Rounds: `TRIBUTARY_KILL_ROUNDS` (default 3, `bench/reliability` runs 20); the kill moments
//! come from `TRIBUTARY_KILL_SEED` (printed, so a failing run can be repeated).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cluster::Database;
use crate::import::{
    all_events, assert_exactly_once, assert_order_per_key, create_import, key_counters,
    keyed_records,
};
use crate::support::*;

const KEY_ID: &str = "AKIAKINESALITE000001";
const USERS: usize = 100;
/// Records per user per round.
const PER_ROUND: u64 = 3;

const MAPPING: &str = "SELECT
    pk        AS user_id  KIND string,
    count(*)  AS visits   KIND int,
    sum(n)    AS total,
FROM web
INTO user BY user_id
ALIAS web";

/// Monotonic: a user enters once and never leaves.
const REGULARS: (&str, &str) = ("regulars", "visits >= 3");
/// `total` only grows, so a user may enter and later leave (or skip it within one batch).
const BAND: (&str, &str) = ("band", "total >= 6 AND total < 30");

fn rounds() -> usize {
    std::env::var("TRIBUTARY_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// xorshift64*: enough to spread kill moments, and repeatable from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_on_sqlite() {
    crash_loop(None).await;
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_on_postgres() {
    let db = Database::create().await;
    crash_loop(Some(&db.url)).await;
    db.drop_it().await;
}

async fn crash_loop(store: Option<&str>) {
    let seed = std::env::var("TRIBUTARY_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7269_6275_7461_7279);
    let mut rng = Rng(seed | 1);
    let rounds = rounds();
    eprintln!(
        "crash loop: {rounds} rounds, seed {seed}, store {}",
        store.unwrap_or("sqlite")
    );
    // Slowed calls, so that a kill finds reads, writes and sends in flight.
    let slow = FaultPlan::new(seed)
        .delay("GetRecords", 0.5, Duration::from_millis(150))
        .delay("PutRecords", 0.5, Duration::from_millis(250));
    let mut p = Pipeline::start(store, slow).await;
    for round in 0..rounds {
        p.put_round().await;
        if round == rounds / 2 {
            p.reshard().await;
        }
        let pause = Duration::from_millis(rng.next() % 1500);
        tokio::time::sleep(pause).await;
        p.server.kill();
        eprintln!("round {round}: killed after {pause:?}");
        p.server.restart().await;
    }
    // Records put after the last kill: the pipeline must also take in new work.
    p.put_round().await;
    p.proxy.set_plan(FaultPlan::new(seed));
    p.check_all().await;
    let _ = p.server.stop().await;
}

/// Recomputed from the stored events: `(visits, total)` per user.
pub(crate) type Totals = BTreeMap<String, (i64, f64)>;
/// Profiles by id: `(visits, total, user)`.
pub(crate) type Profiles = BTreeMap<String, (i64, f64, String)>;

/// Import (Kinesis `crash-in` → stream `web`), mapping, two audiences and an export job
/// (→ Kinesis `crash-out`), all through a [`FaultProxy`] in front of kinesalite.
pub(crate) struct Pipeline {
    #[allow(dead_code)] // kept alive for the test
    kinesalite: Kinesalite,
    pub proxy: FaultProxy,
    pub kinesis: Client,
    pub server: TestServer,
    pub import: String,
    pub export: String,
    put: Vec<(String, Vec<u8>)>,
    rounds_put: u64,
}

impl Pipeline {
    /// `store`: a PostgreSQL URL, or `None` for SQLite in the data dir.
    pub async fn start(store: Option<&str>, plan: FaultPlan) -> Pipeline {
        let builder = match store {
            Some(url) => TestServer::builder().store(url),
            None => TestServer::builder(),
        };
        Self::start_with(builder, plan).await
    }

    /// Like [`Pipeline::start`] with a server made from `builder` (its Kinesis endpoint set here).
    pub async fn start_with(builder: TestServerBuilder, plan: FaultPlan) -> Pipeline {
        let kinesalite = Kinesalite::start().await;
        let proxy = FaultProxy::start(&kinesalite.endpoint(), plan).await;
        let kinesis = kinesis_client(&kinesalite.endpoint());
        let server = builder.kinesis_endpoint(&proxy.endpoint()).start().await;

        create_stream(&kinesis, "crash-in", 2).await;
        create_stream(&kinesis, "crash-out", 2).await;
        let auth = create_keys_auth(&server, "kinesalite", KEY_ID, "kinesalite-secret").await;
        put_mapping(&server).await;
        for (slug, filter) in [REGULARS, BAND] {
            let (status, body) = server
                .post(
                    "/api/audiences",
                    &json!({"slug": slug, "name": slug, "description": "", "filter": filter}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (status, export) = server
            .post(
                "/api/jobs",
                &json!({"type": "kinesis_export", "label": "out", "description": "", "authorization": auth,
                        "config": {"audiences": [REGULARS.0, BAND.0], "kinesis_stream": "crash-out",
                                   "region": TEST_REGION, "user_identifier_field": "user_id",
                                   "export_fields": ["user_id"]}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{export}");
        let export = id_of(&export);
        let import = create_import(&server, &auth, "crash-in", "web", json!("trim_horizon")).await;
        Pipeline {
            kinesalite,
            proxy,
            kinesis,
            server,
            import,
            export,
            put: Vec::new(),
            rounds_put: 0,
        }
    }

    /// Puts [`PER_ROUND`] more records for each of [`USERS`] users.
    pub async fn put_round(&mut self) {
        let batch = keyed_records(USERS, PER_ROUND, self.rounds_put * PER_ROUND, "crash");
        put_records(&self.kinesis, "crash-in", &batch).await;
        self.put.extend(batch);
        self.rounds_put += 1;
    }

    /// Splits an open shard of the input stream.
    pub async fn reshard(&self) {
        let shards = list_shards(&self.kinesis, "crash-in").await;
        let open = shards
            .iter()
            .find(|s| {
                s.sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_none())
            })
            .expect("an open shard");
        split_shard_in_half(&self.kinesis, "crash-in", open.shard_id()).await;
        eprintln!("split {}", open.shard_id());
    }

    /// How many records were put so far.
    pub fn records_put(&self) -> u64 {
        self.put.len() as u64
    }

    /// End checks 1 and 2: every record put so far stored exactly once, in order per key, and
    /// profiles equal to a recomputation from the stored events. Returns the events, the
    /// recomputed `(visits, total)` per user and the profiles.
    pub async fn check_events_and_profiles(&self) -> (Vec<Value>, Totals, Profiles) {
        let server = &self.server;
        let put = &self.put;
        // 1. Every record exactly once, in order per key.
        let expected = put.len() as u64;
        eventually(
            server,
            Some(&self.import),
            "every record is stored",
            || async { crate::import::stream_count(server, "web").await >= expected },
        )
        .await;
        let events = all_events(server, "web").await;
        assert_exactly_once(&events, &key_counters(put));
        assert_order_per_key(&events);

        // 2. Profiles equal a recomputation from the stored events.
        let mut want = Totals::new();
        for e in &events {
            let pk = e["fields"]["pk"].as_str().unwrap().to_string();
            let slot = want.entry(pk).or_default();
            slot.0 += 1;
            slot.1 += e["fields"]["n"].as_f64().unwrap();
        }
        let total_visits: i64 = want.values().map(|v| v.0).sum();
        let profiles = wait_for(WAIT, "the processor has taken every event", || async {
            let p = all_profiles(server).await;
            let visits: i64 = p.values().map(|v| v.0).sum();
            (visits == total_visits).then_some(p)
        })
        .await;
        let by_user: BTreeMap<String, (i64, f64)> = profiles
            .values()
            .map(|(visits, total, user)| (user.clone(), (*visits, *total)))
            .collect();
        assert_eq!(by_user, want, "profiles differ from a recomputation");
        (events, want, profiles)
    }

    /// The end checks of the module doc, once every record put so far has been stored.
    pub async fn check_all(&self) {
        let server = &self.server;
        let (events, want, profiles) = self.check_events_and_profiles().await;
        let profile_of: HashMap<String, String> = profiles
            .iter()
            .map(|(id, (_, _, user))| (user.clone(), id.clone()))
            .collect();

        // 3. The outbox equals a brute-force re-evaluation.
        let outbox = all_changes(server).await;
        let mut per: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (_, slug, profile, kind) in &outbox {
            per.entry((slug.clone(), profile.clone()))
                .or_default()
                .push(kind.clone());
        }
        let changes_of = |slug: &str, profile: &str| {
            per.get(&(slug.to_string(), profile.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        for (user, (visits, total)) in &want {
            let profile = &profile_of[user];
            let want_regulars: Vec<String> = if *visits >= 3 {
                vec!["enter".into()]
            } else {
                vec![]
            };
            assert_eq!(
                changes_of(REGULARS.0, profile),
                want_regulars,
                "{user}: {visits} visits"
            );
            let band = changes_of(BAND.0, profile);
            for (i, kind) in band.iter().enumerate() {
                let want_kind = if i % 2 == 0 { "enter" } else { "exit" };
                assert_eq!(kind, want_kind, "{user}: band changes {band:?}");
            }
            let member = (6.0..30.0).contains(total);
            assert_eq!(
                band.len() % 2 == 1,
                member,
                "{user}: total {total}, band changes {band:?}"
            );
            if *total < 6.0 {
                assert!(band.is_empty(), "{user}: never in the band: {band:?}");
            }
        }

        // 4. Every change reached the output stream at least once, in order per profile.
        let wanted: HashSet<String> = outbox
            .iter()
            .map(|(seq, ..)| format!("change-{seq}"))
            .collect();
        let out = wait_for(WAIT, "every change is in the output stream", || async {
            let out = read_out(&self.kinesis).await;
            let got: HashSet<&str> = out.iter().map(|o| o.1.as_str()).collect();
            wanted
                .iter()
                .all(|c| got.contains(c.as_str()))
                .then_some(out)
        })
        .await;
        let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (profile, change) in &out {
            let seen = sent.entry(profile.clone()).or_default();
            if !seen.contains(change) {
                seen.push(change.clone());
            }
        }
        let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (seq, _, profile, _) in &outbox {
            queued
                .entry(profile.clone())
                .or_default()
                .push(format!("change-{seq}"));
        }
        assert_eq!(sent, queued, "per-profile order of the output stream");
        eprintln!(
            "end checks: {} records stored once, {} profiles, {} changes, {} sent ({} duplicates)",
            events.len(),
            profiles.len(),
            outbox.len(),
            out.len(),
            out.len() - outbox.len()
        );
        for job in [&self.import, &self.export] {
            let view = job_view(server, job).await;
            assert_eq!(view["state"], "running", "{view}");
        }
    }
}

async fn put_mapping(server: &TestServer) {
    let (status, body) = server.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Profile id → (visits, total, user_id), paging through `GET /api/profiles`.
async fn all_profiles(server: &TestServer) -> Profiles {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/profiles?limit=500&after={a}"),
            None => "/api/profiles?limit=500".into(),
        };
        let (status, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for p in page["profiles"].as_array().expect("profiles") {
            let f = &p["fields"];
            out.insert(
                id_of(p),
                (
                    f["visits"].as_i64().unwrap_or(0),
                    f["total"].as_f64().unwrap_or(0.0),
                    f["user_id"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

/// The whole outbox: `(seq, audience slug, profile id, kind)` in seq order.
async fn all_changes(server: &TestServer) -> Vec<(i64, String, String, String)> {
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
            ));
        }
        match body["next"].as_i64() {
            Some(n) if !page.is_empty() => after = n,
            _ => return all,
        }
    }
}

/// `(profile id, change id)` of every record in the output stream, in stream order per shard.
async fn read_out(kinesis: &Client) -> Vec<(String, String)> {
    read_all(kinesis, "crash-out")
        .await
        .into_iter()
        .map(|(_, _, _, data)| serde_json::from_slice::<Value>(&data).expect("JSON record"))
        // The job starts before any change, so it has nothing to backfill.
        .inspect(|v| assert_ne!(v["meta"]["backfill"], true, "{v}"))
        .map(|v| {
            (
                v["meta"]["profile_id"].as_str().unwrap_or_default().into(),
                v["meta"]["change_id"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}
