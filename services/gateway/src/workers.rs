//! The serving threads. Each runs a single-threaded runtime with its own
//! HTTP/2 server and its own connections to the backends, so that a call is
//! read, checked, forwarded and answered on one thread, as in nginx's worker
//! processes; [`crate::tls::deal`] hands them the callers' connections in
//! turn. What must be one for the whole gateway (limits, caches, metrics)
//! is shared through the [`Proxy`] they are given. With no thread of its
//! own, one worker serves on the gateway's runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower_http::cors::CorsLayer;

use crate::proxy::Proxy;
use crate::{CLOSE_TIMEOUT, GatewayError, compose, tls};

/// Thread `index` of `threads`'s share of `total` connections to each
/// backend: as even as may be, at least one.
pub(crate) fn share(total: usize, threads: usize, index: usize) -> usize {
    (total / threads + usize::from(index < total % threads)).max(1)
}

/// One serving thread, before it starts.
pub(crate) struct Worker {
    pub(crate) index: usize,
    /// The connections dealt to this thread.
    pub(crate) dealt: mpsc::Receiver<std::net::TcpStream>,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) cors: CorsLayer,
    /// Health and reflection, served by the gateway itself.
    pub(crate) local: Routes,
    /// The proxy, calling through this thread's backend connections
    /// (driven by this thread's runtime).
    pub(crate) proxy: Proxy,
    /// Cancelled when the drain starts: the grace period begins.
    pub(crate) draining: CancellationToken,
    /// Cancelled when the grace period is over: running calls end.
    pub(crate) closing: CancellationToken,
    pub(crate) grace: Duration,
}

/// The runtime of a serving thread.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, GatewayError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Worker)
}

impl Worker {
    /// Serves on the current runtime; the receiver gets how serving ended.
    pub(crate) fn spawn_here(self) -> oneshot::Receiver<Result<(), GatewayError>> {
        let (done, result) = oneshot::channel();
        tokio::spawn(async move {
            let _ = done.send(self.serve().await);
        });
        result
    }

    /// Starts a thread serving on `runtime` (from [`runtime`]); the
    /// receiver gets how serving ended (nothing if the thread panicked).
    pub(crate) fn spawn_thread(
        self,
        runtime: tokio::runtime::Runtime,
    ) -> Result<oneshot::Receiver<Result<(), GatewayError>>, GatewayError> {
        let (done, result) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("dondoc-gateway-{}", self.index))
            .spawn(move || {
                let _ = done.send(runtime.block_on(self.serve()));
            })
            .map_err(GatewayError::Worker)?;
        Ok(result)
    }

    /// Serves the dealt connections until the drain, then lets calls finish
    /// for the grace period and ends those still running.
    async fn serve(self) -> Result<(), GatewayError> {
        let Worker {
            dealt,
            addr,
            tls,
            cors,
            local,
            proxy,
            draining,
            closing,
            grace,
            ..
        } = self;
        let routes = compose(local, proxy);
        let serving = tonic::transport::Server::builder()
            .accept_http1(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(cors)
            .layer(tonic_web::GrpcWebLayer::new())
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tls::incoming(dealt, tls),
                draining.clone().cancelled_owned(),
            );
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result.map_err(GatewayError::Transport),
            _ = async { draining.cancelled().await; tokio::time::sleep(grace).await } => {}
        }
        tracing::warn!(%addr, ?grace, "calls still running after the grace period; ending them");
        closing.cancel();
        match tokio::time::timeout(CLOSE_TIMEOUT, serving).await {
            Ok(result) => result.map_err(GatewayError::Transport),
            Err(_) => {
                tracing::warn!(%addr, "connections still open; stopped waiting for them");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn connections_are_shared_out_evenly_and_every_thread_gets_one() {
        let shares = |total, threads| {
            (0..threads)
                .map(|i| share(total, threads, i))
                .collect::<Vec<_>>()
        };
        assert_eq!(shares(3, 2), [2, 1]);
        assert_eq!(shares(8, 2), [4, 4]);
        assert_eq!(shares(2, 4), [1, 1, 1, 1]);
        assert_eq!(shares(5, 1), [5]);
    }
}
