//! A backend that answers any path: after verifying the gateway's assertion
//! (with `RequireAssertionLayer`, as the real services do), it records the
//! call's metadata and answers one empty message with OK, or UNAVAILABLE
//! while `fail_next` is above zero, after `delay`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dondoc_identity::{AssertionVerifier, Principal, RequireAssertionLayer};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tower::{Layer, ServiceExt};

/// What the backend saw, and how it should answer.
#[derive(Clone, Default)]
pub struct Recorder {
    /// Path, metadata and verified principal of every call.
    pub calls: Arc<Mutex<Vec<(String, http::HeaderMap, Principal)>>>,
    /// Calls to answer UNAVAILABLE before answering OK again.
    pub fail_next: Arc<AtomicUsize>,
    /// How long to wait before answering.
    pub delay: Arc<Mutex<Duration>>,
    /// TCP connections accepted (the gateway's connections to this backend).
    pub connections: Arc<AtomicUsize>,
    /// The connections (numbered as accepted) that carried proxied calls.
    pub call_connections: Arc<Mutex<HashSet<usize>>>,
}

/// The number of the connection a request arrived on.
#[derive(Clone, Copy)]
struct ConnectionId(usize);

impl Recorder {
    pub fn count(&self, path: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .count()
    }

    pub fn last(&self) -> (String, http::HeaderMap, Principal) {
        self.calls.lock().unwrap().last().cloned().expect("a call")
    }
}

fn answer(code: u8) -> http::Response<Body> {
    if code != 0 {
        // Trailers-only, as tonic answers a handler's error.
        let mut response = http::Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert("grpc-status", code.to_string().parse().unwrap());
        headers.insert("grpc-message", "backend unavailable".parse().unwrap());
        return response;
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", code.to_string().parse().unwrap());
    if code != 0 {
        trailers.insert("grpc-message", "backend unavailable".parse().unwrap());
    }
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
    if code == 0 {
        frames.push(Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))));
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = http::Response::new(Body::new(StreamBody::new(tokio_stream::iter(frames))));
    response
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    response
}

/// Starts the backend on 127.0.0.1, until `shutdown`.
pub async fn start(
    verifier: AssertionVerifier,
    shutdown: CancellationToken,
) -> (SocketAddr, Recorder) {
    let recorder = Recorder::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inner = {
        let recorder = recorder.clone();
        tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let recorder = recorder.clone();
            async move {
                // Health probes (public paths) carry no principal.
                let Some(principal) = request.extensions().get::<Principal>().cloned() else {
                    return Ok(answer(12));
                };
                if let Some(ConnectionId(id)) = request.extensions().get::<ConnectionId>() {
                    recorder.call_connections.lock().unwrap().insert(*id);
                }
                let (parts, body) = request.into_parts();
                let _ = body.collect().await;
                recorder.calls.lock().unwrap().push((
                    parts.uri.path().to_owned(),
                    parts.headers,
                    principal,
                ));
                let delay = *recorder.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let failing = recorder
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                Ok::<_, Infallible>(answer(if failing { 14 } else { 0 }))
            }
        })
    };
    let service = RequireAssertionLayer::new(verifier).layer(inner);
    let connections = recorder.connections.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            let id = connections.fetch_add(1, Ordering::SeqCst);
            let service = TowerToHyperService::new(service.clone().map_request(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectionId(id));
                    request
                },
            ));
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, recorder)
}
