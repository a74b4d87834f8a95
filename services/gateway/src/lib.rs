//! The gateway: dondoc's one public endpoint.
//!
//! It serves gRPC health and reflection (v1 and v1alpha, over every dondoc
//! descriptor) itself, without credentials, and proxies every other call,
//! without decoding it, to the backend owning the method's package:
//!
//! | path prefix                 | backend       |
//! |-----------------------------|---------------|
//! | `/dondoc.directives.v1.`    | directives    |
//! | `/dondoc.assignments.v1.`   | assignments   |
//! | `/dondoc.notifications.v1.` | notifications |
//!
//! Anything else gets UNIMPLEMENTED. A proxied call is authenticated (bearer
//! JWT, see [`JwtConfig`]), checked against the coarse [`policy::POLICY`],
//! stripped of every identity metadata the caller sent (`authorization` and
//! all `x-dondoc-*`), given a fresh assertion signed by the gateway, and
//! streamed both ways to the backend over a pooled HTTP/2 channel. The
//! response, with its trailers and error details, comes back unchanged. Each
//! call leaves one access-log line (target `dondoc_gateway::access`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod health;
pub mod policy;
mod proxy;

use std::net::SocketAddr;
use std::time::Duration;

use dondoc_contracts::service_names;
use dondoc_identity::AssertionSigner;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use auth::{JwtConfig, mint_token};

use crate::auth::Authenticator;
use crate::proxy::{Backend, Proxy};

/// The issuer name services accept assertions about any principal from.
const GATEWAY_ISSUER: &str = "gateway";

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The directives service, e.g. `http://127.0.0.1:50051`.
    pub directives: http::Uri,
    /// The assignments service.
    pub assignments: http::Uri,
    /// The notifications service.
    pub notifications: http::Uri,
    /// How callers' bearer tokens are checked.
    pub jwt: JwtConfig,
    /// Signs the assertions forwarded to the services; its issuer must be
    /// `"gateway"`, the one issuer services accept any principal from.
    pub signer: AssertionSigner,
    /// How long in-flight calls may take to finish once shutdown begins.
    pub shutdown_grace: Duration,
}

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration cannot work.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The descriptors for reflection could not be loaded.
    #[error(transparent)]
    Reflection(#[from] dondoc_server::serve::ServeError),
    /// The HTTP/2 server failed.
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound gateway, ready to serve.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    addr: SocketAddr,
    routes: Routes,
    reporter: HealthReporter,
    backends: Vec<Backend>,
    shutdown: CancellationToken,
    closing: CancellationToken,
    grace: Duration,
}

/// How long to wait for connections to close once the remaining calls have
/// been ended at the end of the grace period.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Gateway {
    /// Checks `config`, prepares the routes and binds the listen address.
    /// Backends are connected lazily, so they may start after the gateway.
    /// Serving stops when `shutdown` is cancelled.
    pub async fn build(
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Result<Gateway, GatewayError> {
        check(&config)?;
        let backends = vec![
            Backend {
                name: "directives",
                prefix: "/dondoc.directives.v1.",
                services: &[
                    service_names::AGENCY,
                    service_names::DIRECTIVE,
                    service_names::DIRECTIVE_EVENTS,
                ],
                channel: proxy::connect_lazy(config.directives),
            },
            Backend {
                name: "assignments",
                prefix: "/dondoc.assignments.v1.",
                services: &[
                    service_names::TASK,
                    service_names::STATISTICS,
                    service_names::INDICATOR,
                    service_names::TASK_EVENTS,
                ],
                channel: proxy::connect_lazy(config.assignments),
            },
            Backend {
                name: "notifications",
                prefix: "/dondoc.notifications.v1.",
                services: &[service_names::NOTIFICATION, service_names::SUBSCRIPTION],
                channel: proxy::connect_lazy(config.notifications),
            },
        ];
        let (reporter, health_service) = tonic_health::server::health_reporter();
        health::set_all(&reporter, &backends, ServingStatus::Serving).await;
        let closing = CancellationToken::new();
        let proxy = Proxy::new(
            backends.clone(),
            Authenticator::new(&config.jwt),
            config.signer,
            closing.clone(),
        );
        let routes = compose(Routes::new(health_service), proxy)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        tracing::info!(%addr, "gateway listening");
        Ok(Gateway {
            listener,
            addr,
            routes,
            reporter,
            backends,
            shutdown,
            closing,
            grace: config.shutdown_grace,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight calls for
    /// at most the grace period. Health turns NOT_SERVING as the drain
    /// starts, so load balancers stop sending new calls. Proxied calls still
    /// running when the grace period ends (open notification and event
    /// streams) are ended with UNAVAILABLE, so their callers reconnect.
    pub async fn run_until_stopped(self) -> Result<(), GatewayError> {
        let Gateway {
            listener,
            addr,
            routes,
            reporter,
            backends,
            shutdown,
            closing,
            grace,
        } = self;
        for backend in &backends {
            tokio::spawn(health::monitor(
                reporter.clone(),
                backend.clone(),
                shutdown.clone(),
            ));
        }
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tracing::info!(%addr, "gateway draining");
                health::set_all(&reporter, &backends, ServingStatus::NotServing).await;
            }
        };
        let serving = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result.map_err(GatewayError::Transport),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {}
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

/// The one place where the gateway's services are composed: health and
/// reflection served locally (no credentials), and the authenticating proxy
/// as the fallback for every other path.
fn compose(local: Routes, proxy: Proxy) -> Result<Routes, GatewayError> {
    let local = dondoc_server::serve::with_reflection(local)?;
    Ok(Routes::from(
        local.into_axum_router().fallback_service(proxy),
    ))
}

fn check(config: &GatewayConfig) -> Result<(), GatewayError> {
    let invalid = |message: String| Err(GatewayError::Config(message));
    if config.jwt.hs256_secret.is_empty() {
        return invalid("jwt.hs256_secret must not be empty".into());
    }
    if config.jwt.hs256_secret.len() < 32 {
        tracing::warn!("jwt.hs256_secret is shorter than 32 bytes: use a longer secret");
    }
    if config.jwt.issuer.trim().is_empty() || config.jwt.audience.trim().is_empty() {
        return invalid("jwt.issuer and jwt.audience must not be empty".into());
    }
    if config.signer.issuer() != GATEWAY_ISSUER {
        return invalid(format!(
            "the signer's issuer is {:?}; it must be {GATEWAY_ISSUER:?}, the issuer services \
             accept assertions of any principal from",
            config.signer.issuer()
        ));
    }
    for (field, uri) in [
        ("directives", &config.directives),
        ("assignments", &config.assignments),
        ("notifications", &config.notifications),
    ] {
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return invalid(format!(
                "{field} must be an http://host:port address of the service, not {uri}"
            ));
        }
    }
    Ok(())
}
