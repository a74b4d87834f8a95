//! The transparent proxy: every call the gateway does not serve itself.
//!
//! Messages are never decoded. For each call the proxy routes on the path's
//! package, sheds load beyond the concurrency limit, authenticates the
//! caller, applies [`crate::policy`] and the caller's rate limit, reads the
//! request (bounded by the message size limit), strips the caller's identity
//! metadata, adds the signed assertion of the principal, the remaining deadline and the
//! trace context, and streams the response back frame by frame, with its
//! trailers and any error details unchanged. Reads answered UNAVAILABLE
//! before any response are retried.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use dondoc_errors::{ERROR_DOMAIN, Error};
use dondoc_identity::{ASSERTION_HEADER, AssertionCache};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Code;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic_types::{ErrorDetails, StatusExt};
use tower::Service;
use tracing::Instrument as _;

use crate::auth::{API_KEY_HEADER, Authenticator, Peer};
use crate::connections::{BoxError, ConnectionPool};
use crate::extras::Limits;
use crate::limits::{Methods, RateLimiter, TraceContext, format_timeout, parse_timeout};
use crate::metrics::{InFlight, Metrics, code_name};
use crate::policy;
use crate::tls::ConnInfo;

/// Every metadata key starting with this is dondoc's own and is never
/// accepted from a caller.
const IDENTITY_PREFIX: &str = "x-dondoc-";

/// Credentials and identity claims a caller may send, never forwarded.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    API_KEY_HEADER,
    "cookie",
    "x-forwarded-client-cert",
    "x-client-cert",
];

/// HTTP/1.1 connection headers (gRPC-Web) that HTTP/2 forbids, and headers
/// that no longer describe the re-framed request.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// One backend service, the packages it serves and where it listens.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    /// Short name used in messages and logs: "directives".
    pub(crate) name: &'static str,
    /// Path prefix of its methods: "/dondoc.directives.v1.".
    pub(crate) prefix: &'static str,
    /// The fully qualified services it serves.
    pub(crate) services: &'static [&'static str],
    /// Where it listens.
    pub(crate) uri: http::Uri,
}

/// A backend and the connections one serving thread keeps to it.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) backend: Backend,
    pub(crate) pool: ConnectionPool,
}

impl Upstream {
    /// `connections` connections to `backend`, each opened when first used
    /// and driven by `runtime`, whoever uses it.
    pub(crate) fn connect_lazy(
        backend: &Backend,
        connections: usize,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        Self {
            backend: backend.clone(),
            pool: ConnectionPool::lazy(&backend.uri, connections, runtime),
        }
    }
}

/// Removes every identity and credential the caller sent.
pub(crate) fn strip_identity(headers: &mut HeaderMap) {
    for name in CREDENTIAL_HEADERS.iter().chain(HOP_HEADERS) {
        headers.remove(*name);
    }
    headers.remove(ASSERTION_HEADER);
    let ours: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
}

/// The proxy service, the gateway's fallback route: what every serving
/// thread shares (credentials, caches, limits, metrics) and the connections
/// of the thread it serves on.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    upstreams: Arc<[Upstream]>,
}

struct Shared {
    auth: Authenticator,
    /// The signed assertion of each recent principal.
    assertions: AssertionCache,
    /// Cancelled when the grace period after shutdown is over: calls still
    /// running end with UNAVAILABLE so that callers reconnect elsewhere.
    closing: CancellationToken,
    limits: Limits,
    limiter: RateLimiter,
    permits: Arc<Semaphore>,
    methods: Methods,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy with no upstream yet: see [`Proxy::with_upstreams`].
    pub(crate) fn new(
        auth: Authenticator,
        assertions: AssertionCache,
        closing: CancellationToken,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            upstreams: Arc::from(Vec::new()),
            shared: Arc::new(Shared {
                auth,
                assertions,
                closing,
                limiter: RateLimiter::new(limits.rate_per_second, limits.burst),
                permits: Arc::new(Semaphore::new(limits.max_concurrent_calls.max(1))),
                limits,
                methods: Methods::from_contracts(),
                metrics,
            }),
        }
    }

    /// The same proxy (one rate limiter, one concurrency cap, one assertion
    /// cache for the whole gateway) calling through `upstreams`.
    pub(crate) fn with_upstreams(&self, upstreams: Vec<Upstream>) -> Self {
        Self {
            shared: self.shared.clone(),
            upstreams: upstreams.into(),
        }
    }
}

impl<B> Service<http::Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is per backend, awaited inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        let upstreams = self.upstreams.clone();
        Box::pin(async move { Ok(shared.handle(&upstreams, request.map(Body::new)).await) })
    }
}

/// What a call holds until its response ends.
struct Held {
    _permit: OwnedSemaphorePermit,
    _call: InFlight,
    _stream: Option<InFlight>,
}

/// The upstream serving `path`'s package.
fn route<'a>(upstreams: &'a [Upstream], path: &str) -> Option<&'a Upstream> {
    upstreams
        .iter()
        .find(|u| path.starts_with(u.backend.prefix))
}

impl Shared {
    /// One call: a server span (the child of the caller's `traceparent`,
    /// the parent of the backend's) around everything the gateway does.
    async fn handle(
        &self,
        upstreams: &[Upstream],
        request: http::Request<Body>,
    ) -> http::Response<Body> {
        let span = dondoc_server::observe::server_span(request.uri().path(), request.headers());
        // With tracing on, the backend's parent is the gateway's span;
        // without a subscriber, a context of the gateway's own.
        let trace = TraceContext::from_span(&dondoc_telemetry::traceparent_of(&span))
            .unwrap_or_else(|| {
                TraceContext::from_header(header_text(request.headers(), "traceparent").as_deref())
            });
        self.handle_in(upstreams, request, trace, span.clone())
            .instrument(span)
            .await
    }

    async fn handle_in(
        &self,
        upstreams: &[Upstream],
        request: http::Request<Body>,
        trace: TraceContext,
        span: tracing::Span,
    ) -> http::Response<Body> {
        let started = Instant::now();
        let mut log = AccessLog {
            span,
            peer: request
                .extensions()
                .get::<ConnInfo>()
                .and_then(|info| info.remote),
            subject: None,
            auth: None,
            method: request.uri().path().to_owned(),
            request_id: header_text(request.headers(), "x-request-id"),
            trace_id: trace.trace_id.clone(),
            started,
            metrics: self.metrics.clone(),
        };
        let Some(Upstream { backend, pool }) = route(upstreams, &log.method) else {
            let status = unknown_method(&log.method);
            return log.refuse(status);
        };
        // Shed first: an overloaded gateway spends nothing on a call it refuses.
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.shed();
            return log.refuse(overloaded());
        };
        let call = self.metrics.call_started();

        let client_cert = request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|info| info.client_cert.clone());
        let peer = Peer {
            client_cert: client_cert.as_deref().map(|der| der.as_ref()),
        };
        let principal = match self.auth.authenticate(request.headers(), &peer).await {
            Ok((principal, method)) => {
                log.auth = Some(method.as_str());
                principal
            }
            Err(error) => return log.refuse(error.into()),
        };
        log.subject = Some(principal.subject.clone());
        if let Err(error) = policy::allowed(&log.method, &principal.roles) {
            return log.refuse(error.into());
        }
        if let Err(wait) = self.limiter.check(&principal.subject) {
            self.metrics.rate_limited(&log.method);
            return log.refuse(rate_limited(wait, &self.limits));
        }

        // The deadline: the caller's, at most the maximum for unary calls,
        // which get the maximum when they set none.
        let is_stream = self.methods.is_stream(&log.method);
        let asked = header_text(request.headers(), "grpc-timeout")
            .as_deref()
            .and_then(parse_timeout);
        let timeout = if is_stream {
            asked
        } else {
            Some(asked.map_or(self.limits.max_deadline, |t| {
                t.min(self.limits.max_deadline)
            }))
        };
        let deadline = timeout.map(|t| started + t);

        let (mut parts, body) = request.into_parts();
        let message = match read_message(body, self.limits.max_message_bytes, deadline).await {
            Ok(message) => message,
            Err(status) => return log.refuse(status),
        };
        strip_identity(&mut parts.headers);
        parts
            .headers
            .insert(ASSERTION_HEADER, self.assertions.assertion_for(&principal));
        if let Ok(value) = HeaderValue::from_str(&trace.header()) {
            parts.headers.insert("traceparent", value);
        }
        let held = Held {
            _permit: permit,
            _call: call,
            _stream: is_stream.then(|| self.metrics.stream_started()),
        };

        let retryable = Methods::is_read(&log.method);
        let mut attempt = 0;
        loop {
            // Only an attempt that may be retried needs to keep the headers.
            let mut headers = if retryable && attempt < self.limits.max_retries {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            if let Some(deadline) = deadline {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return log.refuse(deadline_exceeded(timeout));
                }
                if let Ok(value) = HeaderValue::from_str(&format_timeout(remaining)) {
                    headers.insert("grpc-timeout", value);
                }
            }
            let mut upstream = http::Request::new(Body::new(Full::new(message.clone())));
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = parts.uri.clone();
            *upstream.version_mut() = http::Version::HTTP_2;
            *upstream.headers_mut() = headers;

            let connection = pool.connection();
            let send = async move { connection.send(upstream).await };
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), send).await {
                    Ok(result) => result,
                    Err(_) => return log.refuse(deadline_exceeded(timeout)),
                },
                None => send.await,
            };
            // The channel enforces the grpc-timeout it forwards: an error
            // at the deadline is the deadline, not an unavailable backend.
            let expired = deadline.is_some_and(|d| Instant::now() + Duration::from_millis(5) >= d);
            if result.is_err() && expired {
                return log.refuse(deadline_exceeded(timeout));
            }
            let unavailable = match &result {
                Err(_) => true,
                Ok(response) => grpc_code(response.headers()) == Some(Code::Unavailable),
            };
            if unavailable && retryable && attempt < self.limits.max_retries {
                let backoff = Duration::from_millis(25 << attempt.min(6));
                if deadline.is_none_or(|d| Instant::now() + backoff < d) {
                    attempt += 1;
                    self.metrics.retried();
                    tracing::debug!(
                        service = backend.name,
                        attempt,
                        "retrying a read after UNAVAILABLE"
                    );
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
            return match result {
                Ok(response) => log.forward(response, backend.name, &self.closing, held),
                Err(error) => {
                    tracing::warn!(service = backend.name, %error, "backend unreachable");
                    log.refuse(unavailable_status(backend.name, "cannot be reached"))
                }
            };
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The request's bytes, refused with RESOURCE_EXHAUSTED as soon as a
/// message is larger than `limit` (its gRPC length prefix says so before
/// the message arrives), and with DEADLINE_EXCEEDED when it takes too long.
async fn read_message(
    mut body: Body,
    limit: usize,
    deadline: Option<Instant>,
) -> Result<Bytes, Status> {
    let read = async {
        // A small request arrives in one frame: kept as it is, not copied.
        let mut first: Option<Bytes> = None;
        let mut buffer = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| Status::cancelled("the request stream ended abruptly"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let received = match first.take() {
                None if buffer.is_empty() => {
                    first = Some(data);
                    first.as_deref().unwrap_or_default()
                }
                earlier => {
                    if let Some(earlier) = earlier {
                        buffer.extend_from_slice(&earlier);
                    }
                    buffer.extend_from_slice(&data);
                    &buffer[..]
                }
            };
            if let Some(prefix) = received.get(1..5) {
                let declared = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                if usize::try_from(declared).map_or(true, |d| d > limit) {
                    return Err(too_large(Some(declared), limit));
                }
            }
            if received.len() > limit.saturating_add(5) {
                return Err(too_large(None, limit));
            }
        }
        Ok(first.unwrap_or_else(|| Bytes::from(buffer)))
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), read)
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(None))),
        None => read.await,
    }
}

/// A status with `ErrorInfo` (and `RetryInfo` when `retry` is set).
fn refusal(code: Code, reason: &str, message: String, retry: Option<Duration>) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    if let Some(retry) = retry {
        details.set_retry_info(Some(retry));
    }
    Status::with_error_details(code, message, details)
}

fn rate_limited(wait: Duration, limits: &Limits) -> Status {
    let wait = wait.max(Duration::from_millis(1));
    refusal(
        Code::ResourceExhausted,
        "RATE_LIMITED",
        format!(
            "too many calls: each caller may make {} calls per second (bursts of {}); retry in {} ms",
            limits.rate_per_second,
            limits.burst,
            wait.as_millis().max(1)
        ),
        Some(wait),
    )
}

fn overloaded() -> Status {
    refusal(
        Code::Unavailable,
        "OVERLOADED",
        "the gateway is overloaded; retry later".into(),
        Some(Duration::from_secs(1)),
    )
}

fn too_large(declared: Option<u32>, limit: usize) -> Status {
    let size = declared.map_or_else(|| "larger than".to_owned(), |d| format!("{d} bytes;"));
    refusal(
        Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
        format!("the request message is {size} the gateway accepts at most {limit} bytes"),
        None,
    )
}

fn deadline_exceeded(timeout: Option<Duration>) -> Status {
    let message = match timeout {
        Some(t) => format!(
            "the call did not finish within its deadline of {} ms",
            t.as_millis()
        ),
        None => "the call did not finish within its deadline".to_owned(),
    };
    refusal(Code::DeadlineExceeded, "DEADLINE_EXCEEDED", message, None)
}

fn unavailable_status(service: &str, what: &str) -> Status {
    Error::Unavailable(format!("the {service} service {what}; retry later")).into()
}

/// UNIMPLEMENTED for a path no backend serves, with the shared error
/// details and a message naming the path.
fn unknown_method(path: &str) -> Status {
    let shared = Status::from(Error::Unimplemented("this method"));
    Status::with_details(
        shared.code(),
        format!(
            "unknown method {path}: the gateway serves dondoc.directives.v1, \
             dondoc.assignments.v1, dondoc.notifications.v1, grpc.health.v1 and gRPC reflection"
        ),
        Bytes::copy_from_slice(shared.details()),
    )
}

/// The grpc-status in a header or trailer map.
fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map(Code::from)
}

/// What the access log records of one call.
struct AccessLog {
    /// The call's server span; ends with the response.
    span: tracing::Span,
    peer: Option<std::net::SocketAddr>,
    subject: Option<String>,
    auth: Option<&'static str>,
    method: String,
    request_id: Option<String>,
    trace_id: String,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    fn emit(&self, code: Code) {
        let elapsed = self.started.elapsed();
        self.metrics.observe(&self.method, code, elapsed);
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        dondoc_server::observe::record_status(&self.span, code);
        let _entered = self.span.enter();
        tracing::info!(
            target: "dondoc_gateway::access",
            principal = self.subject.as_deref().unwrap_or("-"),
            auth = self.auth.unwrap_or("-"),
            method = %self.method,
            code = ?code,
            status = code_name(code),
            grpc_status = code as i32,
            latency_ms,
            request_id = self.request_id.as_deref().unwrap_or("-"),
            trace_id = %self.trace_id,
            peer = %self.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            "call",
        );
    }

    /// Answers the call with `status` without reaching a backend.
    fn refuse(self, status: Status) -> http::Response<Body> {
        self.emit(status.code());
        status.into_http()
    }

    /// Hands the backend's response back, logging when its stream ends.
    fn forward(
        self,
        response: http::Response<Body>,
        service: &'static str,
        closing: &CancellationToken,
        held: Held,
    ) -> http::Response<Body> {
        let (parts, body) = response.into_parts();
        let header_code = grpc_code(&parts.headers);
        let body = LoggedBody {
            inner: body,
            log: Some(self),
            held: Some(held),
            header_code,
            service,
            closing: Box::pin(closing.clone().cancelled_owned()),
            ended: false,
        };
        http::Response::from_parts(parts, dondoc_server::body::status_body(body))
    }
}

/// The backend's response body, passed through frame by frame. It logs the
/// call once, at its end, and turns a backend failing mid-call, or the end
/// of the gateway's grace period, into proper UNAVAILABLE trailers instead
/// of a reset stream.
struct LoggedBody {
    inner: Body,
    log: Option<AccessLog>,
    /// The concurrency permit and in-flight gauges, released at the end.
    held: Option<Held>,
    /// A trailers-only response carries its status in the headers.
    header_code: Option<Code>,
    service: &'static str,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl LoggedBody {
    fn finish(&mut self, code: Code) {
        self.held = None;
        if let Some(log) = self.log.take() {
            log.emit(code);
        }
    }

    /// Ends the call with `status` in trailers.
    fn end_with(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.ended = true;
        self.finish(status.code());
        let mut trailers = HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Dropped before its end: the caller went away (or the response was
        // trailers-only and never polled).
        let code = self.header_code.unwrap_or(Code::Cancelled);
        self.finish(code);
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.closing.as_mut().poll(cx).is_ready() {
            let status = Error::Unavailable("the gateway is shutting down; call again".into());
            return this.end_with(status.into());
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or(Code::Unknown);
                    this.finish(code);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                tracing::warn!(service = this.service, %error, "backend failed during a call");
                this.end_with(unavailable_status(this.service, "ended the call abruptly"))
            }
            None => {
                this.ended = true;
                let code = this.header_code.unwrap_or(Code::Unknown);
                this.finish(code);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_metadata_is_stripped_and_the_rest_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        headers.insert("x-api-key", "secret".parse().unwrap());
        headers.insert("connection", "keep-alive".parse().unwrap());
        headers.insert("x-dondoc-assertion", "forged".parse().unwrap());
        headers.insert("x-dondoc-principal", "users/admin".parse().unwrap());
        headers.insert("x-request-id", "r-1".parse().unwrap());
        headers.insert("grpc-timeout", "5S".parse().unwrap());
        strip_identity(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["grpc-timeout", "x-request-id"]);
    }

    #[test]
    fn unknown_methods_name_the_path() {
        let status = unknown_method("/foo.Bar/Baz");
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains("/foo.Bar/Baz"));
    }
}
