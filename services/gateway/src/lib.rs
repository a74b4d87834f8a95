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
//! Anything else gets UNIMPLEMENTED. A proxied call is shed beyond the
//! concurrency limit, authenticated (bearer JWT from a JWKS or, in
//! development, HS256; an API key; or a TLS client certificate), checked
//! against the coarse [`policy::POLICY`] and the caller's rate limit, bounded
//! in size and deadline, stripped of every identity metadata the caller sent
//! (`authorization`, `x-api-key`, all `x-dondoc-*`…), given an assertion
//! signed by the gateway (reused per principal for half its lifetime) and
//! the trace context, and streamed both ways to the backend over one of a
//! few HTTP/2 connections kept to it ([`BackendSettings`]; hyper's client
//! connections, sent to straight from the call's task); reads are
//! retried on UNAVAILABLE. Calls are served by a few threads, each with a
//! runtime and backend connections of its own ([`WorkerSettings`]).
//! The response, with its trailers and error details, comes back unchanged.
//! gRPC-Web (with CORS) is accepted; TLS and mTLS are served with rustls.
//! Each call leaves one access-log line (target `dondoc_gateway::access`) and
//! Prometheus metrics on the admin listener. Everything beyond
//! [`GatewayConfig`] is in [`GatewayExtras`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod connections;
mod extras;
mod health;
mod limits;
mod metrics;
pub mod policy;
mod proxy;
mod tls;
mod watched;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dondoc_contracts::service_names;
use dondoc_identity::{AssertionCache, AssertionSigner};
use dondoc_time::Clock;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::{JwtConfig, mint_token};
pub use extras::{
    ApiKey, ApiKeySettings, BackendSettings, CertMatch, ClientIdentity, CorsSettings,
    GatewayExtras, JwksSettings, Limits, TlsSettings, WorkerSettings,
};

use crate::auth::Authenticator;
use crate::connections::ConnectionPool;
use crate::metrics::Metrics;
use crate::proxy::{Backend, Proxy, Upstream};
use crate::workers::Worker;

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
    /// A serving thread could not start, or stopped without saying why.
    #[error("gateway worker: {0}")]
    Worker(std::io::Error),
}

/// A bound gateway, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    addr: SocketAddr,
    admin: Option<(TcpListener, SocketAddr)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    cors: CorsLayer,
    /// Health and reflection, served by the gateway itself.
    local: Routes,
    proxy: Proxy,
    reporter: HealthReporter,
    backends: Vec<Backend>,
    auth: Authenticator,
    extras: GatewayExtras,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    closing: CancellationToken,
    grace: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("addr", &self.addr)
            .field("admin", &self.admin.as_ref().map(|(_, addr)| addr))
            .field("tls", &self.tls.is_some())
            .field("extras", &self.extras)
            .finish_non_exhaustive()
    }
}

/// How long to wait for connections to close once the remaining calls have
/// been ended at the end of the grace period.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Gateway {
    /// Checks `config`, prepares the routes and binds the listen address.
    /// Backends are connected lazily, so they may start after the gateway.
    /// Serving stops when `shutdown` is cancelled. The same as
    /// [`Gateway::build_with`] with [`GatewayExtras::default()`]: plaintext,
    /// HS256 tokens, default limits.
    pub async fn build(
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Result<Gateway, GatewayError> {
        Self::build_with(config, GatewayExtras::default(), shutdown).await
    }

    /// [`Gateway::build`] with the settings of `extras`: TLS and client
    /// certificates, JWKS, API keys, limits, CORS and the admin listener.
    /// Files named by `extras` are read now; a missing or invalid one is a
    /// configuration error.
    pub async fn build_with(
        config: GatewayConfig,
        extras: GatewayExtras,
        shutdown: CancellationToken,
    ) -> Result<Gateway, GatewayError> {
        check(&config, &extras)?;
        let tls = extras
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()
            .map_err(GatewayError::Config)?;
        let identities = extras
            .tls
            .as_ref()
            .map(|t| t.client_identities.as_slice())
            .unwrap_or_default();
        let auth = Authenticator::build(
            &config.jwt,
            extras.jwks.as_ref(),
            &extras.api_keys,
            identities,
        )
        .map_err(GatewayError::Config)?;
        if !config.jwt.hs256_secret.is_empty() {
            tracing::warn!(
                "HS256 bearer tokens are accepted (jwt.hs256_secret is set): for development only"
            );
        }
        let cors = cors_layer(&extras.cors)?;
        let metrics = Arc::new(Metrics::default());
        let backends = vec![
            Backend {
                name: "directives",
                prefix: "/dondoc.directives.v1.",
                services: &[
                    service_names::AGENCY,
                    service_names::DIRECTIVE,
                    service_names::DIRECTIVE_EVENTS,
                ],
                uri: config.directives,
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
                uri: config.assignments,
            },
            Backend {
                name: "notifications",
                prefix: "/dondoc.notifications.v1.",
                services: &[service_names::NOTIFICATION, service_names::SUBSCRIPTION],
                uri: config.notifications,
            },
        ];
        let (reporter, health_service) = tonic_health::server::health_reporter();
        health::set_all(&reporter, &backends, ServingStatus::Serving).await;
        let closing = CancellationToken::new();
        let proxy = Proxy::new(
            auth.clone(),
            // Reused per principal while more than half its lifetime remains.
            AssertionCache::new(config.signer, Clock::system()),
            closing.clone(),
            extras.limits.clone(),
            metrics.clone(),
        );
        let local = dondoc_server::serve::with_reflection(Routes::new(health_service))?;
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
        let admin = match extras.admin_listen {
            None => None,
            Some(admin_addr) => {
                let bind_error = |source| GatewayError::Bind {
                    addr: admin_addr,
                    source,
                };
                let admin = TcpListener::bind(admin_addr).await.map_err(bind_error)?;
                let bound = admin.local_addr().map_err(bind_error)?;
                tracing::info!(addr = %bound, "gateway admin listening (/metrics, /healthz)");
                Some((admin, bound))
            }
        };
        tracing::info!(%addr, tls = tls.is_some(), "gateway listening");
        Ok(Gateway {
            listener,
            addr,
            admin,
            tls,
            cors,
            local,
            proxy,
            reporter,
            backends,
            auth,
            extras,
            metrics,
            shutdown,
            closing,
            grace: config.shutdown_grace,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the admin listener, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight calls for
    /// at most the grace period. Health turns NOT_SERVING as the drain
    /// starts, so load balancers stop sending new calls. Proxied calls still
    /// running when the grace period ends (open notification and event
    /// streams) are ended with UNAVAILABLE, so their callers reconnect.
    ///
    /// Calls are served on [`WorkerSettings::threads`] threads of their own
    /// (or on this runtime); this future runs what they share (the admin
    /// listener, health probes, credential reloads, dealing connections)
    /// and waits for them. When one of them fails, the others drain and the
    /// failure is returned.
    pub async fn run_until_stopped(self) -> Result<(), GatewayError> {
        let Gateway {
            listener,
            addr,
            admin,
            tls,
            cors,
            local,
            proxy,
            reporter,
            backends,
            auth,
            extras,
            metrics,
            shutdown,
            closing,
            grace,
        } = self;
        auth.watch(extras.jwks.as_ref(), &extras.api_keys, &shutdown);
        // Stops accepting at shutdown; admin stays up through the drain.
        let stopped = CancellationToken::new();
        let _stop_admin = stopped.clone().drop_guard();
        if let Some((admin, _)) = admin {
            tokio::spawn(metrics::serve_admin(
                admin,
                metrics.clone(),
                shutdown.clone(),
                stopped.clone(),
            ));
        }
        // Cancelled once health says NOT_SERVING (or when a worker fails):
        // no more connections are accepted and the grace period starts.
        let draining = CancellationToken::new();
        // Whatever ends this future (a thread that cannot start included)
        // lets the threads already serving go.
        let _drain_on_return = draining.clone().drop_guard();
        // No thread of its own: one worker on this runtime.
        let own_threads = extras.workers.threads > 0;
        let threads = extras.workers.threads.max(1);
        let mut running = tokio::task::JoinSet::new();
        // Each backend's connections, every worker's, for the health probes:
        // they take turns over the connections calls take.
        let mut probed: Vec<Vec<ConnectionPool>> =
            vec![Vec::with_capacity(threads); backends.len()];
        let mut dealers = Vec::with_capacity(threads);
        for index in 0..threads {
            let runtime = own_threads.then(workers::runtime).transpose()?;
            let handle = runtime
                .as_ref()
                .map_or_else(tokio::runtime::Handle::current, |r| r.handle().clone());
            let connections = workers::share(extras.backends.connections, threads, index);
            let upstreams: Vec<Upstream> = backends
                .iter()
                .map(|backend| Upstream::connect_lazy(backend, connections, &handle))
                .collect();
            for (pools, upstream) in probed.iter_mut().zip(&upstreams) {
                pools.push(upstream.pool.clone());
            }
            let (dealer, dealt) = tokio::sync::mpsc::channel(64);
            let worker = Worker {
                index,
                dealt,
                addr,
                tls: tls.clone(),
                cors: cors.clone(),
                local: local.clone(),
                proxy: proxy.with_upstreams(upstreams),
                draining: draining.clone(),
                closing: closing.clone(),
                grace,
            };
            let done = match runtime {
                Some(runtime) => worker.spawn_thread(runtime)?,
                None => worker.spawn_here(),
            };
            running.spawn(async move {
                done.await.unwrap_or_else(|_| {
                    Err(GatewayError::Worker(std::io::Error::other(
                        "a serving thread stopped without a result (it panicked)",
                    )))
                })
            });
            dealers.push(dealer);
        }
        tokio::spawn(tls::deal(listener, dealers, draining.clone()));
        for (backend, pools) in backends.iter().zip(&probed) {
            tokio::spawn(health::monitor(
                reporter.clone(),
                backend.clone(),
                ConnectionPool::joined(pools),
                shutdown.clone(),
            ));
        }
        tokio::spawn({
            let (shutdown, draining) = (shutdown.clone(), draining.clone());
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = draining.cancelled() => return,
                }
                tracing::info!(%addr, "gateway draining");
                health::set_all(&reporter, &backends, ServingStatus::NotServing).await;
                draining.cancel();
            }
        });
        // In the order they end: the first failure drains the others.
        let mut failure = None;
        while let Some(joined) = running.join_next().await {
            let result = joined.unwrap_or_else(|error| {
                Err(GatewayError::Worker(std::io::Error::other(
                    error.to_string(),
                )))
            });
            if let Err(error) = result {
                tracing::error!(%addr, %error, "a gateway worker failed; draining the others");
                draining.cancel();
                failure.get_or_insert(error);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The one place where the gateway's services are composed: health and
/// reflection served locally (no credentials, `local`), and the
/// authenticating proxy as the fallback for every other path.
fn compose(local: Routes, proxy: Proxy) -> Routes {
    Routes::from(local.into_axum_router().fallback_service(proxy))
}

/// CORS for gRPC-Web: the configured origins may POST gRPC-Web calls with
/// credentials and read the gRPC status headers.
fn cors_layer(settings: &CorsSettings) -> Result<CorsLayer, GatewayError> {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
    let origins = if settings.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let mut list = Vec::with_capacity(settings.allowed_origins.len());
        for origin in &settings.allowed_origins {
            list.push(
                http::HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                    GatewayError::Config(format!("CORS origin {origin:?} is not a valid origin"))
                })?,
            );
        }
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            CONTENT_TYPE,
            AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600)))
}

fn check(config: &GatewayConfig, extras: &GatewayExtras) -> Result<(), GatewayError> {
    let invalid = |message: String| Err(GatewayError::Config(message));
    if config.jwt.hs256_secret.is_empty() && extras.jwks.is_none() {
        return invalid("jwt.hs256_secret must not be empty when no JWKS is configured".into());
    }
    if !config.jwt.hs256_secret.is_empty() && config.jwt.hs256_secret.len() < 32 {
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
    let limits = &extras.limits;
    if limits.max_deadline.is_zero() || limits.max_message_bytes == 0 {
        return invalid("limits.max_deadline and limits.max_message_bytes must not be zero".into());
    }
    if extras.backends.connections == 0 {
        return invalid("backends.connections must be at least 1".into());
    }
    Ok(())
}
