//! The Kinesis side of `bench/import.sh`, with the AWS SDK for Rust (the same SDK and HTTP stack
//! Tributary uses, so the plain drain is a fair ceiling):
//!
//!     cargo run --release --example kinesis_bench -- create  --endpoint URL --stream S --shards 4
//!     cargo run --release --example kinesis_bench -- fill    --endpoint URL --stream S --records N
//!     cargo run --release --example kinesis_bench -- drain   --endpoint URL --stream S --records N
//!     cargo run --release --example kinesis_bench -- latency --endpoint URL --stream S --api URL --token T
//!
//! One binary with subcommands rather than one example each: every example links the whole SDK
//! (~20 s of release link time apiece on 2 cores). Each subcommand prints one machine-readable
//! `RESULT <name> key=value …` line for the script, after human-readable lines.

#[path = "records.rs"]
mod records;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    /// Kinesis endpoint (kinesalite), e.g. http://127.0.0.1:4567
    #[arg(long, global = true, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    #[arg(long, global = true, default_value = "bench")]
    stream: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// CreateStream and wait until it is ACTIVE.
    Create {
        #[arg(long, default_value_t = 4)]
        shards: i32,
    },
    /// PutRecords N ~1 KiB JSON records (500 per call, several calls in flight).
    Fill {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Read every shard from TRIM_HORIZON with GetRecords (Limit 10000) until N records arrived.
    Drain {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// PutRecord single probes at a fixed spacing while polling Tributary's events API; reports
    /// how long each probe took to become readable.
    Latency {
        #[arg(long)]
        api: String,
        #[arg(long)]
        token: String,
        /// Tributary event stream the import job writes to.
        #[arg(long, default_value = "bench")]
        event_stream: String,
        #[arg(long, default_value_t = 200)]
        count: u32,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        #[arg(long, default_value_t = 10)]
        poll_ms: u64,
        /// Give up on probes not readable this long after the last put.
        #[arg(long, default_value_t = 15)]
        grace_secs: u64,
    },
}

async fn client(endpoint: &str) -> Client {
    let creds = aws_sdk_kinesis::config::Credentials::new("AKIDBENCH", "x", None, None, "bench");
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await;
    Client::new(&cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let kinesis = client(&cli.endpoint).await;
    match cli.cmd {
        Cmd::Create { shards } => create(&kinesis, &cli.stream, shards).await,
        Cmd::Fill {
            records,
            concurrency,
        } => fill(&kinesis, &cli.stream, records, concurrency).await,
        Cmd::Drain {
            records,
            timeout_secs,
        } => {
            drain(
                &kinesis,
                &cli.stream,
                records,
                Duration::from_secs(timeout_secs),
            )
            .await
        }
        Cmd::Latency {
            api,
            token,
            event_stream,
            count,
            interval_ms,
            poll_ms,
            grace_secs,
        } => {
            latency(
                &kinesis,
                &cli.stream,
                LatencyArgs {
                    api,
                    token,
                    event_stream,
                    count,
                    interval: Duration::from_millis(interval_ms),
                    poll: Duration::from_millis(poll_ms),
                    grace: Duration::from_secs(grace_secs),
                },
            )
            .await
        }
    }
}

async fn create(kinesis: &Client, stream: &str, shards: i32) -> anyhow::Result<()> {
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await?;
        if out.stream_description_summary().map(|s| s.stream_status())
            == Some(&StreamStatus::Active)
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "stream {stream} not ACTIVE after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("created stream {stream} with {shards} shards");
    println!("RESULT create shards={shards}");
    Ok(())
}

async fn fill(kinesis: &Client, stream: &str, n: u64, concurrency: usize) -> anyhow::Result<()> {
    const PER_CALL: u64 = 500;
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (kinesis, stream, next, bytes) = (
            kinesis.clone(),
            stream.to_owned(),
            next.clone(),
            bytes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(PER_CALL, Ordering::Relaxed);
                if start >= n {
                    return anyhow::Ok(());
                }
                let mut pending: Vec<PutRecordsRequestEntry> = (start..(start + PER_CALL).min(n))
                    .map(|i| {
                        let data = records::record_json(i);
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        PutRecordsRequestEntry::builder()
                            .partition_key(records::partition_key(i))
                            .data(Blob::new(data))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                // Re-put only failed entries; bounded.
                for attempt in 0..10 {
                    let out = kinesis
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(pending.clone()))
                        .send()
                        .await?;
                    if out.failed_record_count().unwrap_or(0) == 0 {
                        pending.clear();
                        break;
                    }
                    pending = out
                        .records()
                        .iter()
                        .zip(pending)
                        .filter(|(r, _)| r.error_code().is_some())
                        .map(|(_, e)| e)
                        .collect();
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
                anyhow::ensure!(
                    pending.is_empty(),
                    "{} records could not be put",
                    pending.len()
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let b = bytes.load(Ordering::Relaxed);
    println!(
        "filled {stream}: {n} records, {:.1} MiB ({:.0} B avg) in {wall:.1} s = {:.0} records/s",
        b as f64 / 1048576.0,
        b as f64 / n as f64,
        n as f64 / wall
    );
    println!(
        "RESULT fill records={n} wall_s={wall:.3} records_per_s={:.0} avg_bytes={:.0}",
        n as f64 / wall,
        b as f64 / n as f64
    );
    Ok(())
}

async fn drain(kinesis: &Client, stream: &str, n: u64, timeout: Duration) -> anyhow::Result<()> {
    let cpu0 = records::process_cpu_seconds();
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await?
        .shards
        .unwrap_or_default();
    let total = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for shard in shards {
        let (kinesis, stream, total, bytes, calls) = (
            kinesis.clone(),
            stream.to_owned(),
            total.clone(),
            bytes.clone(),
            calls.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut it = kinesis
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?
                .shard_iterator;
            while let Some(iter) = it.take() {
                if total.load(Ordering::Relaxed) >= n || Instant::now() >= deadline {
                    break;
                }
                let out = kinesis
                    .get_records()
                    .shard_iterator(iter)
                    .limit(10_000)
                    .send()
                    .await?;
                calls.fetch_add(1, Ordering::Relaxed);
                let got = out.records.len() as u64;
                // "Only decoding the SDK response": touch the bytes so nothing is optimised away.
                bytes.fetch_add(
                    out.records
                        .iter()
                        .map(|r| r.data.as_ref().len() as u64)
                        .sum(),
                    Ordering::Relaxed,
                );
                total.fetch_add(got, Ordering::Relaxed);
                it = out.next_shard_iterator;
                if got == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = records::process_cpu_seconds() - cpu0;
    let got = total.load(Ordering::Relaxed);
    anyhow::ensure!(
        got >= n,
        "drained only {got} of {n} records before the {timeout:?} timeout"
    );
    let peak = records::status_mib("VmHWM");
    let per_m = cpu / (got as f64 / 1e6);
    println!(
        "drained {stream}: {got} records ({:.1} MiB) in {wall:.2} s = {:.0} records/s with {} GetRecords calls; CPU {cpu:.2} s ({per_m:.2} s/M); peak RSS {peak:.1} MiB",
        bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        got as f64 / wall,
        calls.load(Ordering::Relaxed)
    );
    println!(
        "RESULT drain records={got} wall_s={wall:.3} records_per_s={:.0} cpu_s={cpu:.3} cpu_s_per_m={per_m:.3} peak_rss_mib={peak:.1}",
        got as f64 / wall
    );
    Ok(())
}

struct LatencyArgs {
    api: String,
    token: String,
    event_stream: String,
    count: u32,
    interval: Duration,
    poll: Duration,
    grace: Duration,
}

async fn latency(kinesis: &Client, stream: &str, a: LatencyArgs) -> anyhow::Result<()> {
    let run = format!("{:016x}", rand::random::<u64>());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!(
        "{}/api/streams/{}/events?limit=50",
        a.api.trim_end_matches('/'),
        a.event_stream
    );
    let put_at: Arc<std::sync::Mutex<HashMap<u64, Instant>>> = Default::default();
    let seen_at: Arc<std::sync::Mutex<HashMap<u64, Instant>>> = Default::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The poller: newest 50 events every `poll`; a probe counts when first seen.
    let poller = {
        let (seen_at, done, run, token) =
            (seen_at.clone(), done.clone(), run.clone(), a.token.clone());
        let (count, poll) = (a.count as usize, a.poll);
        tokio::spawn(async move {
            let mut polls = 0u64;
            while !done.load(Ordering::Relaxed) && seen_at.lock().unwrap().len() < count {
                let t = Instant::now();
                if let Ok(resp) = http.get(&url).bearer_auth(&token).send().await {
                    if let Ok(v) = resp.json::<serde_json::Value>().await {
                        let now = Instant::now();
                        let mut seen = seen_at.lock().unwrap();
                        for e in v["events"].as_array().into_iter().flatten() {
                            let f = &e["fields"];
                            if f["probe_run"].as_str() == Some(run.as_str()) {
                                if let Some(i) = f["probe"].as_u64() {
                                    seen.entry(i).or_insert(now);
                                }
                            }
                        }
                    }
                }
                polls += 1;
                tokio::time::sleep(poll.saturating_sub(t.elapsed())).await;
            }
            polls
        })
    };

    let t0 = Instant::now();
    for i in 0..a.count as u64 {
        let target = t0 + a.interval * i as u32;
        tokio::time::sleep_until(target.into()).await;
        let body = serde_json::json!({"type": "probe", "probe_run": run, "probe": i, "user_id": format!("probe-{i}")});
        let sent = Instant::now();
        kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(format!("probe-{run}-{i}"))
            .data(Blob::new(serde_json::to_vec(&body)?))
            .send()
            .await?;
        put_at.lock().unwrap().insert(i, sent);
    }
    let grace_end = Instant::now() + a.grace;
    while seen_at.lock().unwrap().len() < a.count as usize && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    let polls = poller.await?;

    let put_at = put_at.lock().unwrap();
    let seen_at = seen_at.lock().unwrap();
    let mut lat: Vec<f64> = put_at
        .iter()
        .map(|(i, p)| {
            seen_at.get(i).map_or(f64::INFINITY, |s| {
                s.saturating_duration_since(*p).as_secs_f64() * 1e3
            })
        })
        .collect();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let missing = lat.iter().filter(|x| x.is_infinite()).count();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "latency PutRecord → readable via GET /api/streams/{}/events: {} probes every {:?}, API polled every {:?} ({polls} polls): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms, min {:.0} ms, missing {missing}",
        a.event_stream, lat.len(), a.interval, a.poll, pct(0.5), pct(0.9), pct(0.99), lat[lat.len() - 1], lat[0]
    );
    println!(
        "RESULT latency probes={} p50_ms={:.0} p90_ms={:.0} p99_ms={:.0} max_ms={:.0} missing={missing}",
        lat.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat[lat.len() - 1]
    );
    Ok(())
}
