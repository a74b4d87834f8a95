//! The observing layer of every service: one server span per call, the
//! child of the caller's W3C `traceparent` (the gateway's span), with
//! `rpc.system=grpc`, `rpc.service`, `rpc.method` and the final status
//! code; and the RPC metrics (calls by method and code, latency, open
//! streams). Health and reflection calls are counted but not traced
//! (probes would drown the traces).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Frame;
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::metrics::{SharedMetrics, StreamGuard};

/// The current span's W3C `traceparent` (empty outside any trace): what a
/// service writes into the events it appends, so that consumers link their
/// work to the request that made the change.
pub use dondoc_telemetry::current_traceparent;

/// Adds [`Observe`] around a service.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: SharedMetrics,
}

impl ObserveLayer {
    /// Records into `metrics`.
    pub fn new(metrics: SharedMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Traces and measures each call.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: SharedMetrics,
}

fn untraced(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// A server span for the call to `path`, child of the remote parent in
/// `headers` when there is one.
pub fn server_span(path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    dondoc_telemetry::set_remote_parent(&span, headers);
    span
}

/// Records the final status on a server span.
pub fn record_status(span: &tracing::Span, code: Code) {
    span.record("rpc.grpc.status_code", code as i32);
    // Server-side errors, as the OpenTelemetry gRPC conventions classify them.
    let error = matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    );
    if error {
        span.record("otel.status_code", "ERROR");
    }
}

impl<S, B> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let span = if untraced(&path) {
            tracing::Span::none()
        } else {
            server_span(&path, request.headers())
        };
        let stream = self
            .metrics
            .is_stream(&path)
            .then(|| self.metrics.stream_started(&path));
        let metrics = self.metrics.clone();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = future.await?;
                let (parts, body) = response.into_parts();
                let header_code = grpc_code(&parts.headers);
                let body = ObservedBody {
                    inner: body,
                    span: tracing::Span::current(),
                    metrics,
                    path,
                    started,
                    header_code,
                    _stream: stream,
                    finished: false,
                };
                Ok(http::Response::from_parts(
                    parts,
                    crate::body::status_body(body),
                ))
            }
            .instrument(span),
        )
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map(Code::from)
}

/// The response body, passed through; records the call at its end.
struct ObservedBody {
    inner: Body,
    span: tracing::Span,
    metrics: SharedMetrics,
    path: String,
    started: Instant,
    header_code: Option<Code>,
    _stream: Option<StreamGuard>,
    finished: bool,
}

impl ObservedBody {
    fn finish(&mut self, code: Code) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.metrics
            .observe(&self.path, code, self.started.elapsed());
        record_status(&self.span, code);
        // The span ends when the body (its last handle) is dropped.
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        let code = self.header_code.unwrap_or(Code::Cancelled);
        self.finish(code);
    }
}

impl http_body::Body for ObservedBody {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.span.enter();
            Pin::new(&mut this.inner).poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or(Code::Unknown);
                    this.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Code::Internal),
            Poll::Ready(None) => {
                let code = this.header_code.unwrap_or(Code::Ok);
                this.finish(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
