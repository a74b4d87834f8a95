//! What the notifications service's PostgreSQL tests share.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod streams;

use dondoc_testing::TestDatabase;
use sqlx::PgPool;

/// A fresh database with the notifications schema migrated, and a pool on
/// it as the service's role.
pub async fn database() -> (TestDatabase, PgPool) {
    dondoc_testing::migrated(
        "notifications",
        &dondoc_notifications::schema(),
        &dondoc_notifications::storage::MIGRATIONS,
    )
    .await
}

/// A pool on a fresh database with the notifications schema migrated, as
/// the service's role.
pub async fn pool() -> PgPool {
    database().await.1
}
