//! PostgreSQL for dondoc.
//!
//! Each service owns exactly one schema and connects with its own role,
//! which cannot read another service's schema. [`bootstrap`] creates both
//! (as an administrator), [`connect`] opens the service's pool with its
//! schema as `search_path`, and [`migrate`] applies the shared migrations
//! (outbox, cursors, idempotency keys) followed by the service's own; sqlx
//! keeps its migrations table inside the service's schema.
//!
//! [`HotConnections`] hands out the connection used last first, which keeps
//! the server's caches warm.
//!
//! [`embedded`] starts a private cluster from the machine's PostgreSQL server
//! binaries, for `dondoc up` and for tests.

#![forbid(unsafe_code)]

pub mod embedded;
pub mod hot;
pub mod idempotency;

pub use hot::{HotConnection, HotConnections, HotTransaction};

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub use sqlx;

/// Migrations every service shares; versions below 100.
static SHARED_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// One service's place in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSchema {
    /// Schema name, e.g. "directives".
    pub schema: &'static str,
    /// Login role, e.g. "dondoc_directives".
    pub role: String,
}

impl ServiceSchema {
    /// The conventional schema and role of a service.
    pub fn for_service(service: &'static str) -> Self {
        Self {
            schema: service,
            role: format!("dondoc_{service}"),
        }
    }
}

/// Database failures at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// A query or connection failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A name or password that cannot be used safely in DDL.
    #[error("{0}")]
    Unsafe(String),
}

fn check_identifier(name: &str) -> Result<(), DatabaseError> {
    let ok = !name.is_empty()
        && name.len() < 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DatabaseError::Unsafe(format!(
            "{name:?} is not a plain lowercase identifier"
        )))
    }
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Creates (or updates) a service's role with `password` and its schema,
/// owned by that role and closed to everyone else. Idempotent. Run it as a
/// role allowed to create roles, e.g. the cluster's superuser.
pub async fn bootstrap(
    admin: &mut PgConnection,
    service: &ServiceSchema,
    password: &str,
) -> Result<(), DatabaseError> {
    check_identifier(service.schema)?;
    check_identifier(&service.role)?;
    let role = &service.role;
    let schema = service.schema;
    // Roles are cluster-wide: two databases of one cluster may bootstrap at once.
    let mut tx = admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7276736)")
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
            .execute(&mut *tx)
            .await?;
    }
    // Utility statements take no bind parameters: the password is quoted as a literal.
    sqlx::query(&format!(
        "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
        quote_literal(password)
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!("ALTER ROLE {role} SET search_path = {schema}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!("ALTER SCHEMA {schema} OWNER TO {role}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before UNAVAILABLE.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens a service's pool with its schema first on the search path.
pub async fn connect(
    options: PgConnectOptions,
    service: &ServiceSchema,
    settings: &PoolSettings,
) -> Result<PgPool, DatabaseError> {
    let options = options
        .options([("search_path", service.schema)])
        .application_name(&format!("dondoc-{}", service.schema));
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings every connection it hands out: a round trip before
        // each call's first statement. A connection back from a call within
        // the last second is taken as alive instead (sqlx also checks each
        // one as it comes back); one idle for longer is checked, since the
        // server may have restarted or a firewall cut it meanwhile.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?)
}

/// How long a pooled connection may sit idle and still be handed out
/// without a check.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The shared migrations followed by a service's own (versions from 100).
pub fn migrator(service_migrations: &Migrator) -> Migrator {
    let migrations: Vec<Migration> = SHARED_MIGRATIONS
        .iter()
        .chain(service_migrations.iter())
        .cloned()
        .collect();
    // The fields are public (for `migrate!`) though hidden; building a
    // combined migrator this way keeps one migrations table per schema.
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Applies the shared and the service's migrations in its schema.
pub async fn migrate(pool: &PgPool, service_migrations: &Migrator) -> Result<(), DatabaseError> {
    migrator(service_migrations).run(pool).await?;
    Ok(())
}

/// A random password for a service role: 32 alphanumerics.
pub fn generate_password() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Maps a storage failure to the service error: a pool timeout or a lost
/// connection is UNAVAILABLE (retry), anything else INTERNAL.
pub fn storage_error(error: sqlx::Error) -> dondoc_errors::Error {
    if is_unavailable(&error) {
        return dondoc_errors::Error::Unavailable("the database is unavailable".into());
    }
    dondoc_errors::Error::internal(error)
}

/// True when the database cannot be reached or is going away: no
/// connection in time, a broken connection, or the server shutting down or
/// starting (SQLSTATE class 08, and 57P01–57P03). A retry may succeed.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// True for a unique violation on the named constraint.
pub fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}
