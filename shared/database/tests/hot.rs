//! Connections handed out most recently used first, against a real
//! PostgreSQL: which connection a transaction runs on, what happens to one
//! that does not commit, and that the pool still serves every caller and
//! closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dondoc_database::{HotConnections, PoolSettings, ServiceSchema, storage_error};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Every test's database is cloned from one template, with one role.
fn schema() -> ServiceSchema {
    ServiceSchema::for_service("hot")
}

async fn setup() -> (dondoc_testing::TestDatabase, PgPool) {
    let schema = schema();
    let (db, pool) =
        dondoc_testing::migrated("hot_template", &schema, &dondoc_testing::NO_MIGRATIONS).await;
    sqlx::query("CREATE TABLE marks (id INT PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    (db, pool)
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Opens `n` connections in the pool and lets them go idle.
async fn grow(pool: &PgPool, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    dondoc_testing::eventually(Duration::from_secs(5), || async {
        (pool.num_idle() >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn transactions_one_after_another_run_on_the_connection_that_committed_last() {
    let (_db, pool) = setup().await;
    grow(&pool, 6).await;
    let hot = HotConnections::new(pool.clone());
    let mut pids = Vec::new();
    for _ in 0..20 {
        let mut tx = hot.begin().await.unwrap();
        pids.push(backend_pid(&mut tx).await);
        tx.commit().await.unwrap();
    }
    // sqlx's pool alone hands out the connection idle longest: these twenty
    // would go round the six.
    assert!(
        pids.iter().all(|pid| *pid == pids[0]),
        "one server process ran every transaction: {pids:?}"
    );
}

#[tokio::test]
async fn a_transaction_not_committed_is_rolled_back_and_leaves_the_stack() {
    let (_db, pool) = setup().await;
    let hot = HotConnections::new(pool.clone());
    let mut tx = hot.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    sqlx::query("INSERT INTO marks VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(hot.kept(), 0, "it went back to the pool, which checks it");

    // Its row lock is gone: the same key inserts (a transaction still open
    // would hold it past the lock timeout) and commits.
    let mut tx = hot.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO marks VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM marks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(marks, 1, "only the committed row is there");

    // And the dropped one's session is not left in its transaction.
    dondoc_testing::eventually(Duration::from_secs(5), || async {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .flatten();
        (state.as_deref() != Some("idle in transaction")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_kept_connection_the_server_ended_fails_at_most_once_then_is_replaced() {
    let (db, pool) = setup().await;
    let hot = HotConnections::new(pool.clone());
    let mut tx = hot.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    tx.commit().await.unwrap();

    db.end_backend(pid).await;

    // Back within the second, it is handed out unchecked and the call fails
    // with UNAVAILABLE (a retry may succeed); later than that it is checked
    // and replaced at once. Either way the ended connection is not used again.
    let mut failures = 0;
    for _ in 0..3 {
        match hot.begin().await {
            Ok(mut tx) => {
                assert_ne!(backend_pid(&mut tx).await, pid);
                tx.commit().await.unwrap();
            }
            Err(error) => {
                failures += 1;
                assert!(
                    matches!(storage_error(error), dondoc_errors::Error::Unavailable(_)),
                    "an ended connection is UNAVAILABLE"
                );
            }
        }
    }
    assert!(
        failures <= 1,
        "the ended connection failed {failures} calls"
    );
}

#[tokio::test]
async fn callers_beyond_the_pool_all_get_a_connection_in_turn() {
    let (db, _pool) = setup().await;
    let schema = schema();
    let small = dondoc_database::connect(
        db.role_options(&schema.role),
        &schema,
        &PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    let hot = HotConnections::new(small.clone());
    // Six callers, two connections: those waiting in the pool must get the
    // connections that come back, not watch them go onto the stack.
    let callers: Vec<_> = (0..6)
        .map(|caller| {
            let hot = hot.clone();
            tokio::spawn(async move {
                for turn in 0..15 {
                    let mut tx = hot.begin().await.unwrap();
                    sqlx::query("INSERT INTO marks VALUES ($1)")
                        .bind(caller * 100 + turn)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM marks")
        .fetch_one(&small)
        .await
        .unwrap();
    assert_eq!(marks, 90);
    assert!(small.size() <= 2);
}

#[tokio::test]
async fn closing_the_pool_lets_the_kept_connections_go() {
    let (_db, pool) = setup().await;
    let hot = HotConnections::new(pool.clone());
    let mut tx = hot.begin().await.unwrap();
    backend_pid(&mut tx).await;
    tx.commit().await.unwrap();
    assert_eq!(hot.kept(), 1);
    // sqlx's close waits for every connection handed out.
    tokio::time::timeout(Duration::from_secs(10), pool.close())
        .await
        .expect("the pool closes with a connection on the stack");
}

#[tokio::test]
async fn a_released_connection_is_handed_out_next_and_a_dropped_one_is_not() {
    let (_db, pool) = setup().await;
    grow(&pool, 4).await;
    let hot = HotConnections::new(pool.clone());
    let mut conn = hot.acquire().await.unwrap();
    let released = backend_pid(&mut conn).await;
    conn.release();
    assert_eq!(hot.kept(), 1);
    let mut conn = hot.acquire().await.unwrap();
    assert_eq!(
        backend_pid(&mut conn).await,
        released,
        "the released one first"
    );

    // Dropped instead (as when a statement is cut short), it goes back to
    // the pool, which checks it, and is not on the stack.
    drop(conn);
    assert_eq!(hot.kept(), 0);
}

#[tokio::test]
async fn a_connection_past_the_pools_lifetime_goes_back_to_the_pool_to_be_retired() {
    let (db, _pool) = setup().await;
    // Every connection is past a lifetime of zero as soon as it is made.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .max_lifetime(Duration::ZERO)
        .connect_with(db.role_options(&schema().role))
        .await
        .unwrap();
    let hot = HotConnections::new(pool.clone());
    let mut conn = hot.acquire().await.unwrap();
    let retired = backend_pid(&mut conn).await;
    conn.release();
    assert_eq!(hot.kept(), 0, "not kept past the pool's lifetime");
    let mut conn = hot.acquire().await.unwrap();
    assert_ne!(
        backend_pid(&mut conn).await,
        retired,
        "the pool closed it and opened another"
    );
}

#[tokio::test]
async fn statements_run_keep_their_connection_when_they_succeed_and_not_when_they_fail() {
    let (_db, pool) = setup().await;
    grow(&pool, 4).await;
    let hot = HotConnections::new(pool.clone());
    let first = hot
        .run(async |conn| Ok(backend_pid(conn).await))
        .await
        .unwrap();
    assert_eq!(hot.kept(), 1);
    let again = hot
        .run(async |conn| Ok(backend_pid(conn).await))
        .await
        .unwrap();
    assert_eq!(again, first, "the connection used last");

    let failed = hot
        .run(async |conn| {
            sqlx::query("SELECT * FROM no_such_table")
                .execute(conn)
                .await
                .map_err(storage_error)
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(hot.kept(), 0, "after a failure it goes back to the pool");
}
