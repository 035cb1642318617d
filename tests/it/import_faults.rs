//! The import job under throttling and transient faults: a [`FaultProxy`] between Tributary and
//! kinesalite answers a share of calls with ProvisionedThroughputExceededException, HTTP 500s
//! and cut connections (no emulator throttles on its own).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::import::{
    all_events, assert_exactly_once, assert_order_per_key, key_counters, keyed_records, shards_of,
    stream_count, wait_events, Setup,
};
use crate::support::*;

#[tokio::test]
async fn throttles_500s_and_cut_connections_are_retried_and_every_record_stored_once() {
    let kinesalite = Kinesalite::start().await;
    // The first calls fail for sure (so both kinds of fault happen whatever the timing), then
    // a share of all calls keeps failing.
    let plan = FaultPlan::new(11)
        .first("GetRecords", 1, Fault::Disconnect)
        .first("GetRecords", 3, Fault::InternalError)
        .first("ListShards", 1, Fault::Throttle)
        .throttle("GetRecords", 0.4)
        .internal_error("GetRecords", 0.1)
        .disconnect("GetRecords", 0.05)
        .throttle("GetShardIterator", 0.2)
        .internal_error("ListShards", 0.2);
    let proxy = FaultProxy::start(&kinesalite.endpoint(), plan).await;
    let s = Setup::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&s.kinesis, "clicks", 2).await;

    let first = keyed_records(100, 15, 0, "backlog");
    put_records(&s.kinesis, "clicks", &first).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    // The rest arrives in rounds while the job reads, so faults hit reads that carry records.
    let mut put = first.clone();
    for round in 0..5 {
        let more = keyed_records(100, 3, 15 + 3 * round, "live");
        put_records(&s.kinesis, "clicks", &more).await;
        put.extend(more);
        wait_events(&s.server, &job, "web", put.len() as u64 / 2).await;
    }

    wait_events(&s.server, &job, "web", 3000).await;
    let label = [("job", job.as_str())];
    // The SDK makes two attempts itself; the reader counts what still fails after both.
    eventually(
        &s.server,
        Some(&job),
        "the throttles counter shows backing off",
        || async { metric(&s.server, "tributary_get_records_throttles_total", &label).await > 0.0 },
    )
    .await;

    let events = all_events(&s.server, "web").await;
    assert_eq!(events.len(), 3000);
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&s.server, &job).await;
    assert_eq!(
        view["state"], "running",
        "faults are retried, not fatal: {view}"
    );
    assert!(view["last_error"].is_null(), "{view}");
    assert_eq!(view["status"]["events_out"], 3000);

    let counts = proxy.counts("GetRecords");
    eprintln!("GetRecords through the proxy: {counts:?}");
    assert!(
        counts.throttled > 0 && counts.internal_errors > 0,
        "{counts:?}"
    );
    assert!(proxy.counts("ListShards").calls > 0);
}

/// Crashes while a resharded stream is read in lineage order: the job must pick up where each
/// shard stood (parents finished, children waiting or half read) and still read parents first.
/// GetRecords is slowed down by the proxy so that the kills land in the middle of the lineage.
#[tokio::test]
async fn kills_in_the_middle_of_a_resharded_lineage_keep_parents_first_and_exactly_once() {
    let kinesalite = Kinesalite::start().await;
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(5).delay("GetRecords", 1.0, Duration::from_millis(250)),
    )
    .await;
    let mut s = Setup::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let ids: Vec<String> = list_shards(&s.kinesis, "clicks")
        .await
        .iter()
        .map(|x| x.shard_id().to_string())
        .collect();

    // shard 0 splits into A and B; B merges with shard 1 into C: C is a grandchild of shard 0.
    let mut put = keyed_records(40, 20, 0, "gen0");
    put_records(&s.kinesis, "clicks", &put).await;
    split_shard_in_half(&s.kinesis, "clicks", &ids[0]).await;
    let gen1 = keyed_records(40, 20, 20, "gen1");
    put_records(&s.kinesis, "clicks", &gen1).await;
    put.extend(gen1);
    let shards = list_shards(&s.kinesis, "clicks").await;
    let children: Vec<&aws_sdk_kinesis::types::Shard> = shards
        .iter()
        .filter(|x| x.parent_shard_id() == Some(ids[0].as_str()))
        .collect();
    assert_eq!(children.len(), 2);
    // The upper child is adjacent to shard 1.
    let upper = children
        .iter()
        .max_by_key(|x| {
            x.hash_key_range()
                .unwrap()
                .starting_hash_key()
                .parse::<u128>()
                .unwrap()
        })
        .unwrap()
        .shard_id()
        .to_string();
    merge_shards(&s.kinesis, "clicks", &upper, &ids[1]).await;
    let gen2 = keyed_records(40, 20, 40, "gen2");
    put_records(&s.kinesis, "clicks", &gen2).await;
    put.extend(gen2);
    let total = put.len() as u64;

    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    for threshold in [1, total / 3, total / 2] {
        wait_events(&s.server, &job, "web", threshold).await;
        s.server.kill();
        s.server.restart().await;
    }
    wait_events(&s.server, &job, "web", total).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    eventually(
        &s.server,
        Some(&job),
        "every shard but the open ones finished",
        || async {
            let shards = shards_of(&job_view(&s.server, &job).await);
            shards.len() == 5
                && [&ids[0], &ids[1], &upper]
                    .iter()
                    .all(|p| shards[p.as_str()]["state"] == "finished")
        },
    )
    .await;
    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["status"]["events_out"], total);
}

/// Iterators expire after five minutes on AWS (and a restarted emulator forgets them): the
/// reader takes a new one after its checkpoint, so nothing is skipped or read twice.
#[tokio::test]
async fn expired_iterators_are_renewed_from_the_checkpoint() {
    let kinesalite = Kinesalite::start().await;
    let plan = FaultPlan::new(3)
        .first(
            "GetRecords",
            2,
            Fault::Error(400, "ExpiredIteratorException"),
        )
        .error("GetRecords", 0.15, 400, "ExpiredIteratorException");
    let proxy = FaultProxy::start(&kinesalite.endpoint(), plan).await;
    let s = Setup::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let mut put = keyed_records(50, 10, 0, "backlog");
    put_records(&s.kinesis, "clicks", &put).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    for round in 0..6 {
        let more = keyed_records(50, 2, 10 + 2 * round, "live");
        put_records(&s.kinesis, "clicks", &more).await;
        put.extend(more);
        wait_events(&s.server, &job, "web", put.len() as u64 - 50).await;
    }
    let total = put.len() as u64;
    wait_events(&s.server, &job, "web", total).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
    let view = job_view(&s.server, &job).await;
    assert_eq!(view["state"], "running", "{view}");
    assert!(proxy.counts("GetRecords").errors >= 2);
}

/// Access revoked while the job runs (AWS answers 400 AccessDeniedException): the job fails
/// with a clear error and keeps what it stored; once access is back, resuming it reads on from
/// the checkpoints.
#[tokio::test]
async fn access_revoked_mid_run_fails_the_job_and_resume_reads_on_after_it_is_restored() {
    let kinesalite = Kinesalite::start().await;
    let proxy = FaultProxy::start(&kinesalite.endpoint(), FaultPlan::new(1)).await;
    let s = Setup::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&s.kinesis, "clicks", 2).await;
    let first = keyed_records(20, 10, 0, "before");
    put_records(&s.kinesis, "clicks", &first).await;
    let job = s.import("clicks", "web", json!("trim_horizon")).await;
    wait_events(&s.server, &job, "web", 200).await;

    proxy.set_plan(FaultPlan::new(1).error("*", 1.0, 400, "AccessDeniedException"));
    let second = keyed_records(20, 10, 10, "after");
    put_records(&s.kinesis, "clicks", &second).await;
    let view = wait_state(&s.server, &job, "failed").await;
    let error = view["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(error.contains("kinesis:"), "names the call: {error}");
    assert!(error.contains("policy"), "says what to do: {error}");
    assert_eq!(stream_count(&s.server, "web").await, 200);

    proxy.set_plan(FaultPlan::new(1));
    let (status, resumed) = s
        .server
        .post(&format!("/api/jobs/{job}/resume"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "running", "{resumed}");
    assert!(resumed["last_error"].is_null(), "{resumed}");
    wait_events(&s.server, &job, "web", 400).await;
    let events = all_events(&s.server, "web").await;
    let put: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&events, &key_counters(&put));
    assert_order_per_key(&events);
}

/// A `latest` job's reader whose very first iterator expires before it returned anything must
/// not take a new LATEST iterator (skipping what arrived meanwhile): it renews from the job's
/// start instead.
#[tokio::test]
async fn a_latest_readers_expired_first_iterator_is_renewed_from_the_jobs_start() {
    let kinesalite = Kinesalite::start().await;
    // The first GetRecords is held for a while and then answered "expired".
    let plan = FaultPlan::new(1)
        .first("GetRecords", 1, Fault::Delay(Duration::from_millis(1500)))
        .first(
            "GetRecords",
            1,
            Fault::Error(400, "ExpiredIteratorException"),
        );
    let proxy = FaultProxy::start(&kinesalite.endpoint(), plan).await;
    let s = Setup::with(kinesalite, &proxy.endpoint()).await;
    create_stream(&s.kinesis, "clicks", 1).await;
    put_records(&s.kinesis, "clicks", &keyed_records(5, 1, 0, "old")).await;
    let job = s.import("clicks", "web", json!("latest")).await;
    // The reader holds its LATEST iterator once its first GetRecords reached the proxy.
    eventually(
        &s.server,
        Some(&job),
        "the first GetRecords is in flight",
        || async { proxy.counts("GetRecords").calls >= 1 },
    )
    .await;
    let put = keyed_records(5, 2, 1, "new");
    put_records(&s.kinesis, "clicks", &put).await;
    wait_events(&s.server, &job, "web", 10).await;
    let events = all_events(&s.server, "web").await;
    assert_exactly_once(&events, &key_counters(&put));
    assert_eq!(proxy.counts("GetRecords").errors, 1);
}
