//! What the scenarios run on: a private PostgreSQL cluster (durable or
//! throwaway), the suite in-process, and a gateway with the rate limit
//! lifted (the benchmark is one principal hammering the gateway).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use dondoc::suite::{RolePasswords, Suite, SuiteConfig, SuiteKeys, bootstrap_all, migrate_all};
use dondoc_database::embedded::{ClusterOptions, EmbeddedCluster};
use dondoc_events::FollowSettings;
use dondoc_gateway::{Gateway, GatewayConfig, GatewayExtras, JwtConfig, WorkerSettings};
use dondoc_identity::{AssertionSigner, Principal, Role};
use dondoc_time::Clock;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::peers::{PgTarget, TempDir};

/// The password of every role in benchmark clusters (loopback, throwaway).
pub const PASSWORD: &str = "dondoc-bench-password";
/// The database the suite runs in.
pub const DATABASE: &str = "bench";

/// A running cluster, stopped and removed when dropped.
pub struct Cluster {
    /// The cluster.
    pub cluster: EmbeddedCluster,
    _dir: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}

impl Cluster {
    /// Starts a cluster and creates the suite's database, roles, schemas
    /// and migrations. Durable clusters live on disk (the temp folder),
    /// throwaway ones on `/dev/shm`.
    pub async fn start(durable: bool) -> anyhow::Result<Cluster> {
        let base = if !durable && PathBuf::from("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = TempDir::new(&base, "dondoc-bench-pg")?;
        let options = ClusterOptions {
            data_dir: dir.0.join("data"),
            socket_dir: dir.0.join("s"),
            superuser_password: PASSWORD.into(),
            ephemeral: !durable,
        };
        let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(options))
            .await?
            .context("start PostgreSQL")?;
        cluster
            .stop_when_process_exits(std::process::id(), &dir.0)
            .ok();
        println!(
            "  PostgreSQL: {}",
            if durable {
                "durable (on disk, fsync=on, synchronous_commit=on)"
            } else {
                "throwaway (tmpfs, fsync=off, synchronous_commit=off)"
            }
        );
        let this = Cluster { cluster, _dir: dir };
        let mut admin = PgConnection::connect_with(&this.cluster.admin_options("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
            .execute(&mut admin)
            .await?;
        admin.close().await.ok();
        bootstrap_all(&this.admin(), &passwords()).await?;
        migrate_all(&this.admin(), &passwords()).await?;
        Ok(this)
    }

    /// Superuser options for the suite's database.
    pub fn admin(&self) -> PgConnectOptions {
        self.cluster.admin_options(DATABASE)
    }

    /// A superuser connection to the suite's database.
    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.admin()).await?)
    }

    /// Where pgbench connects, as `user`.
    pub fn pgbench_target(&self, user: &str) -> PgTarget {
        PgTarget {
            socket_dir: self.cluster.options().socket_dir.clone(),
            user: user.into(),
            password: PASSWORD.into(),
            database: DATABASE.into(),
        }
    }
}

/// Every service role's password.
pub fn passwords() -> RolePasswords {
    RolePasswords {
        directives: PASSWORD.into(),
        assignments: PASSWORD.into(),
        notifications: PASSWORD.into(),
    }
}

/// Bearer token settings.
pub fn jwt() -> JwtConfig {
    JwtConfig {
        hs256_secret: "dondoc-bench-secret-dondoc-bench-secret".into(),
        issuer: "dondoc".into(),
        audience: "dondoc".into(),
    }
}

/// A bearer token (an hour) for a principal.
pub fn token(subject: &str, agency: &str, role: Role) -> String {
    dondoc_gateway::mint_token(
        &jwt(),
        &Principal {
            subject: subject.into(),
            agency: Some(agency.into()),
            roles: vec![role],
        },
        Duration::from_secs(3600),
    )
}

/// Gateway settings for benchmarks: every limit of the defaults but the
/// per-principal rate and the concurrency cap, which a load generator
/// (one principal, many calls) would otherwise hit first.
pub fn bench_extras() -> GatewayExtras {
    let mut extras = GatewayExtras::default();
    extras.limits.rate_per_second = 1e9;
    extras.limits.burst = u32::MAX / 2;
    extras.limits.max_concurrent_calls = 1_000_000;
    extras
}

/// Starts a gateway with `extras` in front of the given backends.
pub async fn start_gateway(
    directives: SocketAddr,
    assignments: SocketAddr,
    notifications: SocketAddr,
    keys: &SuiteKeys,
    extras: GatewayExtras,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let uri = |a: SocketAddr| format!("http://{a}").parse::<http::Uri>();
    let gateway = Gateway::build_with(
        GatewayConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            directives: uri(directives)?,
            assignments: uri(assignments)?,
            notifications: uri(notifications)?,
            jwt: jwt(),
            signer: AssertionSigner::new(
                "gateway",
                keys.gateway.clone(),
                dondoc::suite::ASSERTION_TTL,
            ),
            shutdown_grace: Duration::from_secs(1),
        },
        extras,
        shutdown,
    )
    .await?;
    let addr = gateway.local_addr();
    tokio::spawn(gateway.run_until_stopped());
    Ok(addr)
}

/// A benchmark gateway ([`start_gateway`], [`bench_extras`]) with every
/// route going to `backend`, signing with fresh keys (an echo backend
/// checks no assertion), until killed; prints `READY <addr>` first (the
/// child-process mode).
pub async fn serve_gateway(backend: SocketAddr) -> anyhow::Result<()> {
    let keys = SuiteKeys::generate();
    // Alone in its process, as `dondoc serve gateway`: a thread per CPU.
    let addr = start_gateway(
        backend,
        backend,
        backend,
        &keys,
        bench_extras(),
        CancellationToken::new(),
    )
    .await?;
    println!("READY {addr}");
    std::future::pending::<()>().await;
    Ok(())
}

/// The suite on a cluster, with a benchmark gateway in front.
pub struct Running {
    /// The suite (its own gateway is not used).
    pub suite: Suite,
    /// The benchmark gateway.
    pub gateway: SocketAddr,
    shutdown: CancellationToken,
}

impl Running {
    /// Starts the suite on `cluster` with the system clock.
    pub async fn start(cluster: &Cluster) -> anyhow::Result<Running> {
        Self::start_on(cluster.admin(), SuiteKeys::generate()).await
    }

    /// Starts the suite on the database `admin` reaches, with `keys`.
    pub async fn start_on(admin: PgConnectOptions, keys: SuiteKeys) -> anyhow::Result<Running> {
        let suite = Suite::start(SuiteConfig {
            admin,
            passwords: passwords(),
            keys: keys.clone(),
            jwt: jwt(),
            gateway_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            service_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            clock: Clock::system(),
            follow: FollowSettings::default(),
            deadline_policy: Default::default(),
            reminder_policy: Default::default(),
            scheduler: dondoc_notifications::SchedulerSettings {
                poll_interval: Duration::from_millis(100),
                weekly_digest: false,
                ..Default::default()
            },
            shutdown_grace: Duration::from_secs(1),
        })
        .await?;
        let shutdown = CancellationToken::new();
        let gateway = start_gateway(
            suite.directives,
            suite.assignments,
            suite.notifications,
            &keys,
            // As the embedded suite runs it.
            GatewayExtras {
                workers: WorkerSettings::beside_the_services(),
                ..bench_extras()
            },
            shutdown.clone(),
        )
        .await?;
        Ok(Running {
            suite,
            gateway,
            shutdown,
        })
    }

    /// Stops everything.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.suite.stop()).await;
    }
}
