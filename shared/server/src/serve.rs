//! Serving: the layer stack composed once, health and reflection for every
//! server, and a drain on shutdown bounded by a grace period.

use std::net::SocketAddr;
use std::time::Duration;

use dondoc_identity::{AssertionVerifier, RequireAssertionLayer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A bound listener waiting for its routes. Binding first lets callers learn
/// the port (port 0 in tests) before serving starts.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    shutdown: CancellationToken,
    grace: Duration,
}

/// What a service hands to [`Server::serve`].
#[derive(Debug)]
pub struct ServerParts {
    /// The service's own gRPC services.
    pub routes: Routes,
    /// Their fully qualified names, reported by the health service.
    pub service_names: Vec<&'static str>,
    /// Requires the gateway's assertion on every non-public call; `None`
    /// only for the gateway itself, which authenticates callers otherwise.
    pub verifier: Option<AssertionVerifier>,
}

impl Server {
    /// Binds `addr`. Serving stops when `shutdown` is cancelled.
    pub async fn bind(
        addr: SocketAddr,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            shutdown,
            grace,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until shutdown, then drains in-flight calls for at most the
    /// grace period. Health turns NOT_SERVING as soon as the drain starts, so
    /// load balancers stop sending new calls.
    pub async fn serve(self, parts: ServerParts) -> Result<(), ServeError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        set_all(&reporter, &parts.service_names, ServingStatus::Serving).await;
        let routes = with_reflection(parts.routes.add_service(health))?;
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let shutdown = self.shutdown.clone();
        let names = parts.service_names.clone();
        let signal = async move {
            shutdown.cancelled().await;
            set_all(&reporter, &names, ServingStatus::NotServing).await;
        };
        let builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)));
        let serving = async move {
            match parts.verifier {
                Some(verifier) => {
                    builder
                        .layer(RequireAssertionLayer::new(verifier))
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
                None => {
                    let mut builder = builder;
                    builder
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
            }
        };
        tokio::pin!(serving);
        let grace = self.grace;
        let shutdown = self.shutdown;
        tokio::select! {
            result = &mut serving => result.map_err(ServeError::Transport),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(addr = %self.addr, ?grace, "calls still running after the grace period; closing them");
                Ok(())
            }
        }
    }
}

async fn set_all(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    // The empty name is the server as a whole.
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// Adds reflection over every dondoc descriptor and the health service, in
/// both protocol versions: grpcurl speaks only v1alpha, buf curl prefers v1.
pub fn with_reflection(routes: Routes) -> Result<Routes, ServeError> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dondoc_contracts::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dondoc_contracts::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(routes.add_service(v1).add_service(v1alpha))
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error(transparent)]
    Transport(tonic::transport::Error),
    /// The descriptors could not be loaded for reflection.
    #[error(transparent)]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
