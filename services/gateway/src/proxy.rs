//! The transparent proxy: every call the gateway does not serve itself.
//!
//! Messages are never decoded. For each call the proxy routes on the path's
//! package, authenticates the bearer token, applies [`crate::policy`], strips
//! the caller's identity metadata, adds a fresh signed assertion and streams
//! the call both ways over a pooled HTTP/2 channel to the backend, handing
//! back the response, its trailers and any error details unchanged.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use dondoc_errors::Error;
use dondoc_identity::{ASSERTION_HEADER, AssertionSigner};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Code;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt};

use crate::auth::Authenticator;
use crate::policy;

/// How long connecting to a backend may take before the call gets
/// UNAVAILABLE. Backends sit next to the gateway: a healthy one connects in
/// milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Every metadata key starting with this is dondoc's own and is never
/// accepted from a caller.
const IDENTITY_PREFIX: &str = "x-dondoc-";

/// One backend service and the packages it serves.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    /// Short name used in messages and logs: "directives".
    pub(crate) name: &'static str,
    /// Path prefix of its methods: "/dondoc.directives.v1.".
    pub(crate) prefix: &'static str,
    /// The fully qualified services it serves.
    pub(crate) services: &'static [&'static str],
    /// The pooled, lazily connected HTTP/2 channel to it.
    pub(crate) channel: Channel,
}

/// A lazily connected channel to `uri`.
pub(crate) fn connect_lazy(uri: http::Uri) -> Channel {
    Endpoint::from(uri)
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_lazy()
}

/// Removes every identity the caller asserted about itself.
pub(crate) fn strip_identity(headers: &mut HeaderMap) {
    headers.remove(http::header::AUTHORIZATION);
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

/// The proxy service, the gateway's fallback route.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backends: Vec<Backend>,
    auth: Authenticator,
    signer: AssertionSigner,
    /// Cancelled when the grace period after shutdown is over: calls still
    /// running end with UNAVAILABLE so that callers reconnect elsewhere.
    closing: CancellationToken,
}

impl Proxy {
    pub(crate) fn new(
        backends: Vec<Backend>,
        auth: Authenticator,
        signer: AssertionSigner,
        closing: CancellationToken,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                backends,
                auth,
                signer,
                closing,
            }),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        Box::pin(async move { Ok(shared.handle(request.map(Body::new)).await) })
    }
}

impl Shared {
    fn route(&self, path: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| path.starts_with(b.prefix))
    }

    async fn handle(&self, request: http::Request<Body>) -> http::Response<Body> {
        let mut log = AccessLog {
            subject: None,
            method: request.uri().path().to_owned(),
            request_id: request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            started: Instant::now(),
        };
        let Some(backend) = self.route(&log.method) else {
            let status = unknown_method(&log.method);
            return log.refuse(status);
        };
        let principal = match self.auth.authenticate(request.headers()) {
            Ok(principal) => principal,
            Err(error) => return log.refuse(error.into()),
        };
        log.subject = Some(principal.subject.clone());
        if let Err(error) = policy::allowed(&log.method, &principal.roles) {
            return log.refuse(error.into());
        }

        let (mut parts, body) = request.into_parts();
        strip_identity(&mut parts.headers);
        match HeaderValue::from_str(&self.signer.sign(&principal)) {
            Ok(assertion) => {
                parts.headers.insert(ASSERTION_HEADER, assertion);
            }
            Err(error) => return log.refuse(Error::internal(error).into()),
        }
        // Server-side extensions (connection info…) are not the backend's business.
        parts.extensions = http::Extensions::new();
        let upstream = http::Request::from_parts(parts, body);

        let mut channel = backend.channel.clone();
        let result = match channel.ready().await {
            Ok(ready) => ready.call(upstream).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(response) => log.forward(response, backend.name, &self.closing),
            Err(error) => {
                tracing::warn!(service = backend.name, %error, "backend unreachable");
                log.refuse(unavailable(backend.name, "cannot be reached"))
            }
        }
    }
}

fn unavailable(service: &str, what: &str) -> Status {
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
    subject: Option<String>,
    method: String,
    request_id: Option<String>,
    started: Instant,
}

impl AccessLog {
    fn emit(&self, code: Code) {
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "dondoc_gateway::access",
            principal = self.subject.as_deref().unwrap_or("-"),
            method = %self.method,
            code = ?code,
            grpc_status = code as i32,
            latency_ms,
            request_id = self.request_id.as_deref().unwrap_or("-"),
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
    ) -> http::Response<Body> {
        let (parts, body) = response.into_parts();
        let header_code = grpc_code(&parts.headers);
        let body = LoggedBody {
            inner: body,
            log: Some(self),
            header_code,
            service,
            closing: Box::pin(closing.clone().cancelled_owned()),
            ended: false,
        };
        http::Response::from_parts(parts, Body::new(body))
    }
}

/// The backend's response body, passed through frame by frame. It logs the
/// call once, at its end, and turns a backend failing mid-call, or the end
/// of the gateway's grace period, into proper UNAVAILABLE trailers instead
/// of a reset stream.
struct LoggedBody {
    inner: Body,
    log: Option<AccessLog>,
    /// A trailers-only response carries its status in the headers.
    header_code: Option<Code>,
    service: &'static str,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl LoggedBody {
    fn finish(&mut self, code: Code) {
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
                this.end_with(unavailable(this.service, "ended the call abruptly"))
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
