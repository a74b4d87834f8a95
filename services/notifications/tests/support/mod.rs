//! What the notifications service's PostgreSQL tests share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dondoc_database::{PoolSettings, bootstrap};
use dondoc_testing::TEST_ROLE_PASSWORD;
use sqlx::{Connection, PgConnection, PgPool};

/// A pool on a fresh database with the notifications schema migrated, as
/// the service's role.
pub async fn pool() -> PgPool {
    let db = dondoc_testing::database("notifications", |admin| async move {
        let schema = dondoc_notifications::schema();
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        bootstrap(&mut conn, &schema, TEST_ROLE_PASSWORD)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let options = admin
            .clone()
            .username(&schema.role)
            .password(TEST_ROLE_PASSWORD);
        let pool = dondoc_database::connect(options, &schema, &PoolSettings::default())
            .await
            .unwrap();
        dondoc_database::migrate(&pool, &dondoc_notifications::storage::MIGRATIONS)
            .await
            .unwrap();
        pool.close().await;
    })
    .await;
    let schema = dondoc_notifications::schema();
    dondoc_database::connect(
        db.role_options(&schema.role),
        &schema,
        &PoolSettings::default(),
    )
    .await
    .unwrap()
}
