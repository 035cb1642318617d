//! What the benchmarks measure the process with, and the workloads they share.

pub mod floor;
pub mod people;

/// CPU seconds (user + system) this process has used: with other work on the machine, wall
/// time alone says little.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from after the command name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory (VmHWM) in MiB.
#[allow(dead_code)] // not every benchmark reports it
pub fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
