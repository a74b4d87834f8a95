//! SQL for the notifications schema.

pub mod deadlines;
pub mod deliveries;
pub mod digests;
pub mod jobs;
pub mod notifications;
pub mod retention;
pub mod subscriptions;

/// The service's own migrations (versions from 100).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./src/storage/migrations");
