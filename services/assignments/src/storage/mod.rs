//! SQL for the assignments schema.

pub mod extensions;
pub mod indicators;
pub mod progress;
pub mod statistics;
pub mod tasks;

/// The service's own migrations (versions from 100).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./src/storage/migrations");

pub use dondoc_server::Actor;
