//! Filter evaluation cost: 100 audience filters of ten typical shapes against one profile.
//! Prints nanoseconds per evaluation, per family and over all 100.
//!
//! `cargo bench -p tributary-lang --bench filter_eval`

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use serde_json::json;
use tributary_lang::{parse_filter, Filter};

const COUNTRIES: [&str; 8] = ["us", "ca", "de", "fr", "gb", "jp", "br", "in"];
const PAGES: [&str; 6] = ["/", "/pricing", "/docs", "/blog", "/signup", "/unsubscribe"];
const DOMAINS: [&str; 8] = [
    "example.com",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "proton.me",
    "corp.io",
    "mail.de",
    "free.fr",
];
const FAMILIES: [&str; 10] = [
    "visit_count > N",
    "total_spent >= N",
    "country = \"..\"",
    "pages_seen CONTAINS \"..\"",
    "last_seen > \"now-Nd\"",
    "AND (>=, IN)",
    "email LIKE \"*@..\"",
    "len(pages_seen) > N",
    "INCLUDE .. AND >",
    "EXISTS .. AND =",
];
const ROUNDS: u32 = 20_000;

fn filter_text(i: usize) -> String {
    let k = i / 10;
    match i % 10 {
        0 => format!("visit_count > {}", 2 + k),
        1 => format!("total_spent >= {}", 150 + 20 * k),
        2 => format!("country = \"{}\"", COUNTRIES[k % 8]),
        3 => format!("pages_seen CONTAINS \"{}\"", PAGES[k % 6]),
        4 => format!("last_seen > \"now-{}d\"", 30 + k),
        5 => format!(
            "AND (visit_count >= {}, country IN (\"us\", \"ca\"))",
            k + 2
        ),
        6 => format!("email LIKE \"*@{}\"", DOMAINS[k % 8]),
        7 => format!("len(pages_seen) > {}", 2 + k % 3),
        8 => format!("INCLUDE a{:03} AND total_spent > 5", i - 8),
        _ => format!("EXISTS user_id AND country = \"{}\"", COUNTRIES[k % 8]),
    }
}

fn main() {
    let profile = json!({
        "email": "user12@gmail.com",
        "user_id": "uid-12",
        "country": "us",
        "visit_count": 7,
        "total_spent": 412,
        "last_seen": "2026-11-01T10:00:00Z",
        "pages_seen": ["/", "/docs", "/pricing"],
        "first_name": "Alex",
    });
    let now = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
    let filters: Vec<Filter> = (0..100)
        .map(|i| parse_filter(&filter_text(i)).unwrap())
        .collect();
    let includes = |_: &str| true;

    let time = |fs: &[&Filter]| {
        let start = Instant::now();
        let mut hits = 0u32;
        for _ in 0..ROUNDS {
            for f in fs {
                hits += u32::from(black_box(f).matches(black_box(&profile), now, &includes));
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / fs.len() as f64;
        (ns, hits / ROUNDS)
    };

    // Warm up once so the first family does not pay for cold caches.
    time(&filters.iter().collect::<Vec<_>>());
    for (fam, name) in FAMILIES.iter().enumerate() {
        let fs: Vec<&Filter> = filters.iter().skip(fam).step_by(10).collect();
        let (ns, hits) = time(&fs);
        println!("family {fam} {name:<28} {ns:>8.1} ns/eval  ({hits}/10 match)");
    }
    let (ns, hits) = time(&filters.iter().collect::<Vec<_>>());
    println!("all 100 filters                     {ns:>8.1} ns/eval  ({hits}/100 match)");
}
