//! The notifications service: the deadline projection, reminder jobs that
//! are never lost nor doubled, weekly digests, notification streams, and
//! saved subscriptions delivered by webhook (Standard Webhooks) and e-mail.
//! It owns the `notifications` schema and follows the assignments service's
//! events.

#![forbid(unsafe_code)]

pub mod delivery;
pub mod domain;
mod grpc;
pub mod hub;
pub mod names;
pub mod scheduler;
pub mod storage;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use dondoc_contracts::assignments::v1::WatchEventsRequest;
use dondoc_contracts::assignments::v1::task_event_service_client::TaskEventServiceClient;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_database::HotConnections;
use dondoc_database::ServiceSchema;
use dondoc_events::{Cursor, Wake, consumer};
use dondoc_identity::ServiceCredentials;
use dondoc_server::{Server, ServerParts, ServiceConfig, StartError, open_database};
use dondoc_time::Clock;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub use delivery::{DeliverySettings, SmtpSettings};
pub use domain::policy::ReminderPolicy;
pub use grpc::SERVICE_NAMES;
pub use scheduler::SchedulerSettings;

/// The service's name: its schema, its identity issuer.
pub const NAME: &str = "notifications";

/// Its place in the database.
pub fn schema() -> ServiceSchema {
    ServiceSchema::for_service(NAME)
}

/// Configuration beyond what every service has.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Common settings.
    pub service: ServiceConfig,
    /// The assignments service (task events).
    pub assignments: http::Uri,
    /// The directives service (agency names).
    pub directives: http::Uri,
    /// When reminders go out.
    pub policy: ReminderPolicy,
    /// The reminder worker.
    pub scheduler: SchedulerSettings,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's pool, most recently used connection first: every
    /// call's statements and the upstream consumer. The scheduler, the
    /// deliverer and the hub take connections from the pool underneath.
    pub hot: HotConnections,
    /// Injected clock.
    pub clock: Clock,
    /// Wakes the stream hub and the deliverer after notifications commit.
    pub notifications: Wake,
    /// Serves every notification stream of this replica from one reader.
    pub hub: hub::Hub,
    /// Ends streams on shutdown.
    pub shutdown: CancellationToken,
    /// Delivery settings (allow-list, SMTP, secret rotation).
    pub delivery: DeliverySettings,
}

/// A built, bound, not yet serving notifications service.
#[derive(Debug)]
pub struct App {
    server: Server,
    state: Arc<State>,
    config: NotificationsConfig,
    progress: watch::Sender<Cursor>,
    upstream_status: consumer::ConsumerStatus,
}

fn channel(uri: &http::Uri) -> Channel {
    Endpoint::from(uri.clone())
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(2))
        .connect_lazy()
}

impl App {
    /// Connects (and migrates, when configured) and binds the listener.
    pub async fn build(
        config: NotificationsConfig,
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
        let metrics = server.metrics();
        dondoc_server::metrics::consumer_collector(&metrics, upstream_status.clone());
        server.readiness().watch_consumer(upstream_status.clone());
        storage::jobs::backlog_collector(&metrics, pool.clone(), clock.clone());
        let hub = hub::Hub::start(
            pool.clone(),
            config.service.follow.clone(),
            hub::DEFAULT_STREAM_BUFFER,
        )
        .await
        .map_err(|e| StartError::Database(e.into()))?;
        let state = Arc::new(State {
            hub,
            hot: HotConnections::new(pool),
            clock,
            notifications: Wake::new(),
            shutdown,
            delivery: config.scheduler.delivery.clone(),
        });
        let (progress, _) = watch::channel(Cursor::START);
        Ok(App {
            server,
            state,
            config,
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

    /// How far the assignments stream has been applied.
    pub fn assignments_progress(&self) -> watch::Receiver<Cursor> {
        self.progress.subscribe()
    }

    /// Serves, follows task events and runs the reminder worker until shutdown.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let credentials = ServiceCredentials::new(self.config.service.identity.signer.clone());
        let names = names::AgencyNames::new(AgencyServiceClient::with_interceptor(
            channel(&self.config.directives),
            credentials.clone(),
        ));
        let jobs = Wake::new();
        let shutdown = self.state.shutdown.clone();
        let scheduler = scheduler::Scheduler {
            pool: self.state.hot.pool().clone(),
            clock: self.state.clock.clone(),
            policy: self.config.policy.clone(),
            notifications: self.state.notifications.clone(),
            jobs: jobs.clone(),
            names: names.clone(),
            settings: self.config.scheduler.clone(),
        };
        let worker = tokio::spawn(scheduler.run(shutdown.clone()));
        let hub = tokio::spawn(
            self.state
                .hub
                .clone()
                .run(self.state.notifications.clone(), shutdown.clone()),
        );
        let deliverer = delivery::Deliverer {
            pool: self.state.hot.pool().clone(),
            clock: self.state.clock.clone(),
            notifications: self.state.notifications.clone(),
            settings: self.config.scheduler.delivery.clone(),
            metrics: Some(self.server.metrics()),
        };
        let deliveries = tokio::spawn(deliverer.run(shutdown.clone()));
        let client = TaskEventServiceClient::with_interceptor(
            channel(&self.config.assignments),
            credentials,
        );
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
            upstream::TaskEvents {
                policy: self.config.policy.clone(),
                clock: self.state.clock.clone(),
                notifications: self.state.notifications.clone(),
                jobs,
                names,
            },
            self.progress,
            self.upstream_status,
            self.config.service.follow.apply_linger,
            shutdown.clone(),
        ));
        let served = self
            .server
            .serve(ServerParts {
                routes: grpc::routes(self.state.clone()),
                service_names: SERVICE_NAMES.to_vec(),
                verifier: Some(self.config.service.identity.verifier.clone()),
            })
            .await;
        shutdown.cancel();
        let _ = follower.await;
        let _ = worker.await;
        let _ = hub.await;
        let _ = deliveries.await;
        self.state.hot.pool().close().await;
        served.map_err(StartError::from)
    }
}
