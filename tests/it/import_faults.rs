//! The import job under throttling and transient faults: a [`FaultProxy`] between Tributary and
//! kinesalite answers a share of calls with ProvisionedThroughputExceededException, HTTP 500s
//! and cut connections (no emulator throttles on its own).

use serde_json::json;

use crate::import::{
    all_events, assert_exactly_once, assert_order_per_key, eventually, job_view, key_counters,
    keyed_records, metric, wait_events, Setup,
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
