use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::assertion::{ASSERTION_HEADER, AssertionError, AssertionVerifier};

/// Paths served without an identity: health checks and reflection, which
/// probes and operators' tools call without credentials.
pub fn is_public_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Requires a valid assertion on every call but the public ones, and puts
/// the verified [`crate::Principal`] into the request's extensions.
#[derive(Debug, Clone)]
pub struct RequireAssertionLayer {
    verifier: AssertionVerifier,
}

impl RequireAssertionLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: AssertionVerifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for RequireAssertionLayer {
    type Service = RequireAssertion<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireAssertion {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`RequireAssertionLayer`] builds.
#[derive(Debug, Clone)]
pub struct RequireAssertion<S> {
    inner: S,
    verifier: AssertionVerifier,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for RequireAssertion<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !is_public_path(request.uri().path()) {
            let verified = request
                .headers()
                .get(ASSERTION_HEADER)
                .ok_or(AssertionError::Missing)
                .and_then(|v| v.to_str().map_err(|_| AssertionError::Malformed))
                .and_then(|token| self.verifier.verify(token));
            match verified {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(error) => {
                    tracing::debug!(path = request.uri().path(), %error, "call refused");
                    let status = tonic::Status::from(dondoc_errors::Error::Unauthenticated {
                        reason: "INVALID_ASSERTION",
                        message: error.to_string(),
                    });
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        let future = self.inner.call(request);
        Box::pin(future)
    }
}
