//! SQL for the directives schema. Every statement runs with the service's
//! schema first on the search path; no other service's table is reachable.

pub mod agencies;
pub mod directives;

/// The service's own migrations (versions from 100), applied after the
/// shared ones by `dondoc_database::migrate`.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./src/storage/migrations");

pub use dondoc_server::Actor;
