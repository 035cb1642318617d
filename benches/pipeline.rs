//! The import pipeline without the network: GetRecords pages as the consumer receives them,
//! fed through `decode_page` → `SqliteStore::commit_shard_batch` (events, counters and the
//! shard checkpoint in one transaction) into a SQLite store in a temp dir.
//!
//!     cargo bench --bench pipeline
//!     BENCH_RECORDS=500000 BENCH_BATCH=10000 BENCH_SHARDS=4 cargo bench --bench pipeline
//!
//! It mirrors the shard reader (`src/kinesis/consumer/reader.rs`): one task per shard, the page
//! decoded on tokio's blocking pool, then committed; the shards run concurrently on a
//! multi-threaded runtime, as in `tributary serve`.
//!
//! The pages are "recorded": 10,000 distinct ~1 KiB JSON payloads are generated before the clock
//! starts, and each page is assembled from them (a memcpy per record plus a 56-digit sequence
//! number, partition key and arrival time) right before it is decoded, so memory stays that of
//! the pipeline rather than of N KiB of input held at once. Assembling is timed separately and
//! reported; it is about 1–2 % of the CPU.
//!
//! Prints records/s, CPU seconds per million records (getrusage, all threads), a CPU breakdown,
//! peak RSS (VmHWM, reset after setup) and a `RESULT pipeline …` line for `bench/import.sh`.
//!
//! `BENCH_STORE=postgres://USER@HOST/DB` runs the same against PostgreSQL (an empty database)
//! instead, and also reports the CPU the server's processes used meanwhile (read from
//! `/proc`, so the server must run on this machine).

#[path = "../bench/records.rs"]
mod records;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tributary::kinesis::api::KinesisRecord;
use tributary::kinesis::consumer::batch::{decode_page, Origin};
use tributary::store::sqlite::SqliteStore;
use tributary::store::{
    Authorization, Credentials, DynStore, Job, JobState, JobTotals, JobType, ShardBatch,
    ShardCheckpoint, ShardState, StartPosition,
};

const JOB_ID: &str = "bench-job";
const EVENT_STREAM: &str = "bench";
const KINESIS_STREAM: &str = "bench-kinesis";
const POOL: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn shard_id(shard: usize) -> String {
    format!("shardId-{shard:012}")
}

/// Builds one page of `count` records of `shard`, starting at the shard's record `first`.
fn build_page(pool: &[Vec<u8>], shard: usize, first: u64, count: usize) -> Vec<KinesisRecord> {
    let arrival = Some(Utc::now());
    (0..count as u64)
        .map(|k| {
            let n = first + k;
            let global = n * 4 + shard as u64;
            KinesisRecord {
                // 56 digits, like Kinesis and kinesalite.
                sequence_number: format!("49{shard:02}{n:052}"),
                partition_key: records::partition_key(global),
                data: pool[(global % pool.len() as u64) as usize].clone(),
                approximate_arrival_timestamp: arrival,
            }
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct ShardStats {
    records: u64,
    build_cpu: f64,
    decode_cpu: f64,
    commit_wall: Duration,
    pages: u64,
}

async fn run_shard(
    store: DynStore,
    pool: Arc<Vec<Vec<u8>>>,
    shard: usize,
    total: u64,
    batch: usize,
) -> ShardStats {
    let mut stats = ShardStats::default();
    let sid = shard_id(shard);
    let mut first = 0u64;
    while first < total {
        let count = batch.min((total - first) as usize);
        let (pool2, sid2) = (pool.clone(), sid.clone());
        let (page, build_cpu, decode_cpu) = tokio::task::spawn_blocking(move || {
            let t0 = records::thread_cpu_seconds();
            let recs = build_page(&pool2, shard, first, count);
            let t1 = records::thread_cpu_seconds();
            let origin = Origin {
                event_stream: EVENT_STREAM,
                kinesis_stream: KINESIS_STREAM,
                shard_id: &sid2,
            };
            let page = decode_page(&origin, &recs);
            drop(recs);
            let t2 = records::thread_cpu_seconds();
            (page, t1 - t0, t2 - t1)
        })
        .await
        .expect("decode task");
        assert!(
            page.dead_letters.is_empty(),
            "bench records must decode: {:?}",
            page.dead_letters.first()
        );
        assert_eq!(page.events.len(), count);
        let batch_rec = ShardBatch {
            job_id: JOB_ID.into(),
            stream: EVENT_STREAM.into(),
            events: page.events,
            dead_letters: page.dead_letters,
            records_in: count as u64,
            suppressed: 0,
            checkpoint: ShardCheckpoint {
                shard_id: sid.clone(),
                parent_shard_ids: vec![],
                state: ShardState::Reading,
                start_position: StartPosition::TrimHorizon,
                sequence_number: page.last_sequence_number,
                sub_sequence_number: page.last_sub_sequence_number,
                records: 0,
                millis_behind_latest: Some(0),
            },
            fence: None,
        };
        let t = Instant::now();
        // As the reader does (commit_with_retry keeps the batch for a retry): the events are
        // freed here, on the shard's task, after the commit, not under the writer lock.
        let batch_rec = Arc::new(batch_rec);
        let outcome = store
            .commit_shard_batch(batch_rec.clone())
            .await
            .expect("commit");
        stats.commit_wall += t.elapsed();
        drop(batch_rec);
        assert_eq!(outcome.events_inserted, count as u64, "every event is new");
        stats.records += count as u64;
        stats.build_cpu += build_cpu;
        stats.decode_cpu += decode_cpu;
        stats.pages += 1;
        first += count as u64;
    }
    stats
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument means "not us" only for other harnesses.
    let n = env_usize("BENCH_RECORDS", 200_000) as u64;
    let batch = env_usize("BENCH_BATCH", 10_000).clamp(1, 10_000);
    let shards = env_usize("BENCH_SHARDS", 4).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let dir = tempfile::Builder::new().prefix("tributary-pipeline-bench-").tempdir().expect("temp dir");
        let store_url = std::env::var("BENCH_STORE").ok();
        let store: DynStore = match &store_url {
            Some(url) => tributary::store::open(url).await.expect("open BENCH_STORE"),
            None => Arc::new(
                SqliteStore::open(&dir.path().join("tributary.db"))
                    .await
                    .expect("open store"),
            ),
        };
        let backend = if store_url.is_some() { "PostgreSQL" } else { "SQLite" };
        let now = Utc::now();
        store
            .insert_authorization(Authorization {
                id: "bench-auth".into(),
                label: "bench".into(),
                description: String::new(),
                credentials: Credentials::AwsKeys {
                    access_key_id: "AKIDBENCH".into(),
                    sealed_secret_access_key: vec![0; 60],
                },
                created_at: now,
            })
            .await
            .expect("authorization");
        store
            .insert_job(Job {
                id: JOB_ID.into(),
                job_type: JobType::KinesisImport,
                label: "bench".into(),
                description: String::new(),
                authorization_id: "bench-auth".into(),
                config: serde_json::json!({"stream": EVENT_STREAM, "region": "us-east-1", "kinesis_stream": KINESIS_STREAM, "start_position": "trim_horizon"}),
                state: JobState::Running,
                last_error: None,
                totals: JobTotals::default(),
                created_at: now,
                updated_at: now,
            })
            .await
            .expect("job");
        let checkpoints: Vec<ShardCheckpoint> = (0..shards)
            .map(|s| {
                ShardCheckpoint::unread(
                    shard_id(s),
                    vec![],
                    ShardState::Reading,
                    StartPosition::TrimHorizon,
                )
            })
            .collect();
        store.register_shards(JOB_ID, &checkpoints).await.expect("shards");

        let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..POOL as u64).map(records::record_json).collect());
        let avg_len = pool.iter().map(Vec::len).sum::<usize>() as f64 / pool.len() as f64;
        // Sanity: the payload is what the product would accept.
        serde_json::from_slice::<serde_json::Value>(&pool[0]).expect("valid JSON");

        // How much memory one decoded page holds while it waits for the writer (measured on this
        // thread, before the run; RSS delta, so allocator overhead included).
        let page_probe = {
            let rss0 = records::status_mib("VmRSS");
            let recs = build_page(&pool, 0, u64::MAX / 8, batch);
            let rss1 = records::status_mib("VmRSS");
            let sid = shard_id(0);
            let origin = Origin { event_stream: EVENT_STREAM, kinesis_stream: KINESIS_STREAM, shard_id: &sid };
            let page = decode_page(&origin, &recs);
            let rss2 = records::status_mib("VmRSS");
            let n_events = page.events.len();
            drop(page);
            drop(recs);
            (rss1 - rss0, rss2 - rss1, n_events)
        };

        let peak_reset = records::reset_peak_rss();
        let rss_before = records::status_mib("VmRSS");
        let cpu0 = records::process_cpu_seconds();
        let server_cpu0 = records::postgres_cpu_seconds();
        let database = store_url.as_deref().map_or("", records::postgres_database);
        let split0 = records::postgres_cpu_split(database);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..shards {
            // Spread N over the shards; the first shards take the remainder.
            let per = n / shards as u64 + u64::from((s as u64) < n % shards as u64);
            tasks.push(tokio::spawn(run_shard(store.clone(), pool.clone(), s, per, batch)));
        }
        let mut total = ShardStats::default();
        for t in tasks {
            let s = t.await.expect("shard task");
            total.records += s.records;
            total.build_cpu += s.build_cpu;
            total.decode_cpu += s.decode_cpu;
            total.commit_wall += s.commit_wall;
            total.pages += s.pages;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = records::process_cpu_seconds() - cpu0;
        let server_cpu = records::postgres_cpu_seconds() - server_cpu0;
        let split = records::postgres_cpu_split(database);
        let (ours, own) = (split.0 - split0.0, split.1 - split0.1);
        let peak = records::status_mib("VmHWM");

        let job = store.get_job(JOB_ID).await.expect("job");
        assert_eq!(job.totals.events_out, n, "every record stored exactly once");
        let db_mib = std::fs::read_dir(dir.path())
            .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum::<u64>())
            .unwrap_or(0) as f64
            / (1024.0 * 1024.0);

        let rate = total.records as f64 / wall;
        let per_m = cpu / (total.records as f64 / 1e6);
        let scale = 1e6 / total.records as f64;
        let rest = cpu - total.build_cpu - total.decode_cpu;
        println!(
            "pipeline: {} records of {:.0} B JSON, {} pages of ≤{} on {} shards → decode_page → commit_shard_batch on {backend} ({} cores)",
            total.records, avg_len, total.pages, batch, shards, cores
        );
        println!("  wall               {wall:>9.2} s");
        println!(
            "  throughput         {rate:>9.0} records/s   (target ≥ 50,000: {})",
            if rate >= 50_000.0 { "met" } else { "MISSED" }
        );
        println!("  CPU                {cpu:>9.2} s  = {per_m:.2} CPU s per million records (getrusage, all threads)");
        println!(
            "    assembling pages {:>9.2} s/M  (bench harness, not product)",
            total.build_cpu * scale
        );
        println!("    decode_page      {:>9.2} s/M", total.decode_cpu * scale);
        println!("    commit + rest    {:>9.2} s/M  (SQLite transaction incl. JSON re-serialisation, runtime, frees)", rest * scale);
        println!(
            "  commit wall        {:>9.2} s summed over shards ({:.1} ms per page)",
            total.commit_wall.as_secs_f64(),
            total.commit_wall.as_secs_f64() * 1e3 / total.pages as f64
        );
        println!(
            "  peak RSS           {peak:>9.1} MiB (VmHWM{}; RSS before the run {rss_before:.1} MiB incl. the 10,000-payload pool)",
            if peak_reset { ", reset after setup" } else { "" }
        );
        println!(
            "  one page in memory {:>9.1} MiB raw records + {:.1} MiB decoded ({} events, {:.1} KiB per decoded event; {} shards hold up to {} pages at once)",
            page_probe.0,
            page_probe.1,
            page_probe.2,
            page_probe.1 * 1024.0 / page_probe.2.max(1) as f64,
            shards,
            shards
        );
        if store_url.is_some() {
            println!(
                "  PostgreSQL server  {server_cpu:>9.2} s CPU = {:.2} s per million records (its processes, from /proc)",
                server_cpu / (total.records as f64 / 1e6)
            );
            println!(
                "    of which {database}'s connections {:.2} s/M, the server's own processes (WAL writer, checkpointer, autovacuum; shared) {:.2} s/M",
                ours * scale,
                own * scale
            );
        } else {
            println!("  database           {db_mib:>9.1} MiB on disk");
        }
        println!(
            "RESULT pipeline records={} wall_s={wall:.3} records_per_s={rate:.0} cpu_s={cpu:.3} cpu_s_per_m={per_m:.3} peak_rss_mib={peak:.1}",
            total.records
        );
        drop(store);
        drop(dir);
    });
}
