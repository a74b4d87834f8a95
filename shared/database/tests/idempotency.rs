//! `request_id` keys against a real PostgreSQL: a duplicate of a request in
//! flight waits for it, then gets its answer, or takes over if it failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dondoc_database::ServiceSchema;
use dondoc_database::idempotency::{RequestKey, recall, remember};
use sqlx::PgPool;

const KEY: RequestKey<'static> = RequestKey {
    method: "/dondoc.assignments.v1.TaskService/CreateTask",
    principal: "users/office-1",
    request_id: "create-534-II.4",
};

async fn pool() -> PgPool {
    let schema = ServiceSchema::for_service("idemtest");
    dondoc_testing::migrated(
        "idempotency_template",
        &schema,
        &dondoc_testing::NO_MIGRATIONS,
    )
    .await
    .1
}

/// Starts a duplicate of `KEY` in its own transaction; it answers what
/// `recall` gave it, after storing `answer` when it got nothing.
fn duplicate(pool: &PgPool, answer: &'static [u8]) -> tokio::task::JoinHandle<Option<Vec<u8>>> {
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let previous = recall(&mut tx, &KEY).await.unwrap();
        if previous.is_none() {
            remember(&mut tx, &KEY, answer).await.unwrap();
        }
        tx.commit().await.unwrap();
        previous
    })
}

#[tokio::test]
async fn a_duplicate_in_flight_waits_for_the_first_and_gets_its_answer() {
    let pool = pool().await;
    let mut first = pool.begin().await.unwrap();
    assert_eq!(recall(&mut first, &KEY).await.unwrap(), None, "a new key");
    let second = duplicate(&pool, b"second");
    dondoc_testing::lock_waiter(&pool).await;
    remember(&mut first, &KEY, b"first").await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap().as_deref(), Some(&b"first"[..]));
    // And any later retry.
    let mut later = pool.begin().await.unwrap();
    assert_eq!(
        recall(&mut later, &KEY).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
}

#[tokio::test]
async fn a_duplicate_of_a_request_that_failed_takes_the_key_over() {
    let pool = pool().await;
    let mut first = pool.begin().await.unwrap();
    assert_eq!(recall(&mut first, &KEY).await.unwrap(), None);
    let second = duplicate(&pool, b"second");
    dondoc_testing::lock_waiter(&pool).await;
    // The first request fails: its effects and its claim roll back.
    first.rollback().await.unwrap();
    assert_eq!(second.await.unwrap(), None, "the duplicate runs as new");
    let mut later = pool.begin().await.unwrap();
    assert_eq!(
        recall(&mut later, &KEY).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
}
