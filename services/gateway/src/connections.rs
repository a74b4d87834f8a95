//! The gateway's HTTP/2 connections to a backend. A call is sent straight
//! into hyper's HTTP/2 client connection from the task serving it, with no
//! queue and no task in between (tonic's `Channel` puts a buffer task in
//! front of each connection: one more hand-over per call, measured in round
//! 9 of BENCHMARKS.md at 3-7 % of the gateway's CPU per call and a few per
//! cent of its added median). Connections are opened on first use and again
//! after they close, within [`CONNECT_TIMEOUT`], always by the runtime the
//! pool is given, whoever uses them first (a health probe from another
//! runtime included): a serving thread's connections stay on its thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::body::Body;

/// What sending a call can fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long connecting to a backend may take before the call gets
/// UNAVAILABLE. Backends sit next to the gateway: a healthy one connects in
/// milliseconds.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on an idle connection, and how long an answer may take
/// before the connection counts as dead.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A few HTTP/2 connections to one backend, used in turn: one connection is
/// one TCP stream and one connection task, through which a busy thread's
/// calls would queue.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionPool {
    connections: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
}

impl ConnectionPool {
    /// `connections` (at least one) connections to `uri`, each opened when
    /// first used and driven by `runtime`.
    pub(crate) fn lazy(
        uri: &http::Uri,
        connections: usize,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        Self {
            connections: (0..connections.max(1))
                .map(|_| Connection::lazy(uri, runtime.clone()))
                .collect(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The connections of all `pools`, used in turn (health probes go
    /// through every serving thread's connections).
    pub(crate) fn joined(pools: &[ConnectionPool]) -> Self {
        Self {
            connections: pools
                .iter()
                .flat_map(|pool| pool.connections.iter().cloned())
                .collect(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The next connection in turn (a retry gets another one).
    pub(crate) fn connection(&self) -> Connection {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.connections[turn % self.connections.len()].clone()
    }
}

/// One HTTP/2 connection to a backend, opened when needed. As a tower
/// service it takes gRPC requests (for the health probes' tonic client).
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    shared: Arc<Slot>,
}

#[derive(Debug)]
struct Slot {
    /// `http`: what each request's URI is rewritten to, with `authority`.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The open connection's sending half, if one is open.
    open: Mutex<Option<SendRequest<Body>>>,
    /// Held while connecting, so that callers who find no open connection
    /// wait for one connection instead of each opening their own.
    connecting: tokio::sync::Mutex<()>,
    /// Connects and drives the connection.
    runtime: tokio::runtime::Handle,
}

impl Connection {
    fn lazy(uri: &http::Uri, runtime: tokio::runtime::Handle) -> Self {
        Self {
            shared: Arc::new(Slot {
                scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
                // Backend URIs are checked to have one when the gateway is built.
                authority: uri
                    .authority()
                    .cloned()
                    .unwrap_or_else(|| http::uri::Authority::from_static("localhost")),
                open: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                runtime,
            }),
        }
    }

    /// Sends `request` (its path kept, its scheme and authority the
    /// backend's) and returns the response head, its body streaming after.
    pub(crate) async fn send(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(self.shared.scheme.clone());
        parts.authority = Some(self.shared.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = http::Uri::from_parts(parts)?;
        let mut sender = self.sender().await?;
        sender.ready().await?;
        Ok(sender.send_request(request).await?.map(Body::new))
    }

    /// The open connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Body>, BoxError> {
        if let Some(open) = self.open() {
            return Ok(open);
        }
        let _turn = self.shared.connecting.lock().await;
        if let Some(open) = self.open() {
            return Ok(open);
        }
        let authority = self.shared.authority.clone();
        let connecting = self
            .shared
            .runtime
            .spawn(async move { tokio::time::timeout(CONNECT_TIMEOUT, connect(authority)).await });
        let sender = connecting
            .await?
            .map_err(|_| format!("connecting to {} timed out", self.shared.authority))??;
        *self.lock() = Some(sender.clone());
        Ok(sender)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SendRequest<Body>>> {
        // The lock guards a plain handle: one held by a panicking thread is
        // still a valid handle.
        self.shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) -> Option<SendRequest<Body>> {
        self.lock().as_ref().filter(|s| !s.is_closed()).cloned()
    }
}

/// Opens an HTTP/2 connection to `authority` and spawns its task on the
/// current runtime.
async fn connect(authority: http::uri::Authority) -> Result<SendRequest<Body>, BoxError> {
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((authority.host(), port)).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%authority, %error, "a backend connection ended");
        }
    });
    Ok(sender)
}

impl tower::Service<http::Request<Body>> for Connection {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness (an open connection with room for a stream) is awaited
        // inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let connection = self.clone();
        Box::pin(async move { connection.send(request).await })
    }
}
