//! SQL for the directives schema. Every statement runs with the service's
//! schema first on the search path; no other service's table is reachable.

pub mod agencies;
pub mod directives;

/// The service's own migrations (versions from 100), applied after the
/// shared ones by `dondoc_database::migrate`.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./src/storage/migrations");

pub use dondoc_server::Actor;

/// Recomputes what the application derives from stored text (folded agency
/// names, search vectors) where it is missing or stale.
pub async fn make_consistent(pool: &sqlx::PgPool) -> Result<(), dondoc_errors::Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(dondoc_database::storage_error)?;
    agencies::refold_all(&mut conn).await?;
    directives::refresh_all_search(&mut conn).await?;
    Ok(())
}
