//! What every dondoc gRPC server shares.
//!
//! * [`config`]: the typed configuration common to services.
//! * [`serve`]: the one place where the layer stack is composed (identity
//!   first), health and reflection are added, and SIGTERM drains within a
//!   grace period.
//! * [`listing`]: AIP-160 style filters and opaque keyset page tokens bound to
//!   their filter.
//! * [`convert`]: protobuf ↔ domain conversions of dates and timestamps.
//! * [`mutation`]: the transaction wrapper of every mutation with a
//!   `request_id`.
//! * [`observe`], [`metrics`], [`admin`]: server spans, Prometheus metrics,
//!   readiness and the admin listener.
//! * [`body`]: response bodies handed to tonic without a layer mapping
//!   their errors again.

#![forbid(unsafe_code)]

pub mod admin;
pub mod body;
pub mod config;
pub mod convert;
pub mod listing;
pub mod metrics;
pub mod mutation;
pub mod observe;
pub mod serve;
pub mod streams;

pub use admin::{Readiness, ReadinessSettings};
pub use config::{IdentityConfig, ServiceConfig};
pub use serve::{READINESS_SERVICE, Server, ServerParts, shutdown_signal};

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] dondoc_database::DatabaseError),
    /// The listener could not be bound.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// Serving failed.
    #[error("serve: {0}")]
    Serve(#[from] serve::ServeError),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// Opens a service's pool and, when configured, migrates its schema.
pub async fn open_database(
    config: &ServiceConfig,
    schema: &dondoc_database::ServiceSchema,
    migrations: &sqlx::migrate::Migrator,
) -> Result<sqlx::PgPool, StartError> {
    let pool = dondoc_database::connect(config.database.clone(), schema, &config.pool).await?;
    if config.migrate_on_start {
        dondoc_database::migrate(&pool, migrations).await?;
    }
    Ok(pool)
}

/// The actor of a call: who, for which agency, and when by the injected clock.
pub fn actor_of(principal: &dondoc_identity::Principal, clock: &dondoc_time::Clock) -> Actor {
    Actor {
        subject: principal.subject.clone(),
        agency: principal.agency.clone(),
        at: clock.now(),
    }
}

/// Who made a change and when, as stored in every service's tables.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Subject.
    pub subject: String,
    /// Agency code.
    pub agency: Option<String>,
    /// When, from the injected clock.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Actor {
    /// As a protobuf audit stamp.
    pub fn stamp(&self) -> dondoc_contracts::common::v1::AuditStamp {
        convert::stamp(&self.subject, self.agency.as_deref(), self.at)
    }
}
