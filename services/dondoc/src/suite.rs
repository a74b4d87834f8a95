//! The whole suite in one process: the three services and the gateway, each
//! on its own listener, sharing one clock. `dondoc up` runs it on the
//! embedded PostgreSQL; the end-to-end tests run it on a test database with
//! a manual clock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use dondoc_database::{PoolSettings, ServiceSchema, bootstrap};
use dondoc_events::FollowSettings;
use dondoc_gateway::{Gateway, GatewayConfig, GatewayExtras, JwtConfig, WorkerSettings};
use dondoc_identity::{AssertionSigner, KeyPair, TrustedKeys};
use dondoc_server::{IdentityConfig, ServiceConfig};
use dondoc_time::Clock;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long assertions live.
pub const ASSERTION_TTL: Duration = Duration::from_secs(60);

/// The password of each service role.
#[derive(Debug, Clone)]
pub struct RolePasswords {
    /// dondoc_directives.
    pub directives: String,
    /// dondoc_assignments.
    pub assignments: String,
    /// dondoc_notifications.
    pub notifications: String,
}

impl RolePasswords {
    /// Each service's schema with its role's password.
    pub fn schemas(&self) -> [(ServiceSchema, &str); 3] {
        [
            (dondoc_directives::schema(), &self.directives),
            (dondoc_assignments::schema(), &self.assignments),
            (dondoc_notifications::schema(), &self.notifications),
        ]
    }
}

/// Each component's signing key.
#[derive(Debug, Clone)]
pub struct SuiteKeys {
    /// The gateway's.
    pub gateway: KeyPair,
    /// The directives service's.
    pub directives: KeyPair,
    /// The assignments service's.
    pub assignments: KeyPair,
    /// The notifications service's.
    pub notifications: KeyPair,
}

impl SuiteKeys {
    /// Fresh keys.
    pub fn generate() -> Self {
        Self {
            gateway: KeyPair::generate(),
            directives: KeyPair::generate(),
            assignments: KeyPair::generate(),
            notifications: KeyPair::generate(),
        }
    }

    fn signer(&self, issuer: &str) -> AssertionSigner {
        let key = match issuer {
            "gateway" => &self.gateway,
            "directives" => &self.directives,
            "assignments" => &self.assignments,
            _ => &self.notifications,
        };
        AssertionSigner::new(issuer, key.clone(), ASSERTION_TTL)
    }

    /// Every component's public key.
    pub fn trusted(&self) -> TrustedKeys {
        let mut keys = TrustedKeys::default();
        for issuer in ["gateway", "directives", "assignments", "notifications"] {
            keys.trust(&self.signer(issuer));
        }
        keys
    }
}

/// What the suite runs on.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// An administrator's connection to the suite's database.
    pub admin: PgConnectOptions,
    /// Service role passwords.
    pub passwords: RolePasswords,
    /// Signing keys.
    pub keys: SuiteKeys,
    /// Bearer token settings.
    pub jwt: JwtConfig,
    /// The gateway's address (port 0: any).
    pub gateway_listen: SocketAddr,
    /// Where the services listen (each on a free port).
    pub service_host: IpAddr,
    /// The clock every service reads.
    pub clock: Clock,
    /// Stream pacing.
    pub follow: FollowSettings,
    /// Deadline classification.
    pub deadline_policy: dondoc_assignments::DeadlinePolicy,
    /// Reminders.
    pub reminder_policy: dondoc_notifications::ReminderPolicy,
    /// The reminder worker.
    pub scheduler: dondoc_notifications::SchedulerSettings,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
}

/// Creates every service's role and schema (idempotent).
pub async fn bootstrap_all(
    admin: &PgConnectOptions,
    passwords: &RolePasswords,
) -> anyhow::Result<()> {
    // The role passwords are SQL text here (ALTER ROLE takes no bind
    // parameters): never log these statements.
    let admin = admin.clone().disable_statement_logging();
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("connect to PostgreSQL as an administrator")?;
    for (schema, password) in passwords.schemas() {
        bootstrap(&mut conn, &schema, password)
            .await
            .with_context(|| format!("create the {} schema and role", schema.schema))?;
    }
    conn.close().await.ok();
    Ok(())
}

/// Applies every service's migrations, each as its own role.
pub async fn migrate_all(
    admin: &PgConnectOptions,
    passwords: &RolePasswords,
) -> anyhow::Result<()> {
    let migrations: [&sqlx::migrate::Migrator; 3] = [
        &dondoc_directives::storage::MIGRATIONS,
        &dondoc_assignments::storage::MIGRATIONS,
        &dondoc_notifications::storage::MIGRATIONS,
    ];
    for ((schema, password), migrations) in passwords.schemas().into_iter().zip(migrations) {
        let options = admin.clone().username(&schema.role).password(password);
        let pool = dondoc_database::connect(
            options,
            &schema,
            &PoolSettings {
                max_connections: 1,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("connect as {}", schema.role))?;
        dondoc_database::migrate(&pool, migrations)
            .await
            .with_context(|| format!("migrate the {} schema", schema.schema))?;
        pool.close().await;
    }
    Ok(())
}

/// A running suite.
#[derive(Debug)]
pub struct Suite {
    /// The gateway's address: the one public endpoint.
    pub gateway: SocketAddr,
    /// The directives service's address (service-to-service only).
    pub directives: SocketAddr,
    /// The assignments service's address.
    pub assignments: SocketAddr,
    /// The notifications service's address.
    pub notifications: SocketAddr,
    /// Each service's admin listener (`/metrics`, `/healthz`, `/readyz`):
    /// directives, assignments, notifications.
    pub admin: SuiteAdmin,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    config: SuiteConfig,
    /// The directives service's own token and a token cancelled once it
    /// has stopped (for [`Suite::restart_directives`]).
    directives_run: (CancellationToken, CancellationToken),
}

/// The services' admin addresses.
#[derive(Debug, Clone, Copy)]
pub struct SuiteAdmin {
    /// The directives service's.
    pub directives: Option<SocketAddr>,
    /// The assignments service's.
    pub assignments: Option<SocketAddr>,
    /// The notifications service's.
    pub notifications: Option<SocketAddr>,
}

/// The embedded gateway serves on the runtime that runs the services
/// ([`WorkerSettings::beside_the_services`]). Alone in its process
/// (`dondoc serve gateway`), it takes a thread per CPU.
fn embedded_gateway() -> GatewayExtras {
    GatewayExtras {
        workers: WorkerSettings::beside_the_services(),
        ..GatewayExtras::default()
    }
}

fn service_config(config: &SuiteConfig, name: &'static str, password: &str) -> ServiceConfig {
    ServiceConfig {
        listen: SocketAddr::new(config.service_host, 0),
        database: config
            .admin
            .clone()
            .username(&format!("dondoc_{name}"))
            .password(password),
        pool: PoolSettings::default(),
        identity: IdentityConfig {
            signer: config.keys.signer(name),
            verifier: dondoc_identity::AssertionVerifier::new(config.keys.trusted()),
        },
        follow: config.follow.clone(),
        shutdown_grace: config.shutdown_grace,
        migrate_on_start: true,
        // Each service's metrics on a free port of the service host.
        admin_listen: Some(SocketAddr::new(config.service_host, 0)),
        readiness: Default::default(),
    }
}

/// Runs `app` on `tasks` until `token`; `stopped` is cancelled after.
fn spawn_directives(
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    app: dondoc_directives::App,
    stopped: CancellationToken,
) {
    tasks.spawn(async move {
        let result = app.run_until_stopped().await.map_err(Into::into);
        stopped.cancel();
        ("directives", result)
    });
}

impl Suite {
    /// Migrates and starts the services, then the gateway in front of them.
    pub async fn start(config: SuiteConfig) -> anyhow::Result<Suite> {
        let shutdown = CancellationToken::new();
        let service = |name: &'static str, password: &str| service_config(&config, name, password);
        let uri = |addr: SocketAddr| -> anyhow::Result<http::Uri> {
            format!("http://{addr}").parse().context("service address")
        };

        let directives_token = shutdown.child_token();
        let directives = dondoc_directives::App::build(
            service(dondoc_directives::NAME, &config.passwords.directives),
            config.clock.clone(),
            directives_token.clone(),
        )
        .await
        .context("start the directives service")?;
        let directives_addr = directives.local_addr();
        let mut admin = SuiteAdmin {
            directives: directives.admin_addr(),
            assignments: None,
            notifications: None,
        };
        let assignments = dondoc_assignments::App::build(
            dondoc_assignments::AssignmentsConfig {
                service: service(dondoc_assignments::NAME, &config.passwords.assignments),
                directives: uri(directives_addr)?,
                policy: config.deadline_policy.clone(),
            },
            config.clock.clone(),
            shutdown.child_token(),
        )
        .await
        .context("start the assignments service")?;
        let assignments_addr = assignments.local_addr();
        admin.assignments = assignments.admin_addr();
        let notifications = dondoc_notifications::App::build(
            dondoc_notifications::NotificationsConfig {
                service: service(dondoc_notifications::NAME, &config.passwords.notifications),
                assignments: uri(assignments_addr)?,
                directives: uri(directives_addr)?,
                policy: config.reminder_policy.clone(),
                scheduler: config.scheduler.clone(),
            },
            config.clock.clone(),
            shutdown.child_token(),
        )
        .await
        .context("start the notifications service")?;
        let notifications_addr = notifications.local_addr();
        admin.notifications = notifications.admin_addr();
        let gateway = Gateway::build_with(
            GatewayConfig {
                listen: config.gateway_listen,
                directives: uri(directives_addr)?,
                assignments: uri(assignments_addr)?,
                notifications: uri(notifications_addr)?,
                jwt: config.jwt.clone(),
                signer: config.keys.signer("gateway"),
                shutdown_grace: config.shutdown_grace,
            },
            embedded_gateway(),
            shutdown.child_token(),
        )
        .await
        .context("start the gateway")?;
        let gateway_addr = gateway.local_addr();

        let mut tasks = JoinSet::new();
        let directives_stopped = CancellationToken::new();
        spawn_directives(&mut tasks, directives, directives_stopped.clone());
        tasks.spawn(async move {
            (
                "assignments",
                assignments.run_until_stopped().await.map_err(Into::into),
            )
        });
        tasks.spawn(async move {
            (
                "notifications",
                notifications.run_until_stopped().await.map_err(Into::into),
            )
        });
        tasks.spawn(async move {
            (
                "gateway",
                gateway.run_until_stopped().await.map_err(Into::into),
            )
        });
        Ok(Suite {
            gateway: gateway_addr,
            directives: directives_addr,
            assignments: assignments_addr,
            notifications: notifications_addr,
            admin,
            shutdown,
            tasks,
            config,
            directives_run: (directives_token, directives_stopped),
        })
    }

    /// Restarts the directives service on the same address, as a rolling
    /// restart of its only replica does: SIGTERM (health NOT_SERVING, no
    /// new connections, in-flight calls drain within the grace period),
    /// then a new process on the same port. Calls that arrive meanwhile are
    /// refused (UNAVAILABLE through the gateway) and must be retried.
    /// `pause` is how long the service stays down after the drain.
    pub async fn restart_directives(&mut self, pause: Duration) -> anyhow::Result<()> {
        let (token, stopped) = &self.directives_run;
        token.cancel();
        stopped.cancelled().await;
        tokio::time::sleep(pause).await;
        let mut config = service_config(
            &self.config,
            dondoc_directives::NAME,
            &self.config.passwords.directives,
        );
        config.listen = self.directives;
        config.admin_listen = self.admin.directives.or(config.admin_listen);
        let token = self.shutdown.child_token();
        let app = dondoc_directives::App::build(config, self.config.clock.clone(), token.clone())
            .await
            .context("restart the directives service")?;
        self.admin.directives = app.admin_addr();
        let stopped = CancellationToken::new();
        spawn_directives(&mut self.tasks, app, stopped.clone());
        self.directives_run = (token, stopped);
        Ok(())
    }

    /// Resolves when a component stops on its own (an error), naming it.
    pub async fn stopped(&mut self) -> Option<(&'static str, anyhow::Result<()>)> {
        match self.tasks.join_next().await {
            Some(Ok(result)) => Some(result),
            Some(Err(join)) => Some(("a component", Err(anyhow::anyhow!("panicked: {join}")))),
            None => None,
        }
    }

    /// Stops every component and waits for their drains.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((name, Err(error))) => {
                    tracing::error!(component = name, %error, "stopped with an error");
                    first_error.get_or_insert(error.context(name));
                }
                Ok(_) => {}
                Err(join) => {
                    first_error.get_or_insert(anyhow::anyhow!("a component panicked: {join}"));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
