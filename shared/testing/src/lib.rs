//! Test support: real PostgreSQL, never a mock of it.
//!
//! The first test of a binary starts a throwaway cluster on tmpfs (`/dev/shm`
//! when there is one) with fsync off and no TCP listener; a watcher process
//! stops and removes it when the test binary exits. Each test then gets a
//! fresh database cloned from a migrated template (about 20 ms), so tests
//! run in parallel without seeing each other's rows.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use dondoc_database::embedded::{ClusterOptions, EmbeddedCluster};
use dondoc_database::{PoolSettings, ServiceSchema};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The password every service role gets in tests.
pub const TEST_ROLE_PASSWORD: &str = "dondoc-test-password";

struct TestCluster {
    cluster: EmbeddedCluster,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static TEMPLATES: LazyLock<tokio::sync::Mutex<HashSet<&'static str>>> =
    LazyLock::new(Default::default);
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

fn start_cluster() -> Result<TestCluster, String> {
    let base = if PathBuf::from("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!(
        "dondoc-test-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let cluster = EmbeddedCluster::start(ClusterOptions {
        data_dir: root.join("data"),
        socket_dir: root.join("s"),
        superuser_password: "dondoc-test-superuser".into(),
        ephemeral: true,
    })
    .map_err(|e| e.to_string())?;
    cluster
        .stop_when_process_exits(std::process::id(), &root)
        .map_err(|e| e.to_string())?;
    Ok(TestCluster { cluster })
}

fn cluster() -> &'static EmbeddedCluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(test_cluster) => &test_cluster.cluster,
        Err(error) => panic!("cannot start the test PostgreSQL cluster: {error}"),
    }
}

/// A fresh database of the test cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
}

impl TestDatabase {
    /// Superuser connection options.
    pub fn admin_options(&self) -> PgConnectOptions {
        cluster().admin_options(&self.name)
    }

    /// Connection options for a service role (bootstrapped with
    /// [`TEST_ROLE_PASSWORD`]).
    pub fn role_options(&self, role: &str) -> PgConnectOptions {
        cluster().connect_options(role, TEST_ROLE_PASSWORD, &self.name)
    }

    /// Ends the server process `pid` and waits until it is gone, as a
    /// server restart would end a pooled connection.
    pub async fn end_backend(&self, pid: i32) {
        let mut admin = PgConnection::connect_with(&self.admin_options())
            .await
            .expect("connect as the superuser");
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .expect("end the server process");
        assert!(ended, "server process {pid} did not end");
        admin.close().await.ok();
    }
}

/// A fresh database cloned from the template `template`, which `init`
/// prepares (roles, schemas, migrations) once per test binary. `init`
/// receives superuser options for the template and must close every
/// connection it opened before returning.
pub async fn database<F, Fut>(template: &'static str, init: F) -> TestDatabase
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: Future<Output = ()>,
{
    let cluster = cluster();
    let mut admin = PgConnection::connect_with(&cluster.admin_options("postgres"))
        .await
        .expect("connect to the test cluster");
    {
        let mut templates = TEMPLATES.lock().await;
        if !templates.contains(template) {
            sqlx::query(&format!("CREATE DATABASE {template}"))
                .execute(&mut admin)
                .await
                .expect("create the template database");
            init(cluster.admin_options(template)).await;
            templates.insert(template);
        }
    }
    let name = format!(
        "{template}_{}",
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut admin)
        .await
        .expect("clone the template database");
    admin.close().await.ok();
    TestDatabase { name }
}

/// No migrations of a service's own: with [`migrated`], a schema with only
/// the shared tables (outbox, cursors, idempotency keys).
pub static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

/// A fresh database, cloned from `template` (prepared once per test binary),
/// in which `schema`'s role and schema are bootstrapped and `migrations`
/// applied as that role; and a pool on it as that role, as the service's
/// storage has in production.
pub async fn migrated(
    template: &'static str,
    schema: &ServiceSchema,
    migrations: &Migrator,
) -> (TestDatabase, PgPool) {
    let db = database(template, |admin| async move {
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .expect("connect to the template database");
        dondoc_database::bootstrap(&mut conn, schema, TEST_ROLE_PASSWORD)
            .await
            .expect("bootstrap the service's role and schema");
        conn.close().await.ok();
        let options = admin.username(&schema.role).password(TEST_ROLE_PASSWORD);
        let pool = dondoc_database::connect(options, schema, &PoolSettings::default())
            .await
            .expect("connect to the template as the service's role");
        dondoc_database::migrate(&pool, migrations)
            .await
            .expect("migrate the template database");
        pool.close().await;
    })
    .await;
    let pool = dondoc_database::connect(
        db.role_options(&schema.role),
        schema,
        &PoolSettings::default(),
    )
    .await
    .expect("connect as the service's role");
    (db, pool)
}

/// Polls `check` until it returns `Some`, for at most `limit` of real time:
/// for work another task or service does asynchronously (never for a
/// deadline, which tests reach by moving the clock).
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The process id of a session of `pool`'s database that waits on a lock,
/// once there is one (at most 10 s): how a test knows that a statement it
/// set up to block is blocked.
pub async fn lock_waiter(pool: &PgPool) -> i32 {
    eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .expect("read pg_stat_activity")
    })
    .await
}
