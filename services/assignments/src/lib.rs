//! The assignments service: tasks, their workflow and deadlines. It owns the
//! `assignments` schema, follows the directives service's events (an issued
//! directive's items become tasks), and publishes task events.

#![forbid(unsafe_code)]

pub mod domain;
mod grpc;
mod publish;
pub mod recurring;
pub mod shared_reads;
pub mod storage;
pub mod upkeep;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::NaiveDate;
use dondoc_contracts::directives::v1::WatchEventsRequest;
use dondoc_contracts::directives::v1::directive_event_service_client::DirectiveEventServiceClient;
use dondoc_database::HotConnections;
use dondoc_database::ServiceSchema;
use dondoc_events::{Cursor, Wake, consumer};
use dondoc_identity::ServiceCredentials;
use dondoc_server::streams::StreamContext;
use dondoc_server::{Server, ServerParts, ServiceConfig, StartError, open_database};
use dondoc_time::Clock;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub use domain::deadline::DeadlinePolicy;
pub use grpc::SERVICE_NAMES;
use shared_reads::SharedReads;

/// The service's name: its schema, its identity issuer.
pub const NAME: &str = "assignments";

/// How often [`upkeep`] runs (also whenever the injected clock is moved).
pub const UPKEEP_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// Its place in the database.
pub fn schema() -> ServiceSchema {
    ServiceSchema::for_service(NAME)
}

/// Configuration beyond what every service has.
#[derive(Debug, Clone)]
pub struct AssignmentsConfig {
    /// Common settings.
    pub service: ServiceConfig,
    /// The directives service, called directly with this service's identity.
    pub directives: http::Uri,
    /// Deadline classification.
    pub policy: DeadlinePolicy,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's pool, most recently used connection first: every
    /// call's statements, the upstream consumer and event stream reads.
    pub hot: HotConnections,
    /// Injected clock.
    pub clock: Clock,
    /// Wakes followers after commits.
    pub wake: Wake,
    /// What the event stream follows with.
    pub streams: StreamContext,
    /// Deadline classification.
    pub policy: DeadlinePolicy,
    /// Statistics asked for at once share reads (see [`shared_reads`]).
    pub statistics:
        SharedReads<(storage::statistics::Scope, NaiveDate), storage::statistics::Figures>,
}

/// A built, bound, not yet serving assignments service.
#[derive(Debug)]
pub struct App {
    server: Server,
    state: Arc<State>,
    config: AssignmentsConfig,
    shutdown: CancellationToken,
    progress: watch::Sender<Cursor>,
    upstream_status: consumer::ConsumerStatus,
}

impl App {
    /// Connects (and migrates, when configured) and binds the listener.
    pub async fn build(
        config: AssignmentsConfig,
        clock: Clock,
        shutdown: CancellationToken,
    ) -> Result<App, StartError> {
        let pool = open_database(&config.service, &schema(), &storage::MIGRATIONS).await?;
        let mut server = Server::bind(
            config.service.listen,
            shutdown.clone(),
            config.service.shutdown_grace,
        )
        .await?
        .with_admin(
            config.service.admin_listen,
            config.service.readiness.clone(),
        )
        .await?;
        server.watch_database(pool.clone());
        let upstream_status = consumer::ConsumerStatus::new(upstream::SOURCE);
        dondoc_server::metrics::consumer_collector(&server.metrics(), upstream_status.clone());
        server.readiness().watch_consumer(upstream_status.clone());
        let wake = Wake::new();
        let hot = HotConnections::new(pool.clone());
        let state = Arc::new(State {
            streams: StreamContext {
                hot: hot.clone(),
                wake: wake.clone(),
                follow: config.service.follow.clone(),
                shutdown: shutdown.clone(),
                clock: clock.clone(),
            },
            hot,
            clock,
            wake,
            policy: config.policy.clone(),
            statistics: SharedReads::default(),
        });
        let (progress, _) = watch::channel(Cursor::START);
        Ok(App {
            server,
            state,
            config,
            shutdown,
            progress,
            upstream_status,
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

    /// How far the directives stream has been applied.
    pub fn directives_progress(&self) -> watch::Receiver<Cursor> {
        self.progress.subscribe()
    }

    /// Serves and follows the directives stream until shutdown.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let channel: Channel = Endpoint::from(self.config.directives.clone())
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(2))
            .connect_lazy();
        let credentials = ServiceCredentials::new(self.config.service.identity.signer.clone());
        let client = DirectiveEventServiceClient::with_interceptor(channel, credentials);
        let follower = tokio::spawn(consumer::run_observed(
            self.state.hot.clone(),
            move |after: Cursor| {
                let mut client = client.clone();
                async move {
                    let stream = client
                        .watch_events(WatchEventsRequest {
                            after_cursor: after.to_string(),
                        })
                        .await?
                        .into_inner();
                    Ok(stream.map(|message| {
                        let item = message?
                            .item
                            .ok_or_else(|| tonic::Status::data_loss("empty stream message"))?;
                        upstream::to_followed(item)
                    }))
                }
            },
            upstream::DirectiveEvents {
                wake: self.state.wake.clone(),
                policy: self.state.policy.clone(),
            },
            self.progress,
            self.upstream_status,
            self.config.service.follow.apply_linger,
            self.shutdown.clone(),
        ));
        let ticker = tokio::spawn(upkeep::run(
            self.state.hot.pool().clone(),
            self.state.clock.clone(),
            self.state.policy.clone(),
            self.state.wake.clone(),
            UPKEEP_TICK,
            self.shutdown.clone(),
        ));
        let served = self
            .server
            .serve(ServerParts {
                routes: grpc::routes(self.state.clone()),
                service_names: SERVICE_NAMES.to_vec(),
                verifier: Some(self.config.service.identity.verifier.clone()),
            })
            .await;
        self.shutdown.cancel();
        let _ = follower.await;
        let _ = ticker.await;
        self.state.hot.pool().close().await;
        served.map_err(StartError::from)
    }
}
