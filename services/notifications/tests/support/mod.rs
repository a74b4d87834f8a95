//! What the notifications service's PostgreSQL tests share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::PgPool;

/// A pool on a fresh database with the notifications schema migrated, as
/// the service's role.
pub async fn pool() -> PgPool {
    dondoc_testing::migrated(
        "notifications",
        &dondoc_notifications::schema(),
        &dondoc_notifications::storage::MIGRATIONS,
    )
    .await
    .1
}
