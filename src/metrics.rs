//! Prometheus metrics, served at `/metrics`. One registry per server (not the global default),
//! so tests can run several servers in one process.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub import_records_in: IntCounterVec,
    pub import_events_out: IntCounterVec,
    pub import_dead_letters: IntCounterVec,
    pub get_records_calls: IntCounterVec,
    pub get_records_throttles: IntCounterVec,
    pub millis_behind_latest: IntGaugeVec,
    pub batch_commit_seconds: HistogramVec,
    // Profile processor and audiences (crate::cdp, crate::audiences)
    pub export: ExportMetrics,
    pub cdp_events_processed: IntCounter,
    pub cdp_events_mapped: IntCounter,
    pub cdp_profiles_merged: IntCounter,
    /// The processor's profile reads answered by its cache (`hit`) or the store (`miss`).
    pub cdp_profile_cache_lookups: IntCounterVec,
    pub cdp_profile_cache_bytes: IntGauge,
    pub cdp_audience_changes: IntCounterVec,
    pub cdp_batch_seconds: Histogram,
    pub cdp_processor_lag: IntGaugeVec,
    pub cdp_processor_lag_total: IntGauge,
    // Several nodes on one store (crate::cluster)
    pub cluster_leases_held: IntGauge,
    pub cluster_lease_changes: IntCounterVec,
    // Retention, erasure and suppression (crate::cdp::erasure, the retention task)
    pub lifecycle: LifecycleMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("tributary".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let http_requests = counter(
            "http_requests_total",
            "HTTP requests by route and status",
            &["method", "status"],
        );
        let import_records_in = counter(
            "import_records_in_total",
            "Kinesis records read by import jobs",
            &["job"],
        );
        let import_events_out = counter(
            "import_events_out_total",
            "Events stored by import jobs",
            &["job"],
        );
        let import_dead_letters = counter(
            "import_dead_letters_total",
            "Records or parts that could not be decoded",
            &["job"],
        );
        let get_records_calls = counter("get_records_calls_total", "GetRecords calls", &["job"]);
        let get_records_throttles = counter(
            "get_records_throttles_total",
            "GetRecords calls throttled or failed transiently",
            &["job"],
        );
        let millis_behind_latest = IntGaugeVec::new(
            Opts::new(
                "millis_behind_latest",
                "How far a shard reader is behind the tip of its shard",
            ),
            &["job", "shard"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(millis_behind_latest.clone()))
            .expect("unique metric");
        let batch_commit_seconds = HistogramVec::new(
            HistogramOpts::new(
                "batch_commit_seconds",
                "Time to commit one GetRecords batch with its checkpoint",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["job"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(batch_commit_seconds.clone()))
            .expect("unique metric");
        let cluster_lease_changes = counter(
            "cluster_lease_changes_total",
            "Leases this node acquired, lost to another node or released",
            &["change"],
        );
        let cluster_leases_held = IntGauge::new(
            "cluster_leases_held",
            "Leases (import shards, export jobs, the processor) this node holds",
        )
        .expect("valid metric");
        registry
            .register(Box::new(cluster_leases_held.clone()))
            .expect("unique metric");
        let cdp = CdpMetrics::register(&registry);
        let export = ExportMetrics::register(&registry);
        let lifecycle = LifecycleMetrics::register(&registry);
        Self {
            lifecycle,
            cluster_leases_held,
            cluster_lease_changes,
            export,
            cdp_events_processed: cdp.events_processed,
            cdp_events_mapped: cdp.events_mapped,
            cdp_profiles_merged: cdp.profiles_merged,
            cdp_profile_cache_lookups: cdp.profile_cache_lookups,
            cdp_profile_cache_bytes: cdp.profile_cache_bytes,
            cdp_audience_changes: cdp.audience_changes,
            cdp_batch_seconds: cdp.batch_seconds,
            cdp_processor_lag: cdp.processor_lag,
            cdp_processor_lag_total: cdp.processor_lag_total,
            registry,
            http_requests,
            import_records_in,
            import_events_out,
            import_dead_letters,
            get_records_calls,
            get_records_throttles,
            millis_behind_latest,
            batch_commit_seconds,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The profile processor's metrics, registered together.
struct CdpMetrics {
    events_processed: IntCounter,
    events_mapped: IntCounter,
    profiles_merged: IntCounter,
    profile_cache_lookups: IntCounterVec,
    profile_cache_bytes: IntGauge,
    audience_changes: IntCounterVec,
    batch_seconds: Histogram,
    processor_lag: IntGaugeVec,
    processor_lag_total: IntGauge,
}

impl CdpMetrics {
    fn register(registry: &Registry) -> Self {
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone())).expect("unique metric");
            m
        }
        CdpMetrics {
            events_processed: reg(
                registry,
                IntCounter::new(
                    "cdp_events_processed_total",
                    "Events the profile processor has read from the event log",
                )
                .expect("valid metric"),
            ),
            events_mapped: reg(
                registry,
                IntCounter::new(
                    "cdp_events_mapped_total",
                    "Events that a mapping turned into a profile change",
                )
                .expect("valid metric"),
            ),
            profiles_merged: reg(
                registry,
                IntCounter::new(
                    "cdp_profiles_merged_total",
                    "Stored profiles merged into another by identity resolution",
                )
                .expect("valid metric"),
            ),
            profile_cache_lookups: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "cdp_profile_cache_lookups_total",
                        "Profiles the processor read from its cache (hit) or the store (miss)",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            profile_cache_bytes: reg(
                registry,
                IntGauge::new(
                    "cdp_profile_cache_bytes",
                    "Estimated memory held by the processor's profile cache",
                )
                .expect("valid metric"),
            ),
            audience_changes: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "cdp_audience_changes_total",
                        "Audience entries and exits written to the outbox",
                    ),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            batch_seconds: reg(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "cdp_batch_seconds",
                        "Time for one profile processor batch, commit included",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            processor_lag: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "cdp_processor_lag_events",
                        "Events stored but not yet applied to profiles, per stream",
                    ),
                    &["stream"],
                )
                .expect("valid metric"),
            ),
            processor_lag_total: reg(
                registry,
                IntGauge::new(
                    "cdp_processor_lag_events_total",
                    "Events stored but not yet applied to profiles",
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// What export jobs report: records sent, retries, throttles, failures, batch sizes, and the
/// time from an audience change to Kinesis' acknowledgement of its record.
#[derive(Clone)]
pub struct ExportMetrics {
    pub records_sent: IntCounterVec,
    pub retries: IntCounterVec,
    pub throttles: IntCounterVec,
    pub failures: IntCounterVec,
    pub batch_size: HistogramVec,
    pub change_to_ack_seconds: HistogramVec,
    /// Changes in the outbox past the job's cursor (the outbox depth, as the job sees it).
    pub outbox_lag: IntGaugeVec,
}

impl ExportMetrics {
    fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["job"]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["job"])
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        Self {
            records_sent: counter(
                "export_records_sent_total",
                "Records Kinesis accepted from export jobs",
            ),
            retries: counter(
                "export_retries_total",
                "PutRecords entries sent again after a failure",
            ),
            throttles: counter(
                "export_throttles_total",
                "PutRecords calls or entries throttled",
            ),
            failures: counter(
                "export_failures_total",
                "Records dead-lettered or calls failed for good (access, missing stream)",
            ),
            batch_size: histogram(
                "export_batch_size",
                "Records per PutRecords call",
                vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0],
            ),
            change_to_ack_seconds: histogram(
                "export_change_to_ack_seconds",
                "From an audience change to Kinesis acknowledging its record",
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            outbox_lag: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "export_outbox_lag_changes",
                        "Audience changes in the outbox an export job has not published yet",
                    ),
                    &["job"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
        }
    }
}

/// Data lifecycle: events dropped for suppressed identifiers, erasures, what retention
/// deleted, and the store's size.
#[derive(Clone)]
pub struct LifecycleMetrics {
    pub suppressed_events: IntCounterVec,
    pub erasures: IntCounter,
    pub retention_deleted: IntCounterVec,
    pub store_file_bytes: IntGaugeVec,
    pub store_rows: IntGaugeVec,
}

impl LifecycleMetrics {
    fn register(registry: &Registry) -> Self {
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone())).expect("unique metric");
            m
        }
        let vec = |name: &str, help: &str, label: &str| {
            reg(
                registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str, label: &str| {
            reg(
                registry,
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        Self {
            suppressed_events: vec(
                "suppressed_events_total",
                "Events dropped because they carried an identifier on the suppression list",
                "source",
            ),
            erasures: reg(
                registry,
                IntCounter::new("erasures_total", "People erased").expect("valid metric"),
            ),
            retention_deleted: vec(
                "retention_deleted_total",
                "Rows deleted by retention (events, dead letters, acknowledged outbox rows)",
                "kind",
            ),
            store_file_bytes: gauge(
                "store_file_bytes",
                "Size of each store file (SQLite; the database for PostgreSQL)",
                "file",
            ),
            store_rows: gauge(
                "store_rows",
                "Rows per table of the store (events, dead_letters, audience_changes, profiles)",
                "table",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every metric name registered in this file, with the `tributary_` prefix.
    fn registered() -> BTreeSet<String> {
        let source = include_str!("metrics.rs");
        let mut names = BTreeSet::new();
        let openers = [
            "counter(",
            "vec(",
            "gauge(",
            "histogram(",
            "Opts::new(",
            "HistogramOpts::new(",
            "IntCounter::new(",
            "IntGauge::new(",
        ];
        for opener in openers {
            for (at, _) in source.match_indices(opener) {
                let rest = source[at + opener.len()..].trim_start();
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    if !name.is_empty() && !name.contains(' ') {
                        names.insert(format!("tributary_{name}"));
                    }
                }
            }
        }
        names
    }

    /// The `tributary_…` names a text mentions, histogram series folded into their metric.
    fn mentioned(text: &str) -> BTreeSet<String> {
        text.match_indices("tributary_")
            .map(|(at, _)| {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).map(str::to_owned))
                    .unwrap_or(name)
            })
            .collect()
    }

    #[test]
    fn the_dashboard_and_the_readme_name_exactly_the_metrics_there_are() {
        let registered = registered();
        assert!(registered.len() > 15, "{registered:?}");
        let dashboard = include_str!("../docs/grafana-dashboard.json");
        let unknown: Vec<_> = mentioned(dashboard)
            .difference(&registered)
            .cloned()
            .collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries unknown metrics: {unknown:?}"
        );
        let readme = include_str!("../README.md");
        let undocumented: Vec<_> = registered.difference(&mentioned(readme)).cloned().collect();
        assert!(
            undocumented.is_empty(),
            "README's metric list misses {undocumented:?}"
        );
    }
}
