//! Prometheus metrics of a service, in the text exposition format, served
//! with liveness and readiness on the admin listener (`DONDOC_ADMIN_LISTEN`).
//!
//! * RPCs: `dondoc_rpc_requests_total{method,code}`,
//!   `dondoc_rpc_duration_seconds{method}` (histogram) and
//!   `dondoc_rpc_active_streams{method}`, recorded by [`crate::observe`].
//! * Counters by label ([`Metrics::count`]), e.g.
//!   `dondoc_webhook_deliveries_total{outcome}`.
//! * Collectors run at scrape time ([`Metrics::collect`]): pool use,
//!   consumer lag, reminder backlog.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use tonic::Code;

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A labelled counter: its help text and its count per label set.
type Counter = (&'static str, BTreeMap<String, u64>);

type Collector = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// A service's metrics.
#[derive(Default)]
pub struct Metrics {
    methods: HashSet<String>,
    streaming: HashSet<String>,
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    streams: Mutex<BTreeMap<String, Arc<AtomicI64>>>,
    counters: Mutex<BTreeMap<&'static str, Counter>>,
    collectors: Mutex<Vec<Collector>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The canonical name of a gRPC code, e.g. `PERMISSION_DENIED`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Escapes a label value.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shared, cheap to clone.
pub type SharedMetrics = Arc<Metrics>;

/// Counts an open stream while it lives.
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicI64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Metrics that know every method of the dondoc contracts, health and
    /// reflection; any other path is labelled `other` (unbounded label
    /// values would let callers blow up the metrics).
    pub fn new() -> SharedMetrics {
        let mut methods = HashSet::new();
        let mut streaming = HashSet::new();
        for set in [
            dondoc_contracts::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        if method.server_streaming() {
                            streaming.insert(path.clone());
                        }
                        methods.insert(path);
                    }
                }
            }
        }
        Arc::new(Self {
            methods,
            streaming,
            ..Self::default()
        })
    }

    /// The label of a request path.
    pub fn method_label<'a>(&self, path: &'a str) -> &'a str {
        if self.methods.contains(path) {
            path
        } else {
            "other"
        }
    }

    /// Whether `path` is a server-streaming method.
    pub fn is_stream(&self, path: &str) -> bool {
        self.streaming.contains(path)
    }

    /// Records a finished call.
    pub fn observe(&self, path: &str, code: Code, latency: Duration) {
        let method = self.method_label(path).to_owned();
        *lock(&self.requests)
            .entry((method.clone(), code_name(code)))
            .or_default() += 1;
        let seconds = latency.as_secs_f64();
        let mut latency = lock(&self.latency);
        let histogram = latency.entry(method).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts an open stream of `path` until the guard drops.
    pub fn stream_started(&self, path: &str) -> StreamGuard {
        let gauge = lock(&self.streams)
            .entry(self.method_label(path).to_owned())
            .or_default()
            .clone();
        gauge.fetch_add(1, Ordering::Relaxed);
        StreamGuard(gauge)
    }

    /// Adds one to counter `name` (documented by `help`) with `label=value`,
    /// e.g. `count("dondoc_webhook_deliveries_total", "…", "outcome", "delivered")`.
    pub fn count(&self, name: &'static str, help: &'static str, label_pair: (&str, &str)) {
        let mut counters = lock(&self.counters);
        let (_, values) = counters.entry(name).or_insert((help, BTreeMap::new()));
        *values
            .entry(format!("{}=\"{}\"", label_pair.0, label(label_pair.1)))
            .or_default() += 1;
    }

    /// Registers a collector run at every scrape; it returns complete
    /// exposition lines (`# HELP`, `# TYPE` and samples).
    pub fn collect<F, Fut>(&self, collector: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        lock(&self.collectors).push(Arc::new(move || Box::pin(collector())));
    }

    /// The Prometheus text exposition of every metric.
    pub async fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP dondoc_rpc_requests_total Calls answered, by method and gRPC code.\n\
             # TYPE dondoc_rpc_requests_total counter"
        );
        for ((method, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "dondoc_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP dondoc_rpc_duration_seconds Time from a call's arrival to the end of its response (streams: their whole life).\n\
             # TYPE dondoc_rpc_duration_seconds histogram"
        );
        for (method, histogram) in lock(&self.latency).iter() {
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                let _ = writeln!(
                    out,
                    "dondoc_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "dondoc_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}\n\
                 dondoc_rpc_duration_seconds_sum{{method=\"{method}\"}} {}\n\
                 dondoc_rpc_duration_seconds_count{{method=\"{method}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP dondoc_rpc_active_streams Server streams open (event and notification streams).\n\
             # TYPE dondoc_rpc_active_streams gauge"
        );
        for (method, gauge) in lock(&self.streams).iter() {
            let _ = writeln!(
                out,
                "dondoc_rpc_active_streams{{method=\"{method}\"}} {}",
                gauge.load(Ordering::Relaxed)
            );
        }
        for (name, (help, values)) in lock(&self.counters).iter() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, n) in values {
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }
        let collectors: Vec<Collector> = lock(&self.collectors).clone();
        for collector in collectors {
            match tokio::time::timeout(Duration::from_secs(3), collector()).await {
                Ok(text) => out.push_str(&text),
                Err(_) => tracing::warn!("a metrics collector took longer than 3 s; skipped"),
            }
        }
        out
    }
}

/// Pool use: `dondoc_db_pool_connections{state}` and the maximum.
pub fn pool_collector(metrics: &Metrics, pool: sqlx::PgPool) {
    metrics.collect(move || {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        let max = pool.options().get_max_connections();
        async move {
            format!(
                "# HELP dondoc_db_pool_connections Connections of the service's PostgreSQL pool, by state.\n\
                 # TYPE dondoc_db_pool_connections gauge\n\
                 dondoc_db_pool_connections{{state=\"idle\"}} {idle}\n\
                 dondoc_db_pool_connections{{state=\"in_use\"}} {}\n\
                 # HELP dondoc_db_pool_max_connections The pool's limit (DONDOC_DB_MAX_CONNECTIONS).\n\
                 # TYPE dondoc_db_pool_max_connections gauge\n\
                 dondoc_db_pool_max_connections {max}\n",
                size.saturating_sub(idle)
            )
        }
    });
}

/// Consumer lag and connection: `dondoc_consumer_lag_seconds{source}`,
/// `dondoc_consumer_connected{source}`, `dondoc_consumer_events_applied_total{source}`.
pub fn consumer_collector(metrics: &Metrics, status: dondoc_events::consumer::ConsumerStatus) {
    metrics.collect(move || {
        let source = status.source();
        let text = format!(
            "# HELP dondoc_consumer_lag_seconds How far the consumer is behind its upstream event stream: commit-to-apply delay of the last event (0 when caught up), at least the time disconnected.\n\
             # TYPE dondoc_consumer_lag_seconds gauge\n\
             dondoc_consumer_lag_seconds{{source=\"{source}\"}} {}\n\
             # HELP dondoc_consumer_connected 1 while the upstream event stream is open.\n\
             # TYPE dondoc_consumer_connected gauge\n\
             dondoc_consumer_connected{{source=\"{source}\"}} {}\n\
             # HELP dondoc_consumer_events_applied_total Upstream events applied (redeliveries not counted).\n\
             # TYPE dondoc_consumer_events_applied_total counter\n\
             dondoc_consumer_events_applied_total{{source=\"{source}\"}} {}\n",
            status.lag().as_secs_f64(),
            u8::from(status.is_connected()),
            status.applied_total(),
        );
        async move { text }
    });
}
