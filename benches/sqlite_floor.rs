//! What SQLite itself costs for one steady-state profile event (issue 4), without any of
//! Tributary's own work (see `support/floor.rs` for what is measured).
//!
//! ```text
//! cargo bench --bench sqlite_floor                       # 1,000,000 profiles, uniform
//! FLOOR_PROFILES=200000 CDP_BENCH_DISTRIBUTION=zipf cargo bench --bench sqlite_floor
//! ```
//! `cargo bench --bench cdp` measures the same floor at its end, for its own workload.

mod support;
use support::floor;
use support::people::{Distribution, People};

/// Audience changes per event, as the `cdp` bench's uniform steady state makes them.
const CHANGES_PER_EVENT: f64 = 5.0;

fn main() {
    let n: usize = std::env::var("FLOOR_PROFILES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let distribution = Distribution::from_env();
    let people = People::new(n as u64, distribution);
    let f = floor::measure(n, 100_000, &people, CHANGES_PER_EVENT);
    println!("  people drawn: {}", distribution.name());
    f.print();
    println!("  (50,000 events/s on 2 cores leaves 40 µs CPU per event for everything)");
}
