//! Tests of the harness itself: each peer starts, answers, and behaves as the tests rely on.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::support::*;

fn numbered(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("pk-{i}"), format!("record-{i}").into_bytes()))
        .collect()
}

/// Shard iterator at TRIM_HORIZON of the stream's first shard.
async fn first_shard_iterator(client: &aws_sdk_kinesis::Client, stream: &str) -> String {
    let shard = list_shards(client, stream).await.remove(0);
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard.shard_id())
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .expect("iterator")
        .to_string()
}

/// Listening sockets of this machine on `port` (from /proc/net/tcp{,6}): their local addresses.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if cols.len() > 3 && cols[3] == "0A" {
                if let Some((ip, p)) = cols[1].split_once(':') {
                    if u16::from_str_radix(p, 16) == Ok(port) {
                        found.push(ip.to_string());
                    }
                }
            }
        }
    }
    found
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

const LOOPBACK_HEX: &str = "0100007F";

#[tokio::test]
async fn kinesalite_round_trips_records_across_two_shards() {
    let kinesalite = Kinesalite::start().await;
    assert_eq!(
        listening_addresses(port_of(&kinesalite.endpoint())),
        vec![LOOPBACK_HEX],
        "kinesalite must listen on 127.0.0.1 only"
    );
    let client = kinesis_client(&kinesalite.endpoint());
    create_stream(&client, "orders", 2).await;

    let records = numbered(100);
    let placed = put_records(&client, "orders", &records).await;
    assert_eq!(placed.len(), 100);

    let read = read_all(&client, "orders").await;
    assert_eq!(read.len(), 100);
    let shards: BTreeSet<&str> = read.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(shards.len(), 2, "100 keys should land on both shards");
    let sent: BTreeSet<(String, Vec<u8>)> = records.into_iter().collect();
    let got: BTreeSet<(String, Vec<u8>)> = read
        .iter()
        .map(|(_, _, pk, data)| (pk.clone(), data.clone()))
        .collect();
    assert_eq!(sent, got);
    let placed: BTreeSet<(String, String)> = placed.into_iter().collect();
    let read_positions: BTreeSet<(String, String)> = read
        .iter()
        .map(|(s, q, _, _)| (s.clone(), q.clone()))
        .collect();
    assert_eq!(
        placed, read_positions,
        "read back at the positions PutRecords reported"
    );
}

#[tokio::test]
async fn kinesalite_split_and_merge_keep_every_record() {
    let kinesalite = Kinesalite::start().await;
    let client = kinesis_client(&kinesalite.endpoint());
    create_stream(&client, "s", 1).await;
    put_records(&client, "s", &numbered(10)).await;

    let parent = list_shards(&client, "s").await[0].shard_id().to_string();
    split_shard_in_half(&client, "s", &parent).await;
    let shards = list_shards(&client, "s").await;
    assert_eq!(shards.len(), 3);
    let children: Vec<String> = shards
        .iter()
        .filter(|s| s.parent_shard_id() == Some(parent.as_str()))
        .map(|s| s.shard_id().to_string())
        .collect();
    assert_eq!(children.len(), 2);

    put_records(&client, "s", &numbered(20)[10..]).await;
    merge_shards(&client, "s", &children[0], &children[1]).await;
    assert_eq!(list_shards(&client, "s").await.len(), 4);

    let read = read_all(&client, "s").await;
    assert_eq!(read.len(), 20);
    assert!(
        read[..10].iter().all(|r| r.0 == parent),
        "parent first, in order"
    );
}

#[tokio::test]
async fn peer_is_gone_after_drop() {
    let kinesalite = Kinesalite::start().await;
    let port = port_of(&kinesalite.endpoint());
    drop(kinesalite);
    assert!(
        listening_addresses(port).is_empty(),
        "nothing listens on {port} after drop"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn peers_are_gone_after_a_panicking_test() {
    let ports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = ports.clone();
    let test = tokio::spawn(async move {
        let kinesalite = Kinesalite::start().await;
        let moto = Moto::start().await;
        seen.lock()
            .unwrap()
            .extend([port_of(&kinesalite.endpoint()), port_of(&moto.endpoint())]);
        panic!("a failing test");
    });
    assert!(test.await.unwrap_err().is_panic());
    for port in ports.lock().unwrap().iter() {
        assert!(
            listening_addresses(*port).is_empty(),
            "peer on {port} outlived the panic"
        );
    }
}

#[tokio::test]
async fn kinesis_local_pages_list_shards_on_loopback() {
    let kl = KinesisLocal::start().await;
    assert_eq!(
        listening_addresses(port_of(&kl.endpoint())),
        vec![LOOPBACK_HEX],
        "kinesis-local must listen on 127.0.0.1 only"
    );
    let client = kinesis_client(&kl.endpoint());
    create_stream(&client, "control", 3).await;
    let page = client
        .list_shards()
        .stream_name("control")
        .max_results(2)
        .send()
        .await
        .expect("ListShards");
    assert_eq!(page.shards().len(), 2);
    assert!(
        page.next_token().is_some(),
        "kinesis-local pages ListShards"
    );
    assert_eq!(list_shards(&client, "control").await.len(), 3);
}

#[tokio::test]
async fn moto_enforces_iam_policies() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    create_stream(&admin, "audit", 1).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["kinesis:ListStreams","kinesis:DescribeStreamSummary","sts:GetCallerIdentity"],
        "Resource":"*"}]}"#;
    let (key, secret) = moto.create_user_with_policy("reader", policy).await;
    moto.enable_iam_enforcement().await;

    let sts = sts_client_as(&moto.endpoint(), &key, &secret);
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity allowed");
    assert_eq!(me.arn(), Some(moto.user_arn("reader").as_str()));

    let kinesis = kinesis_client_as(&moto.endpoint(), &key, &secret);
    let streams = kinesis
        .list_streams()
        .send()
        .await
        .expect("ListStreams allowed");
    assert_eq!(streams.stream_names(), ["audit"]);

    let denied = kinesis
        .put_record()
        .stream_name("audit")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("PutRecord must be denied");
    let raw = denied.raw_response().expect("HTTP response");
    assert_eq!(raw.status().as_u16(), 403);
    let body = std::str::from_utf8(raw.body().bytes().unwrap_or_default()).unwrap_or_default();
    assert!(body.contains("AccessDenied"), "{body}");
    assert!(body.contains("kinesis:PutRecord"), "{body}");

    let unknown = kinesis_client_as(&moto.endpoint(), "AKIDNOBODY", "nope");
    let err = unknown
        .list_streams()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}

#[tokio::test]
async fn moto_roles_can_be_assumed() {
    let moto = Moto::start().await;
    let user_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["sts:AssumeRole"],"Resource":"*"}]}"#;
    let (key, secret) = moto.create_user_with_policy("app", user_policy).await;
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},
        "Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"ext-1"}}}}}}]}}"#,
        moto.user_arn("app")
    );
    let permissions = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["kinesis:ListStreams"],"Resource":"*"}]}"#;
    let role_arn = moto.create_role("reader-role", &trust, permissions).await;
    assert_eq!(
        role_arn,
        format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/reader-role")
    );
    moto.enable_iam_enforcement().await;

    let sts = sts_client_as(&moto.endpoint(), &key, &secret);
    let wrong = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("t")
        .external_id("wrong")
        .send()
        .await;
    assert!(wrong.is_err(), "a wrong ExternalId is refused");
    let creds = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("t")
        .external_id("ext-1")
        .send()
        .await
        .expect("AssumeRole")
        .credentials()
        .cloned()
        .expect("credentials");
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new(TEST_REGION))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "assumed",
        ))
        .endpoint_url(moto.endpoint())
        .build();
    let kinesis = aws_sdk_kinesis::Client::from_conf(config);
    kinesis
        .list_streams()
        .send()
        .await
        .expect("role may ListStreams");

    moto.reset().await;
    // After reset enforcement is off and the role is gone.
    let anyone = kinesis_client(&moto.endpoint());
    anyone
        .list_streams()
        .send()
        .await
        .expect("no enforcement after reset");
}

#[tokio::test]
async fn fault_proxy_throttles_a_share_of_get_records() {
    let kinesalite = Kinesalite::start().await;
    create_stream(&kinesis_client(&kinesalite.endpoint()), "t", 1).await;
    put_records(&kinesis_client(&kinesalite.endpoint()), "t", &numbered(5)).await;
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(42).throttle("GetRecords", 0.5),
    )
    .await;
    let client = kinesis_client_no_retry(&proxy.endpoint());
    let mut iterator = first_shard_iterator(&client, "t").await;

    let (mut ok, mut throttled, mut records) = (0, 0, 0);
    for _ in 0..40 {
        match client.get_records().shard_iterator(&iterator).send().await {
            Ok(out) => {
                ok += 1;
                records += out.records().len();
                iterator = out.next_shard_iterator().expect("open shard").to_string();
            }
            Err(e) => {
                let e = e.into_service_error();
                assert!(
                    matches!(
                        e,
                        GetRecordsError::ProvisionedThroughputExceededException(_)
                    ),
                    "unexpected error {e:?}"
                );
                assert!(e
                    .message()
                    .unwrap_or_default()
                    .starts_with("Rate exceeded for shard"));
                throttled += 1;
            }
        }
    }
    let counts = proxy.counts("GetRecords");
    assert_eq!(counts.calls, 40);
    assert_eq!(counts.throttled, throttled);
    assert!(
        (5..=35).contains(&throttled),
        "about half throttled, got {throttled}"
    );
    assert_eq!(ok + throttled, 40);
    assert_eq!(records, 5, "every record once, through the faults");
    assert_eq!(proxy.counts("GetShardIterator").throttled, 0);

    // Same seed, same calls: same faults.
    let again = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(42).throttle("GetRecords", 0.5),
    )
    .await;
    let client = kinesis_client_no_retry(&again.endpoint());
    let iterator = first_shard_iterator(&client, "t").await;
    let mut again_throttled = 0;
    let mut it = iterator;
    for _ in 0..40 {
        match client.get_records().shard_iterator(&it).send().await {
            Ok(out) => it = out.next_shard_iterator().unwrap().to_string(),
            Err(_) => again_throttled += 1,
        }
    }
    assert_eq!(again_throttled, throttled);
}

#[tokio::test]
async fn fault_proxy_first_calls_and_internal_errors() {
    let kinesalite = Kinesalite::start().await;
    create_stream(&kinesis_client(&kinesalite.endpoint()), "e", 1).await;
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(1).first("ListShards", 2, Fault::InternalError),
    )
    .await;
    let client = kinesis_client_no_retry(&proxy.endpoint());
    for _ in 0..2 {
        let err = client
            .list_shards()
            .stream_name("e")
            .send()
            .await
            .expect_err("injected 500");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    }
    client
        .list_shards()
        .stream_name("e")
        .send()
        .await
        .expect("third call passes");
    assert_eq!(proxy.counts("ListShards").internal_errors, 2);

    // The SDK's own retries ride over a single 500.
    proxy.set_plan(FaultPlan::new(1).first("ListShards", 4, Fault::InternalError));
    let retrying = kinesis_client(&proxy.endpoint());
    retrying
        .list_shards()
        .stream_name("e")
        .send()
        .await
        .expect("SDK retries past the 4th call's fault");
    assert_eq!(proxy.counts("ListShards").internal_errors, 3);
}

#[tokio::test]
async fn fault_proxy_cuts_connections() {
    let kinesalite = Kinesalite::start().await;
    create_stream(&kinesis_client(&kinesalite.endpoint()), "d", 1).await;
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(3).first("ListShards", 1, Fault::Disconnect),
    )
    .await;
    let client = kinesis_client_no_retry(&proxy.endpoint());
    let err = client
        .list_shards()
        .stream_name("d")
        .send()
        .await
        .expect_err("cut connection");
    assert!(
        matches!(
            err,
            aws_sdk_kinesis::error::SdkError::ResponseError(_)
                | aws_sdk_kinesis::error::SdkError::DispatchFailure(_)
        ),
        "{err:?}"
    );
    assert_eq!(proxy.counts("ListShards").disconnects, 1);
    // The SDK's default retries get past it.
    proxy.set_plan(FaultPlan::new(3).first("ListShards", 2, Fault::Disconnect));
    kinesis_client(&proxy.endpoint())
        .list_shards()
        .stream_name("d")
        .send()
        .await
        .expect("retried past the cut");
}

#[tokio::test]
async fn fault_proxy_fails_chosen_put_records_entries() {
    let kinesalite = Kinesalite::start().await;
    let direct = kinesis_client(&kinesalite.endpoint());
    create_stream(&direct, "p", 2).await;
    let proxy = FaultProxy::start(
        &kinesalite.endpoint(),
        FaultPlan::new(9).fail_put_records_entries(0.3),
    )
    .await;
    let client = kinesis_client_no_retry(&proxy.endpoint());
    let records = numbered(50);
    let entries: Vec<PutRecordsRequestEntry> = records
        .iter()
        .map(|(pk, data)| {
            PutRecordsRequestEntry::builder()
                .partition_key(pk)
                .data(Blob::new(data.clone()))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_records()
        .stream_name("p")
        .set_records(Some(entries))
        .send()
        .await
        .expect("PutRecords answers 200 with partial failures");
    let failed: Vec<usize> = out
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code().is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(out.records().len(), 50);
    assert!(!failed.is_empty() && failed.len() < 50, "{failed:?}");
    assert_eq!(out.failed_record_count(), Some(failed.len() as i32));
    assert_eq!(
        proxy.counts("PutRecords").failed_entries,
        failed.len() as u64
    );
    for &i in &failed {
        let r = &out.records()[i];
        assert_eq!(
            r.error_code(),
            Some("ProvisionedThroughputExceededException")
        );
        assert!(r
            .error_message()
            .unwrap()
            .starts_with("Rate exceeded for shard"));
        assert!(r.sequence_number().is_none() && r.shard_id().is_none());
    }
    // Failed entries were not written; the others were, at the positions reported.
    let read = read_all(&direct, "p").await;
    assert_eq!(read.len(), 50 - failed.len());
    let written: BTreeSet<String> = read.iter().map(|r| r.2.clone()).collect();
    for (i, (pk, _)) in records.iter().enumerate() {
        assert_eq!(written.contains(pk), !failed.contains(&i), "{pk}");
        if !failed.contains(&i) {
            let seq = out.records()[i].sequence_number().expect("sequence number");
            assert!(read.iter().any(|r| &r.2 == pk && r.1 == seq));
        }
    }
}

#[tokio::test]
async fn kpl_aggregation_makes_aggregated_records() {
    let user_records = numbered(3);
    let aggregated = kpl_aggregate(&user_records);
    assert_eq!(aggregated.len(), 1);
    let (pk, bytes) = &aggregated[0];
    assert_eq!(pk, "pk-0");
    assert_eq!(bytes[..4], KPL_MAGIC);
    for (_, data) in &user_records {
        assert!(bytes.windows(data.len()).any(|w| w == data.as_slice()));
    }
}

#[tokio::test]
async fn wait_until_returns_once_the_condition_holds() {
    let start = std::time::Instant::now();
    let mut polls = 0;
    wait_until(Duration::from_secs(5), "three polls", || {
        polls += 1;
        let done = polls >= 3;
        async move { done }
    })
    .await;
    assert_eq!(polls, 3);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
#[should_panic(expected = "timed out")]
async fn wait_until_panics_at_the_deadline() {
    wait_until(Duration::from_millis(50), "never", || async { false }).await;
}

#[tokio::test]
async fn test_server_starts_restarts_and_stops() {
    let kinesalite = Kinesalite::start().await;
    let mut server = TestServer::start(&kinesalite.endpoint()).await;
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200, "{}", server.logs());

    let (status, list) = server.get("/api/authorizations").await;
    assert_eq!(status, 200, "{list}\n{}", server.logs());
    let anonymous = server
        .client()
        .get(server.url("/api/authorizations"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401, "the API wants the bearer token");

    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    assert!(!server.is_running());
    server.restart().await;
    assert_eq!(server.data_dir(), data_dir);
    assert_eq!(server.get("/healthz").await.0, 200);
    assert!(
        server.stop().await,
        "clean exit on SIGTERM\n{}",
        server.logs()
    );
}
