//! Typed configuration shared by the services. Secrets are never printed:
//! `Debug` shows public halves only.

use std::net::SocketAddr;
use std::time::Duration;

use dondoc_database::PoolSettings;
use dondoc_events::FollowSettings;
use dondoc_identity::{AssertionSigner, AssertionVerifier, KeyPair, TrustedKeys};
use sqlx::postgres::PgConnectOptions;

/// How a service proves who it is to others, and whom it believes.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Signs this service's own calls to other services.
    pub signer: AssertionSigner,
    /// Verifies assertions on incoming calls.
    pub verifier: AssertionVerifier,
}

impl IdentityConfig {
    /// Identity of `service` with its key and the keys it trusts.
    pub fn new(service: &str, key: KeyPair, trusted: TrustedKeys, ttl: Duration) -> Self {
        Self {
            signer: AssertionSigner::new(service, key, ttl),
            verifier: AssertionVerifier::new(trusted),
        }
    }
}

/// What every service needs to start.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The service role's connection to PostgreSQL.
    pub database: PgConnectOptions,
    /// Pool limits.
    pub pool: PoolSettings,
    /// Identity keys.
    pub identity: IdentityConfig,
    /// How event and notification streams pace themselves.
    pub follow: FollowSettings,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Run migrations at start-up (the embedded default and tests do;
    /// deployments run `dondoc migrate` as a job first).
    pub migrate_on_start: bool,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`);
    /// `DONDOC_ADMIN_LISTEN`, off when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// When the service counts as ready.
    pub readiness: crate::admin::ReadinessSettings,
}
