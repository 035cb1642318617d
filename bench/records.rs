//! Shared by the benchmarks (`benches/pipeline.rs`, `benches/cdp.rs` and `bench/kinesis_bench.rs`
//! include this file with `#[path]`): the synthetic ~1 KiB JSON record, and process measurements read from
//! `/proc` and `getrusage(2)` without extra dependencies.

#![allow(dead_code)]

use std::fmt::Write as _;

const EVENTS: [&str; 6] = [
    "page_view",
    "add_to_cart",
    "checkout_started",
    "order_completed",
    "signed_in",
    "search",
];
const PATHS: [&str; 5] = [
    "/",
    "/products/trail-runner-3",
    "/cart",
    "/checkout/payment",
    "/search?q=rain+jacket",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
];

/// A CDP-style tracking event of about 1 KiB (1,000–1,100 bytes): nested objects, strings,
/// numbers, booleans, an array. Deterministic in `i`; the partition key is its `user_id`.
pub fn record_json(i: u64) -> Vec<u8> {
    let mut s = String::with_capacity(1152);
    let user = i % 5_000;
    let ts_ms = 1_764_000_000_000u64 + i * 7;
    let _ = write!(
        s,
        concat!(
            r#"{{"type":"track","event":"{event}","message_id":"msg-{i:012}-{h:016x}","user_id":"user-{user:06}","#,
            r#""anonymous_id":"anon-{h2:016x}-{h3:016x}","timestamp":"{ts}","sent_at":"{ts}","#,
            r#""properties":{{"path":"{path}","url":"https://shop.example.com{path}","referrer":"https://www.example.org/blog/post-{r}","#,
            r#""title":"Example Shop — {event}","product_id":"sku-{sku:08}","price":{price}.{cents:02},"currency":"EUR","quantity":{q},"#,
            r#""in_stock":{stock},"tags":["summer","outdoor","sale-{r}"]}},"#,
            r#""context":{{"ip":"10.{a}.{b}.{c}","locale":"en-GB","timezone":"Europe/Berlin","user_agent":"{ua}","#,
            r#""library":{{"name":"analytics.js","version":"5.2.1"}},"screen":{{"width":1920,"height":1080,"density":2}},"#,
            r#""campaign":{{"source":"newsletter","medium":"email","name":"autumn-{r}"}}}},"#,
            r#""seq":{i}"#
        ),
        event = EVENTS[(i % EVENTS.len() as u64) as usize],
        i = i,
        h = mix(i),
        user = user,
        h2 = mix(user),
        h3 = mix(user ^ 0xdead_beef),
        ts = chrono_like(ts_ms),
        path = PATHS[(i % PATHS.len() as u64) as usize],
        r = i % 97,
        sku = mix(i) % 100_000_000,
        price = 10 + i % 190,
        cents = i % 100,
        q = 1 + i % 4,
        stock = i % 3 != 0,
        a = (i >> 16) & 255,
        b = (i >> 8) & 255,
        c = i & 255,
        ua = AGENTS[(i % AGENTS.len() as u64) as usize],
    );
    // Pad to ~1 KiB with a field of its own so every record has the same shape.
    let pad = 1_024usize.saturating_sub(s.len() + 13);
    s.push_str(",\"note\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s.into_bytes()
}

pub fn partition_key(i: u64) -> String {
    format!("user-{:06}", i % 5_000)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// RFC 3339 UTC with milliseconds, without pulling chrono into this file.
fn chrono_like(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

// ---------------------------------------------------------------------------------------------
// Process measurements
// ---------------------------------------------------------------------------------------------

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Timeval {
    tv_sec: i64,
    tv_usec: i64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Rusage {
    ru_utime: Timeval,
    ru_stime: Timeval,
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

const RUSAGE_SELF: i32 = 0;
const RUSAGE_THREAD: i32 = 1;

fn rusage_cpu(who: i32) -> f64 {
    let mut u = Rusage::default();
    // SAFETY: `u` is a valid, writable `struct rusage` (x86_64/aarch64 Linux layout: two
    // timevals followed by 14 longs).
    let rc = unsafe { getrusage(who, &mut u) };
    assert_eq!(rc, 0, "getrusage failed");
    let t = |tv: Timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds (user + system) used by this process so far, all threads.
pub fn process_cpu_seconds() -> f64 {
    rusage_cpu(RUSAGE_SELF)
}

/// CPU seconds used by the calling thread so far.
pub fn thread_cpu_seconds() -> f64 {
    rusage_cpu(RUSAGE_THREAD)
}

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`), in MiB.
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so a later peak covers only what follows.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU seconds used so far by every process named `postgres` on this machine (the server and
/// its backends), from `/proc/PID/stat`; 0 when there is none.
pub fn postgres_cpu_seconds() -> f64 {
    postgres_processes().map(|(_, cpu)| cpu).sum()
}

/// [`postgres_cpu_seconds`] split in two: the connections to `database` (a backend's process
/// title names its database), and the server's own processes (WAL writer, checkpointer,
/// background writer, autovacuum), which work for every database on the server. What is left
/// of the total is other databases' connections (other work on a shared server).
#[allow(dead_code)] // not every user of this file reports it
pub fn postgres_cpu_split(database: &str) -> (f64, f64) {
    const SERVER_OWN: &[&str] = &[
        "walwriter",
        "checkpointer",
        "background writer",
        "autovacuum",
    ];
    let (mut ours, mut server) = (0.0, 0.0);
    for (title, cpu) in postgres_processes() {
        if title.split_whitespace().any(|word| word == database) {
            ours += cpu;
        } else if SERVER_OWN.iter().any(|p| title.contains(p)) {
            server += cpu;
        }
    }
    (ours, server)
}

/// The database named by a `postgres://…/DB?…` URL.
#[allow(dead_code)] // not every user of this file reports it
pub fn postgres_database(url: &str) -> &str {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// Every `postgres` process on this machine: its title (`/proc/PID/cmdline`, which PostgreSQL
/// rewrites to say what the process is) and the CPU seconds it used.
fn postgres_processes() -> impl Iterator<Item = (String, f64)> {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let title = std::fs::read(path.join("cmdline")).ok()?;
            Some((String::from_utf8_lossy(&title).replace('\0', " "), stat))
        })
        .filter_map(move |(title, stat)| {
            let (name, rest) = stat.split_once(" (")?.1.split_once(") ")?;
            (name == "postgres").then_some(())?;
            // Fields after the name: state is the 3rd field of the line; utime and stime the
            // 14th and 15th.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((title, (utime + stime) / ticks_per_second))
        })
}
