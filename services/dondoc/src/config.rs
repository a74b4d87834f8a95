//! Configuration from the environment, for `dondoc serve` and `dondoc
//! migrate`. Every setting, its variable and default are listed in
//! `docs/configuration.md`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use dondoc_database::PoolSettings;
use dondoc_events::FollowSettings;
use dondoc_identity::{AssertionVerifier, KeyPair, TrustedKeys};
use dondoc_server::{IdentityConfig, ServiceConfig};
use dondoc_time::WorkingCalendar;
use sqlx::postgres::PgConnectOptions;

use crate::suite::ASSERTION_TTL;

/// Default listen addresses.
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:7700";
/// Default address of the directives service.
pub const DEFAULT_DIRECTIVES: &str = "127.0.0.1:7701";
/// Default address of the assignments service.
pub const DEFAULT_ASSIGNMENTS: &str = "127.0.0.1:7702";
/// Default address of the notifications service.
pub const DEFAULT_NOTIFICATIONS: &str = "127.0.0.1:7703";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> anyhow::Result<String> {
    var(name).ok_or_else(|| anyhow!("{name} must be set"))
}

fn parsed<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|e| anyhow!("{name}={text:?}: {e}")),
    }
}

/// A database URL as connect options.
pub fn database_options(name: &str) -> anyhow::Result<PgConnectOptions> {
    let url = required(name)?;
    PgConnectOptions::from_str(&url).with_context(|| format!("{name} is not a PostgreSQL URL"))
}

/// The working-day calendar from `DONDOC_HOLIDAYS_FILE`, if set.
pub fn calendar() -> anyhow::Result<WorkingCalendar> {
    match var("DONDOC_HOLIDAYS_FILE") {
        None => Ok(WorkingCalendar::default()),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read DONDOC_HOLIDAYS_FILE {path}"))?;
            WorkingCalendar::parse(&text).map_err(|e| anyhow!("DONDOC_HOLIDAYS_FILE {path}: {e}"))
        }
    }
}

/// Stream pacing from the environment.
pub fn follow() -> anyhow::Result<FollowSettings> {
    let defaults = FollowSettings::default();
    Ok(FollowSettings {
        poll_interval: Duration::from_millis(parsed(
            "DONDOC_STREAM_POLL_MS",
            defaults.poll_interval.as_millis() as u64,
        )?),
        checkpoint_interval: Duration::from_secs(parsed(
            "DONDOC_CHECKPOINT_SECS",
            defaults.checkpoint_interval.as_secs(),
        )?),
        batch: defaults.batch,
        apply_linger: Duration::from_millis(parsed(
            "DONDOC_CONSUMER_LINGER_MS",
            defaults.apply_linger.as_millis() as u64,
        )?),
        read_interval: defaults.read_interval,
    })
}

/// The common settings of service `name` from the environment.
pub fn service(name: &str, default_listen: &str) -> anyhow::Result<ServiceConfig> {
    let key = KeyPair::from_base64(&required("DONDOC_ASSERTION_KEY")?)
        .map_err(|e| anyhow!("DONDOC_ASSERTION_KEY: {e}"))?;
    let trusted = TrustedKeys::parse(&required("DONDOC_TRUSTED_KEYS")?)
        .map_err(|e| anyhow!("DONDOC_TRUSTED_KEYS: {e}"))?;
    Ok(ServiceConfig {
        listen: parsed("DONDOC_LISTEN", default_listen.parse::<SocketAddr>()?)?,
        database: database_options("DONDOC_DATABASE_URL")?,
        pool: PoolSettings {
            max_connections: parsed("DONDOC_DB_MAX_CONNECTIONS", 16)?,
            acquire_timeout: Duration::from_secs(parsed("DONDOC_DB_ACQUIRE_TIMEOUT_SECS", 5)?),
        },
        identity: IdentityConfig {
            signer: dondoc_identity::AssertionSigner::new(name, key, ASSERTION_TTL),
            verifier: AssertionVerifier::new(trusted),
        },
        follow: follow()?,
        shutdown_grace: Duration::from_secs(parsed("DONDOC_SHUTDOWN_GRACE_SECS", 20)?),
        migrate_on_start: parsed("DONDOC_MIGRATE_ON_START", false)?,
        admin_listen: match var("DONDOC_ADMIN_LISTEN") {
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .with_context(|| format!("DONDOC_ADMIN_LISTEN={text:?} is not an address"))?,
            ),
            None => None,
        },
        readiness: dondoc_server::ReadinessSettings {
            upstream_stale: Duration::from_secs(parsed("DONDOC_UPSTREAM_STALE_SECS", 30)?),
            ..Default::default()
        },
    })
}

/// An upstream service's URL.
pub fn upstream(name: &str, default_addr: &str) -> anyhow::Result<http::Uri> {
    let text = var(name).unwrap_or_else(|| format!("http://{default_addr}"));
    text.parse()
        .with_context(|| format!("{name}={text:?} is not a URL"))
}

/// A duration in whole seconds.
pub fn parsed_secs(name: &str, default: u64) -> anyhow::Result<u64> {
    parsed(name, default)
}

/// Bearer token settings. The HS256 secret (development) may be left out
/// when a JWKS file provides the keys.
pub fn jwt() -> anyhow::Result<dondoc_gateway::JwtConfig> {
    let hs256_secret = match (var("DONDOC_JWT_HS256_SECRET"), var("DONDOC_JWT_JWKS_FILE")) {
        (Some(secret), _) => secret,
        (None, Some(_)) => String::new(),
        (None, None) => anyhow::bail!(
            "set DONDOC_JWT_JWKS_FILE (production) or DONDOC_JWT_HS256_SECRET (development)"
        ),
    };
    Ok(dondoc_gateway::JwtConfig {
        hs256_secret,
        issuer: var("DONDOC_JWT_ISSUER").unwrap_or_else(|| "dondoc".into()),
        audience: var("DONDOC_JWT_AUDIENCE").unwrap_or_else(|| "dondoc".into()),
    })
}
