//! Faults on the wire and in storage, under the whole pipeline of `crash.rs` (import, processor,
//! export), with the same end checks (see docs/reliability.md).
//!
//! * Wire: Kinesis throttling, delays, failed PutRecords entries, HTTP 500s, connections cut,
//!   and an outage where every call's connection is cut (what Tributary sees while the emulator
//!   restarts), all injected by the [`FaultProxy`].
//! * Storage (root only: they mount a tmpfs as the data dir): the disk fills up under an
//!   import; the file system is read-only at start.
//! * Storage on PostgreSQL: the database refuses writes (read-only, as when its disk is full)
//!   under the whole pipeline.
//! * SQLite's `-wal` files deleted while the server is stopped: after a clean stop (nothing is
//!   in them), and after SIGKILLs (the two store files may then disagree; the start mends it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::crash::Pipeline;
use crate::support::*;

const ALL: &str = "*";

#[tokio::test]
async fn throttles_outages_resets_and_500s_on_the_wire_lose_nothing() {
    let mut p = Pipeline::start(None, FaultPlan::new(1)).await;

    // Throttling, slow calls and failed PutRecords entries.
    p.proxy.set_plan(
        FaultPlan::new(2)
            .throttle("GetRecords", 0.3)
            .throttle("PutRecords", 0.3)
            .delay(ALL, 0.3, Duration::from_millis(200))
            .fail_put_records_entries(0.2),
    );
    p.put_round().await;
    wait_faults(&p, "throttled calls", |c| c.throttled >= 3).await;

    // Kinesis unreachable: every call's connection is cut, as while the emulator restarts.
    p.proxy.set_plan(FaultPlan::new(3).disconnect(ALL, 1.0));
    let before = total(&p.proxy).disconnects;
    p.put_round().await;
    wait_faults(&p, "an outage seen by reads and sends", |c| {
        c.disconnects >= before + 10
    })
    .await;

    // 500s and cut connections now and then.
    p.proxy.set_plan(
        FaultPlan::new(4)
            .internal_error(ALL, 0.2)
            .disconnect(ALL, 0.1),
    );
    p.put_round().await;
    wait_faults(&p, "HTTP 500s", |c| c.internal_errors >= 3).await;

    p.proxy.set_plan(FaultPlan::new(5));
    p.put_round().await;
    p.check_all().await;
    eprintln!("faults injected: {:?}", p.proxy.all_counts());
}

fn total(proxy: &FaultProxy) -> FaultCounts {
    proxy
        .all_counts()
        .values()
        .fold(FaultCounts::default(), |mut t, c| {
            t.calls += c.calls;
            t.throttled += c.throttled;
            t.internal_errors += c.internal_errors;
            t.disconnects += c.disconnects;
            t
        })
}

async fn wait_faults(p: &Pipeline, what: &str, done: impl Fn(&FaultCounts) -> bool) {
    eventually(&p.server, None, what, || async { done(&total(&p.proxy)) }).await;
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        assert!(
            is_root(),
            "this test mounts a tmpfs as the data dir and must run as root (bench/reliability does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tributary-tmpfs-")
            .tempdir()
            .expect("mount point");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                path(dir.path()),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}"), path(self.path())])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Bytes in use.
    fn used(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-B1", path(self.path())])
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Resumes every failed job; returns how many there were.
async fn resume_failed(server: &TestServer) -> usize {
    let (status, body) = server.get("/api/jobs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut resumed = 0;
    for job in body["jobs"].as_array().expect("jobs") {
        if job["state"] == "failed" {
            let id = id_of(job);
            let (status, view) = server
                .post(&format!("/api/jobs/{id}/resume"), &serde_json::json!({}))
                .await;
            assert!(status.is_success(), "resume {id}: {view}");
            resumed += 1;
        }
    }
    resumed
}

#[tokio::test]
#[ignore = "mounts a tmpfs: needs root; bench/reliability runs it"]
async fn a_full_disk_pauses_the_import_with_a_clear_error_and_resume_loses_nothing() {
    let fs = Tmpfs::mount("64m");
    let data = fs.path().join("data");
    let mut p =
        Pipeline::start_with(TestServer::builder().data_dir_at(&data), FaultPlan::new(1)).await;
    p.put_round().await;
    eventually(
        &p.server,
        Some(&p.import),
        "the first records are stored",
        || async { crate::import::stream_count(&p.server, "web").await >= p.records_put() },
    )
    .await;

    // Leave a little room, then write more than fits.
    let room = 256 * 1024;
    let size = (fs.used() + room).div_ceil(4096) * 4096;
    assert!(fs.remount(&format!("size={size}")), "shrink the tmpfs");
    eprintln!("tmpfs now {size} bytes ({} used)", fs.used());
    for _ in 0..40 {
        p.put_round().await;
    }
    let failed = wait_state(&p.server, &p.import, "failed").await;
    let error = failed["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!("import job with a full disk: {failed}");
    assert!(
        error.contains("full"),
        "last_error says the disk is full: {error}"
    );
    // The API still answers, and what was stored before is still there.
    assert!(crate::import::stream_count(&p.server, "web").await >= 60);

    // Space again: resumed, the job reads on from its checkpoint.
    assert!(fs.remount("size=256m"), "grow the tmpfs");
    assert!(resume_failed(&p.server).await >= 1);
    p.put_round().await;
    p.check_all().await;
    let _ = p.server.stop().await;
}

#[tokio::test]
#[ignore = "mounts a tmpfs: needs root; bench/reliability runs it"]
async fn a_read_only_data_dir_stops_the_start_with_a_clear_error_and_nothing_is_lost() {
    let fs = Tmpfs::mount("128m");
    let data = fs.path().join("data");
    let mut p =
        Pipeline::start_with(TestServer::builder().data_dir_at(&data), FaultPlan::new(1)).await;
    p.put_round().await;
    p.put_round().await;
    p.check_all().await;
    assert!(p.server.stop().await, "clean stop");

    // Read-only file system (as after an I/O error): the server refuses to start, saying why.
    assert!(fs.remount("ro"), "remount read-only");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "serve",
            "--data-dir",
            path(&data),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("TRIBUTARY_API_TOKEN", TEST_API_TOKEN)
        .env("TRIBUTARY_MASTER_KEY", TEST_MASTER_KEY)
        .output()
        .expect("run tributary serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("start on a read-only data dir: {stderr}");
    assert!(!out.status.success());
    assert!(
        stderr.contains("Read-only file system") && stderr.contains("must be writable"),
        "the error says the files are read-only: {stderr}"
    );
    assert_eq!(
        stderr.matches("Read-only file system").count(),
        1,
        "each cause once: {stderr}"
    );
    assert!(fs.remount("rw"), "remount read-write");

    // Writable again: it starts, and nothing was lost.
    p.server.restart().await;
    p.put_round().await;
    p.check_all().await;

    let _ = p.server.stop().await;
}

/// PostgreSQL refusing every write while records flow (read-only mode, or the server's disk
/// full): nothing can be committed, not even the job's `last_error` or a lease renewal, so
/// the node says why in its log and `/metrics` (leases lost), keeps answering reads, and picks
/// the work up on its own once writes are taken again: nothing lost, nothing twice.
#[tokio::test]
async fn a_postgres_refusing_writes_stalls_the_pipeline_which_resumes_on_its_own() {
    let db = crate::cluster::Database::create().await;
    let mut p = Pipeline::start(Some(&db.url), FaultPlan::new(1)).await;
    p.put_round().await;
    eventually(
        &p.server,
        Some(&p.import),
        "the first records are stored",
        || async { crate::import::stream_count(&p.server, "web").await >= p.records_put() },
    )
    .await;
    let stored_before = crate::import::stream_count(&p.server, "web").await;

    db.refuse_writes(true).await;
    p.put_round().await;
    p.put_round().await;
    eventually(
        &p.server,
        Some(&p.import),
        "the node logs that the database refuses writes",
        || async { p.server.logs().contains("read-only transaction") },
    )
    .await;
    // Reads still work: the API answers, and nothing stored before is gone.
    let (status, body) = p.server.get(&format!("/api/jobs/{}", p.import)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(crate::import::stream_count(&p.server, "web").await >= stored_before);

    db.refuse_writes(false).await;
    p.put_round().await;
    p.check_all().await;
    let _ = p.server.stop().await;
    db.drop_it().await;
}

/// Deletes both store files' `-wal` and `-shm` files in `data`; returns the WAL bytes deleted.
fn delete_wal_files(data: &Path) -> u64 {
    let mut wal_bytes = 0;
    for name in ["tributary.db", "tributary-cdp.db"] {
        for suffix in ["-wal", "-shm"] {
            let file = data.join(format!("{name}{suffix}"));
            if let Ok(meta) = std::fs::metadata(&file) {
                if suffix == "-wal" {
                    wal_bytes += meta.len();
                }
                std::fs::remove_file(&file).expect("delete a WAL or SHM file");
            }
        }
    }
    wal_bytes
}

/// A clean stop copies both WALs into the store files and empties them, so a data directory
/// copied or moved without its `-wal` files is whole: nothing is lost.
#[tokio::test]
async fn a_clean_stop_empties_the_wal_files_so_deleting_them_loses_nothing() {
    let mut p = Pipeline::start(None, FaultPlan::new(1)).await;
    p.put_round().await;
    p.put_round().await;
    p.check_all().await;
    assert!(p.server.stop().await, "clean stop");
    let data = p.server.data_dir();
    assert_eq!(
        delete_wal_files(&data),
        0,
        "the stop left the WAL files empty"
    );

    p.server.restart().await;
    p.put_round().await;
    p.check_all().await;
    let _ = p.server.stop().await;
}

/// SIGKILL, then both WALs deleted (their commits lost), three times under the whole pipeline.
/// Each file is consistent on its own, but one may now be behind the other; the start finds
/// that and mends it (profiles rebuilt from the event log when they had applied lost events,
/// export positions moved back to the outbox's end), so every record is still stored exactly
/// once and the profiles still equal a recomputation. (Downstream may receive some audience
/// changes twice, and a rebuild's exits and re-entries: the outbox is not compared with a
/// brute-force re-evaluation here.)
#[tokio::test]
async fn a_crash_then_deleted_wal_files_are_found_and_mended_at_start() {
    let mut p = Pipeline::start(None, FaultPlan::new(1)).await;
    // The setup (authorization, jobs, mapping, audiences) in the files first: what a lost
    // WAL takes is gone, jobs included; here it is the work in flight.
    p.put_round().await;
    p.check_all().await;
    assert!(p.server.stop().await, "clean stop");
    p.server.restart().await;
    let data = p.server.data_dir();
    let mut lost = 0;
    for round in 0..3u64 {
        p.put_round().await;
        tokio::time::sleep(Duration::from_millis(150 + 200 * round)).await;
        p.server.kill();
        let bytes = delete_wal_files(&data);
        eprintln!("round {round}: killed, {bytes} WAL bytes deleted");
        lost += bytes;
        p.server.restart().await;
    }
    p.put_round().await;
    p.check_events_and_profiles().await;
    for job in [&p.import, &p.export] {
        let view = job_view(&p.server, job).await;
        assert_eq!(view["state"], "running", "{view}");
    }
    let logs = p.server.all_logs();
    eprintln!(
        "{lost} WAL bytes deleted in all; profiles rebuilt {} time(s), export positions moved back {} time(s)",
        logs.matches("the profiles are being rebuilt").count(),
        logs.matches("export job(s) had sent").count()
    );
    let _ = p.server.stop().await;
}
