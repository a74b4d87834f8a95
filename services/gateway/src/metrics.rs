//! Prometheus metrics, in the text exposition format, and the admin listener
//! that serves them (`/metrics`) with a liveness probe (`/healthz`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::policy;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counts and latencies of finished calls, by method label.
#[derive(Default)]
struct Calls {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// The gateway's metrics. Labels are the policy's own `&'static str`s, so
/// recording a call allocates nothing and takes one lock.
#[derive(Default)]
pub(crate) struct Metrics {
    calls: Mutex<Calls>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    in_flight_calls: AtomicI64,
    in_flight_streams: AtomicI64,
    shed: AtomicU64,
    retries: AtomicU64,
}

/// A method label: the methods of the policy, or `other` (unbounded
/// label values would let callers blow up the metrics).
fn method_label(method: &str) -> &'static str {
    policy::listed_method(method).unwrap_or("other")
}

/// The canonical name of a gRPC code, e.g. `PERMISSION_DENIED`.
pub(crate) fn code_name(code: Code) -> &'static str {
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Counts an open call (or stream) while it lives.
pub(crate) struct InFlight {
    metrics: Arc<Metrics>,
    stream: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let gauge = if self.stream {
            &self.metrics.in_flight_streams
        } else {
            &self.metrics.in_flight_calls
        };
        gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records a finished call.
    pub(crate) fn observe(&self, method: &str, code: Code, latency: Duration) {
        let method = method_label(method);
        let seconds = latency.as_secs_f64();
        let mut calls = lock(&self.calls);
        *calls.requests.entry((method, code_name(code))).or_default() += 1;
        let histogram = calls.latency.entry(method).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    pub(crate) fn rate_limited(&self, method: &str) {
        *lock(&self.rate_limited)
            .entry(method_label(method))
            .or_default() += 1;
    }

    pub(crate) fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a proxied call until the guard drops.
    pub(crate) fn call_started(self: &Arc<Self>) -> InFlight {
        self.in_flight_calls.fetch_add(1, Ordering::Relaxed);
        InFlight {
            metrics: self.clone(),
            stream: false,
        }
    }

    /// Counts an open stream until the guard drops.
    pub(crate) fn stream_started(self: &Arc<Self>) -> InFlight {
        self.in_flight_streams.fetch_add(1, Ordering::Relaxed);
        InFlight {
            metrics: self.clone(),
            stream: true,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP dondoc_gateway_requests_total Calls answered by the gateway, by method and gRPC code.\n\
             # TYPE dondoc_gateway_requests_total counter"
        );
        let calls = lock(&self.calls);
        for ((method, code), n) in calls.requests.iter() {
            let _ = writeln!(
                out,
                "dondoc_gateway_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP dondoc_gateway_request_duration_seconds Time from a call's arrival to the end of its response.\n\
             # TYPE dondoc_gateway_request_duration_seconds histogram"
        );
        for (method, histogram) in calls.latency.iter() {
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                let _ = writeln!(
                    out,
                    "dondoc_gateway_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "dondoc_gateway_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}\n\
                 dondoc_gateway_request_duration_seconds_sum{{method=\"{method}\"}} {}\n\
                 dondoc_gateway_request_duration_seconds_count{{method=\"{method}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        drop(calls);
        let _ = writeln!(
            out,
            "# HELP dondoc_gateway_rate_limited_total Calls refused by the per-principal rate limit.\n\
             # TYPE dondoc_gateway_rate_limited_total counter"
        );
        for (method, n) in lock(&self.rate_limited).iter() {
            let _ = writeln!(
                out,
                "dondoc_gateway_rate_limited_total{{method=\"{method}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP dondoc_gateway_in_flight_calls Proxied calls in progress.\n\
             # TYPE dondoc_gateway_in_flight_calls gauge\n\
             dondoc_gateway_in_flight_calls {}\n\
             # HELP dondoc_gateway_in_flight_streams Server streams open through the gateway.\n\
             # TYPE dondoc_gateway_in_flight_streams gauge\n\
             dondoc_gateway_in_flight_streams {}\n\
             # HELP dondoc_gateway_shed_total Calls refused because the gateway was at its concurrency limit.\n\
             # TYPE dondoc_gateway_shed_total counter\n\
             dondoc_gateway_shed_total {}\n\
             # HELP dondoc_gateway_retries_total Read calls retried after UNAVAILABLE.\n\
             # TYPE dondoc_gateway_retries_total counter\n\
             dondoc_gateway_retries_total {}",
            self.in_flight_calls.load(Ordering::Relaxed),
            self.in_flight_streams.load(Ordering::Relaxed),
            self.shed.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` over HTTP/1.1 on `listener` until
/// `stopped`; `/healthz` answers 503 once `draining`.
pub(crate) async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    draining: CancellationToken,
    stopped: CancellationToken,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let draining = draining.clone();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = admin_response(request.uri().path(), &metrics, &draining);
                async move { Ok::<_, Infallible>(response) }
            });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn admin_response(
    path: &str,
    metrics: &Metrics,
    draining: &CancellationToken,
) -> http::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            http::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" if draining.is_cancelled() => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".to_owned(),
        ),
        "/healthz" => (http::StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /healthz\n".to_owned(),
        ),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
