//! The pool against a real PostgreSQL: what a call sees when the server
//! ends a connection the pool holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dondoc_database::{ServiceSchema, storage_error};

#[tokio::test]
async fn a_connection_the_server_ended_is_unavailable_once_then_replaced() {
    let schema = ServiceSchema::for_service("pooltest");
    let (db, pool) =
        dondoc_testing::migrated("pool_template", &schema, &dondoc_testing::NO_MIGRATIONS).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    // The server ends it while it sits in the pool (as on a restart).
    db.end_backend(pid).await;

    // Back within the second, it is handed out unchecked: the call fails
    // with UNAVAILABLE (a retry may succeed), not INTERNAL.
    let mut conn = pool.acquire().await.unwrap();
    let error = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        matches!(storage_error(error), dondoc_errors::Error::Unavailable(_)),
        "a connection the server ended is UNAVAILABLE"
    );
    drop(conn);

    // The pool checks what comes back and opens a new connection.
    let fresh: i32 = dondoc_testing::eventually(Duration::from_secs(5), || async {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .ok()
    })
    .await;
    assert_ne!(fresh, pid);
}
