//! Profile processor benchmark (issue 4): events/s through mapping + identity resolution +
//! audience evaluation into the SQLite store, with N profiles and 100 audiences, and peak RSS.
//!
//! ```text
//! cargo bench --bench cdp                      # 1,000,000 profiles, 500,000 events, 100 audiences
//! CDP_BENCH_PROFILES=100000 CDP_BENCH_EVENTS=100000 cargo bench --bench cdp
//! ```
//! `BENCH_STORE=postgres://USER@HOST/DB` (an empty database) runs it on PostgreSQL instead and
//! also reports the server processes' CPU.
//!
//! `CDP_BENCH_BEHAVIOR=1` adds two windowed columns (`WINDOW 30d` with `IF`, `WINDOW 7d`) and
//! four audiences reading them and the engagement scores; `=0` (the default) runs without
//! them and with the scores' activity recording off. It also prints the stored bytes of a
//! profile with N windowed fields.
//!
//! `CDP_BENCH_CACHE_MB=N` turns the processor's profile cache on with N MiB (off by default,
//! as in the product) and prints its hit rate.
//!
//! `CDP_BENCH_DISTRIBUTION=uniform|zipf` picks who the steady state's events are for: uniform
//! (the default, the worst case) or Zipf with exponent 1.1 (a few people make most events).
//! The run ends by measuring SQLite's floor for the same workload (`support/floor.rs`; off with
//! `CDP_BENCH_FLOOR=0`) and one line: `cdp: DIST steady E events/s, C µs CPU per event, floor F
//! µs, peak RSS R MiB`.
//!
//! Phase 1 loads the profiles (one event per new person, through the processor too); phase 2
//! is the measured steady state: events for existing people drawn by the distribution, and 2%
//! for two people drawn uniformly whose identifiers the event links (so merges happen at the
//! same rate under both distributions), every audience live.

mod support;
use support::people::{Distribution, People};
use support::{cpu_seconds, floor, vm_hwm_mib};
#[path = "../bench/records.rs"]
mod records;

use std::sync::Arc;
use std::time::Instant;

/// The allocator `tributary` itself uses (src/main.rs), so the numbers are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;
use tributary::cdp::Cdp;
use tributary::metrics::Metrics;
use tributary::store::{sqlite::SqliteStore, Audience, DynStore, NewEvent};

const MAPPING: &str = "SELECT
    email(email)            AS email        KIND string,
    user_id                 AS user_id      KIND string,
    lower(country)          AS country      KIND string,
    count(*)                AS visit_count  KIND int,
    sum(amount)             AS total_spent  KIND number,
    max(todate(ts))         AS last_seen    KIND date,
    set(page)               AS pages_seen   KIND []string,
    name                    AS first_name   KIND string
FROM web
INTO user BY email OR user_id";

/// Appended to the SELECT list with `CDP_BENCH_BEHAVIOR=1`.
const WINDOWED: &str = "
    count(*)    AS pricing_30d  KIND int    WINDOW 30d IF eq(page, \"/pricing\"),
    sum(amount) AS spent_7d     KIND number WINDOW 7d,";

/// The audiences added with `CDP_BENCH_BEHAVIOR=1`.
const BEHAVIOR_AUDIENCES: &[&str] = &[
    "pricing_30d >= 2",
    "spent_7d > 100",
    "AND (momentum > 60, recency > 40)",
    "frequency > 20",
];

const COUNTRIES: &[&str] = &["us", "ca", "de", "fr", "gb", "jp", "br", "in"];
const DOMAINS: &[&str] = &[
    "example.com",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "proton.me",
    "corp.io",
    "mail.de",
    "free.fr",
];
const PAGES: &[&str] = &["/", "/pricing", "/docs", "/blog", "/signup", "/unsubscribe"];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// 100 audiences over the mapped fields (thresholds, equality, sets, dates, LIKE, INCLUDE),
/// each holding a few percent to a third of the people: about 8 memberships per profile.
fn audiences(n: usize) -> Vec<Audience> {
    (0..n)
        .map(|i| {
            let k = i / 10;
            let filter = match i % 10 {
                0 => format!("visit_count > {}", 2 + k),
                1 => format!("total_spent >= {}", 150 + 20 * k),
                2 => format!("country = \"{}\"", COUNTRIES[k % COUNTRIES.len()]),
                3 => format!("pages_seen CONTAINS \"{}\"", PAGES[k % PAGES.len()]),
                4 => format!("last_seen > \"now-{}d\"", 30 + k),
                5 => format!(
                    "AND (visit_count >= {}, country IN (\"us\", \"ca\"))",
                    k + 2
                ),
                6 => format!("email LIKE \"*@{}\"", DOMAINS[k % DOMAINS.len()]),
                7 => format!("len(pages_seen) > {}", 2 + k % 3),
                8 => format!("INCLUDE a{:03} AND total_spent > 5", i - 8),
                _ => format!(
                    "EXISTS user_id AND country = \"{}\"",
                    COUNTRIES[k % COUNTRIES.len()]
                ),
            };
            Audience {
                id: format!("aud-{i}"),
                slug: format!("a{i:03}"),
                name: format!("audience {i}"),
                description: String::new(),
                filter,
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
            }
        })
        .collect()
}

fn event(rng: &mut StdRng, person: u64, link: Option<u64>, n: u64) -> NewEvent {
    let mut v = json!({
        "email": format!("user{person}@{}", DOMAINS[(person / 8 % 8) as usize]),
        "country": COUNTRIES[(person % COUNTRIES.len() as u64) as usize].to_uppercase(),
        "amount": rng.gen_range(0..100),
        // Within the last ~60 days: the `now-Nd` audiences hold some and lose them over time.
        "ts": chrono::Utc::now().timestamp() - rng.gen_range(0..5_000_000),
        "page": PAGES[rng.gen_range(0..PAGES.len())],
        "name": "Alex",
    });
    if let Some(other) = link {
        v["user_id"] = json!(format!("uid-{other}"));
    } else if person % 3 == 0 {
        v["user_id"] = json!(format!("uid-{person}"));
    }
    NewEvent {
        event_id: format!("bench-{n}"),
        fields: v.as_object().expect("object").clone().into(),
        origin: None,
    }
}

/// Stored bytes of one profile (email, user id, and N windowed counts) after events on K
/// distinct days of the last 60, one event a day, for N = 0, 1, 2, 4, 8 (scores included).
fn windowed_bytes() {
    use tributary_lang::{parse_mapping, ProfileState};
    let now = chrono::Utc::now();
    for days in [1i64, 10, 30, 60] {
        let mut line = format!("  bytes per profile, events on {days:>2} days:");
        for n in [0usize, 1, 2, 4, 8] {
            let windowed: String = (0..n)
                .map(|i| format!("count(*) AS w{i} KIND int WINDOW 30d,"))
                .collect();
            let m = parse_mapping(&format!(
                "SELECT {windowed} email AS email, user_id AS user_id FROM web INTO user BY email"
            ))
            .expect("mapping");
            let mut p = ProfileState::new();
            for d in 0..days {
                let t = now - chrono::Duration::days(d * 60 / days);
                let e = json!({"email": "someone@example.com", "user_id": "uid-12345"});
                let mapped = m.apply(e.as_object().expect("object"), t).expect("mapped");
                p.apply_event(&m, &mapped, t);
            }
            line += &format!(" N={n}: {} B;", p.to_bytes().len());
        }
        println!("{line}");
    }
}

async fn append(store: &DynStore, events: impl Iterator<Item = NewEvent>) {
    let mut chunk = Vec::with_capacity(10_000);
    for e in events {
        chunk.push(e);
        if chunk.len() == 10_000 {
            store
                .append_events("web", std::mem::take(&mut chunk))
                .await
                .expect("append");
        }
    }
    if !chunk.is_empty() {
        store.append_events("web", chunk).await.expect("append");
    }
}

#[tokio::main]
async fn main() {
    let profiles = env("CDP_BENCH_PROFILES", 1_000_000);
    let events = env("CDP_BENCH_EVENTS", 500_000);
    let n_audiences = env("CDP_BENCH_AUDIENCES", 100) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let store_url = std::env::var("BENCH_STORE").ok();
    let store: DynStore = match &store_url {
        Some(url) => tributary::store::open(url).await.expect("open BENCH_STORE"),
        None => Arc::new(
            SqliteStore::open(&dir.path().join("bench.db"))
                .await
                .expect("store"),
        ),
    };
    if let Some(url) = &store_url {
        println!("cdp bench on PostgreSQL ({url})");
    }
    let behavior = env("CDP_BENCH_BEHAVIOR", 0) == 1;
    tributary_lang::scores::set_recording(behavior);
    let cdp = Cdp::new(store.clone().into(), Metrics::new());
    let cache_mb = env("CDP_BENCH_CACHE_MB", 0);
    cdp.set_profile_cache_budget((cache_mb as usize) << 20);
    let mapping = if behavior {
        MAPPING.replacen("SELECT", &format!("SELECT{WINDOWED}"), 1)
    } else {
        MAPPING.to_owned()
    };
    cdp.set_mapping("web", &mapping).await.expect("mapping");
    let mut all = audiences(n_audiences);
    if behavior {
        for (i, filter) in BEHAVIOR_AUDIENCES.iter().enumerate() {
            let mut a = all[0].clone();
            a.id = format!("aud-b{i}");
            a.slug = format!("b{i:03}");
            a.filter = filter.to_string();
            all.push(a);
        }
        windowed_bytes();
    }
    for a in all {
        cdp.create_audience(a).await.expect("audience");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let distribution = Distribution::from_env();
    let people = People::new(profiles, distribution);

    println!(
        "cdp bench: {profiles} profiles, {events} events ({}), {n_audiences} audiences{}",
        distribution.name(),
        if behavior {
            " + 2 windowed columns, 4 behavioral audiences, scores on"
        } else {
            ", no windowed columns, scores off"
        }
    );
    let t = Instant::now();
    append(
        &store,
        (0..profiles).map(|p| event(&mut StdRng::seed_from_u64(p), p, None, p)),
    )
    .await;
    println!(
        "  load: appended {profiles} events in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let n = cdp.drain().await.expect("drain");
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "  load: {n} events → {} profiles in {secs:.1}s = {:.0} events/s; {cpu:.1} CPU s = {:.0} events per CPU s (new profiles, all audiences evaluated)",
        store.count_profiles().await.expect("count"),
        n as f64 / secs,
        n as f64 / cpu
    );

    let t = Instant::now();
    // Generated while appended (never all in memory), so peak RSS is the processor's.
    let steady = (0..events).map(|i| {
        if rng.gen_range(0..100) < 2 {
            let (person, other) = (rng.gen_range(0..profiles), rng.gen_range(0..profiles));
            event(&mut rng, person, Some(other), profiles + i)
        } else {
            let person = people.pick(&mut rng);
            event(&mut rng, person, None, profiles + i)
        }
    });
    append(&store, steady).await;
    println!(
        "  steady: appended {events} events in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let mut steady_from = 0;
    loop {
        let page = store
            .list_audience_changes(steady_from, 100_000)
            .await
            .expect("changes");
        match page.last() {
            Some(last) => steady_from = last.seq,
            None => break,
        }
    }
    println!("  steady: draining");
    let database = store_url.as_deref().map_or("", records::postgres_database);
    let (t, cpu, server_cpu, split) = (
        Instant::now(),
        cpu_seconds(),
        records::postgres_cpu_seconds(),
        records::postgres_cpu_split(database),
    );
    let n = cdp.drain().await.expect("drain");
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let (steady_rate, steady_cpu_us) = (n as f64 / secs, cpu * 1e6 / n.max(1) as f64);
    let server_cpu = records::postgres_cpu_seconds() - server_cpu;
    let (ours, own) = records::postgres_cpu_split(database);
    let (ours, own) = (ours - split.0, own - split.1);
    println!(
        "  steady: {n} events in {secs:.1}s = {:.0} events/s; {cpu:.1} CPU s = {:.0} events per CPU s ({} profiles after merges)",
        n as f64 / secs,
        n as f64 / cpu,
        store.count_profiles().await.expect("count")
    );
    if store_url.is_some() {
        println!(
            "  steady: PostgreSQL server {server_cpu:.1} CPU s = {:.0} µs per event (its processes, from /proc)",
            server_cpu * 1e6 / n.max(1) as f64
        );
        println!(
            "  steady: of which {database}'s connections {ours:.1} CPU s = {:.0} µs per event, the server's own processes (WAL writer, checkpointer, autovacuum; shared) {own:.1} CPU s = {:.0} µs per event",
            ours * 1e6 / n.max(1) as f64,
            own * 1e6 / n.max(1) as f64
        );
    }
    let (mut changes, mut by_family) = (0usize, [0usize; 10]);
    let mut after = steady_from;
    loop {
        let page = store
            .list_audience_changes(after, 100_000)
            .await
            .expect("changes");
        let Some(last) = page.last() else { break };
        after = last.seq;
        changes += page.len();
        for c in &page {
            by_family[c.audience_slug[1..].parse::<usize>().unwrap_or(0) % 10] += 1;
        }
    }
    println!(
        "  steady: {changes} audience changes ({:.1} per event; by filter family {by_family:?})",
        changes as f64 / events.max(1) as f64
    );
    let peak_rss = vm_hwm_mib();
    println!("  peak RSS (VmHWM): {peak_rss:.0} MiB");
    if cache_mb > 0 {
        let lookups = &cdp.metrics().cdp_profile_cache_lookups;
        let (hits, misses) = (
            lookups.with_label_values(&["hit"]).get(),
            lookups.with_label_values(&["miss"]).get(),
        );
        println!(
            "  profile cache ({cache_mb} MiB): {hits} hits, {misses} misses over the whole run ({:.0} % hits)",
            100.0 * hits as f64 / (hits + misses).max(1) as f64
        );
    }
    if store_url.is_none() {
        profile_rows(dir.path());
    }
    let floor = (env("CDP_BENCH_FLOOR", 1) == 1).then(|| {
        let f = floor::measure(
            profiles as usize,
            100_000,
            &people,
            changes as f64 / events.max(1) as f64,
        );
        f.print();
        f.total
    });
    println!(
        "cdp: {} steady {steady_rate:.0} events/s, {steady_cpu_us:.1} µs CPU per event, floor {}, peak RSS {peak_rss:.0} MiB{}",
        distribution.name(),
        floor.map_or("not measured".into(), |f| format!("{f:.1} µs")),
        if store_url.is_some() { " (PostgreSQL: the server's CPU is not in C)" } else { "" }
    );
}

/// The average stored sizes of a profile's state and member list, and the CDP file's size.
fn profile_rows(dir: &std::path::Path) {
    let conn =
        rusqlite::Connection::open(tributary::store::sqlite::cdp_path(&dir.join("bench.db")))
            .expect("cdp file");
    let (state, members, page_size, pages): (f64, f64, i64, i64) = conn
        .query_row(
            "SELECT AVG(LENGTH(state)), AVG(LENGTH(audiences)),
                    (SELECT page_size FROM pragma_page_size), (SELECT page_count FROM pragma_page_count)
               FROM profiles",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("row sizes");
    println!(
        "  profile rows: state {state:.0} B, member list {members:.0} B on average; CDP file {} MiB in {page_size} B pages",
        pages * page_size / (1024 * 1024)
    );
}
