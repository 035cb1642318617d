//! Prometheus metrics, served at `/metrics`. One registry per server (not the global default),
//! so tests can run several servers in one process.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
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
        Self {
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
