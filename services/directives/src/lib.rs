//! The directives service: the agency directory (who) and directive
//! documents with their items (what was decided). It owns the `directives`
//! schema and publishes agency and directive events on its gap-free stream.

#![forbid(unsafe_code)]

pub mod domain;
/// The gRPC handlers (public so that integration tests call them directly).
pub mod grpc;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;

use dondoc_database::HotConnections;
use dondoc_database::ServiceSchema;
use dondoc_events::Wake;
use dondoc_server::streams::StreamContext;
use dondoc_server::{Server, ServerParts, ServiceConfig, StartError, open_database};
use dondoc_time::Clock;
use tokio_util::sync::CancellationToken;

pub use grpc::SERVICE_NAMES;

/// The service's name: its schema, its identity issuer.
pub const NAME: &str = "directives";

/// Its place in the database.
pub fn schema() -> ServiceSchema {
    ServiceSchema::for_service(NAME)
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service role's pool, most recently used connection first: every
    /// call's statements and event stream reads.
    pub hot: HotConnections,
    /// The injected clock.
    pub clock: Clock,
    /// Wakes stream followers after a commit.
    pub wake: Wake,
    /// What the event stream follows with.
    pub streams: StreamContext,
}

/// A built, bound, not yet serving directives service.
#[derive(Debug)]
pub struct App {
    server: Server,
    state: Arc<State>,
    verifier: dondoc_identity::AssertionVerifier,
}

impl App {
    /// Connects (and migrates, when configured) and binds the listener.
    pub async fn build(
        config: ServiceConfig,
        clock: Clock,
        shutdown: CancellationToken,
    ) -> Result<App, StartError> {
        let pool = open_database(&config, &schema(), &storage::MIGRATIONS).await?;
        // Folded names and search vectors are computed by application code:
        // rows written before a change of the fold (or before migration 0101)
        // are made consistent here. Cheap when nothing changed.
        storage::make_consistent(&pool)
            .await
            .map_err(|e| StartError::Config(format!("directives: {e}")))?;
        let mut server = Server::bind(config.listen, shutdown.clone(), config.shutdown_grace)
            .await?
            .with_admin(config.admin_listen, config.readiness.clone())
            .await?;
        server.watch_database(pool.clone());
        let wake = Wake::new();
        let hot = HotConnections::new(pool.clone());
        let state = Arc::new(State {
            streams: StreamContext {
                hot: hot.clone(),
                wake: wake.clone(),
                follow: config.follow,
                shutdown,
                clock: clock.clone(),
            },
            hot,
            clock,
            wake,
        });
        Ok(App {
            server,
            state,
            verifier: config.identity.verifier,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.server.admin_addr()
    }

    /// Serves until shutdown, then drains.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let routes = grpc::routes(self.state.clone());
        self.server
            .serve(ServerParts {
                routes,
                service_names: SERVICE_NAMES.to_vec(),
                verifier: Some(self.verifier),
            })
            .await?;
        self.state.hot.pool().close().await;
        Ok(())
    }
}
