//! Serving: the layer stack composed once (observe: trace span and RPC
//! metrics; then identity), health and reflection for every server,
//! readiness (database, upstream streams) reflected in gRPC health and on
//! the admin listener, and a drain on shutdown bounded by a grace period.

use std::net::SocketAddr;
use std::time::Duration;

use dondoc_identity::{AssertionVerifier, RequireAssertionLayer};
use tokio::net::TcpListener;

use crate::admin::{Readiness, ReadinessSettings};
use crate::metrics::{Metrics, SharedMetrics};
use crate::observe::ObserveLayer;
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
    metrics: SharedMetrics,
    readiness: Readiness,
    database: Option<sqlx::PgPool>,
    admin: Option<(TcpListener, SocketAddr)>,
}

/// The gRPC health name that reports readiness: SERVING while the database
/// answers, upstream streams are open and no drain has started. The
/// server's own name `""` is liveness: SERVING until the drain.
pub const READINESS_SERVICE: &str = "dondoc.readiness";

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
            metrics: Metrics::new(),
            readiness: Readiness::default(),
            database: None,
            admin: None,
        })
    }

    /// Binds the admin listener (`/metrics`, `/healthz`, `/readyz`) too,
    /// when `addr` is given, and applies the readiness settings.
    pub async fn with_admin(
        mut self,
        addr: Option<SocketAddr>,
        readiness: ReadinessSettings,
    ) -> std::io::Result<Self> {
        self.readiness.set_settings(readiness);
        if let Some(addr) = addr {
            let listener = TcpListener::bind(addr).await?;
            let bound = listener.local_addr()?;
            self.admin = Some((listener, bound));
        }
        Ok(self)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// The service's metrics, to register collectors and counters on.
    pub fn metrics(&self) -> SharedMetrics {
        self.metrics.clone()
    }

    /// What readiness depends on, to add consumers to.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Checks `pool` periodically for readiness and reports its use.
    pub fn watch_database(&mut self, pool: sqlx::PgPool) {
        crate::metrics::pool_collector(&self.metrics, pool.clone());
        self.database = Some(pool);
    }

    /// Serves until shutdown, then drains in-flight calls for at most the
    /// grace period. Health turns NOT_SERVING as soon as the drain starts, so
    /// load balancers stop sending new calls.
    pub async fn serve(self, parts: ServerParts) -> Result<(), ServeError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut names = parts.service_names.clone();
        names.push(READINESS_SERVICE);
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        set_all(&reporter, &names, ServingStatus::Serving).await;
        // Admin stays up through the drain; stops when serving ends.
        let stopped = CancellationToken::new();
        let _stop_admin = stopped.clone().drop_guard();
        if let Some((listener, addr)) = self.admin {
            tracing::info!(%addr, "admin listening (/metrics, /healthz, /readyz)");
            tokio::spawn(crate::admin::serve_admin(
                listener,
                self.metrics.clone(),
                self.readiness.clone(),
                stopped.clone(),
            ));
        }
        tokio::spawn(watch_readiness(
            self.readiness.clone(),
            self.database.clone(),
            reporter.clone(),
            names.clone(),
            self.shutdown.clone(),
        ));
        let routes = with_reflection(parts.routes.add_service(health))?;
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let shutdown = self.shutdown.clone();
        let readiness = self.readiness.clone();
        let signal = async move {
            shutdown.cancelled().await;
            readiness.set_draining();
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            set_all(&reporter, &names, ServingStatus::NotServing).await;
        };
        let builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)));
        let observe = ObserveLayer::new(self.metrics.clone());
        let serving = async move {
            match parts.verifier {
                Some(verifier) => {
                    builder
                        .layer(observe)
                        .layer(RequireAssertionLayer::new(verifier))
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
                None => {
                    builder
                        .layer(observe)
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
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// Checks the database every interval and turns the service names and
/// [`READINESS_SERVICE`] NOT_SERVING while not ready (the server's `""`
/// stays SERVING: liveness).
async fn watch_readiness(
    readiness: Readiness,
    database: Option<sqlx::PgPool>,
    reporter: HealthReporter,
    names: Vec<&'static str>,
    shutdown: CancellationToken,
) {
    let settings = readiness.settings();
    let mut interval = tokio::time::interval(settings.database_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ready = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Some(pool) = &database {
            let check = sqlx::query("SELECT 1").execute(pool);
            let up = matches!(
                tokio::time::timeout(settings.database_timeout, check).await,
                Ok(Ok(_))
            );
            readiness.set_database_down(!up);
        }
        if shutdown.is_cancelled() {
            return;
        }
        let ready = readiness.check();
        if ready.is_ok() != last_ready {
            match &ready {
                Ok(()) => tracing::info!("ready again"),
                Err(reason) => tracing::warn!(%reason, "not ready"),
            }
            last_ready = ready.is_ok();
            let status = if last_ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_all(&reporter, &names, status).await;
        }
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
