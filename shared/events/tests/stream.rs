//! The gap-free stream against a real PostgreSQL.

use std::time::Duration;

use dondoc_database::{PoolSettings, ServiceSchema, bootstrap, connect, migrate};
use dondoc_events::consumer::{self, Apply};
use dondoc_events::outbox;
use dondoc_events::{Cursor, FollowSettings, Followed, Wake, follow};
use dondoc_testing::{TEST_ROLE_PASSWORD, TestDatabase};
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

fn schema() -> ServiceSchema {
    ServiceSchema::for_service("eventtest")
}

async fn database() -> (TestDatabase, PgPool) {
    let db = dondoc_testing::database("events_template", |admin| async move {
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        bootstrap(&mut conn, &schema(), TEST_ROLE_PASSWORD)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let pool = connect(
            admin
                .username("dondoc_eventtest")
                .password(TEST_ROLE_PASSWORD),
            &schema(),
            &PoolSettings::default(),
        )
        .await
        .unwrap();
        migrate(&pool, &NO_MIGRATIONS).await.unwrap();
        pool.close().await;
    })
    .await;
    let pool = connect(
        db.role_options("dondoc_eventtest"),
        &schema(),
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    (db, pool)
}

async fn append(pool: &PgPool, kind: &str) {
    let mut tx = pool.begin().await.unwrap();
    outbox::append(&mut tx, kind, "things/1", kind.as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_not_skipped() {
    let (_db, pool) = database().await;
    // Transaction A takes its sequence number first but commits last.
    let mut slow = pool.begin().await.unwrap();
    outbox::append(&mut slow, "slow", "things/1", b"slow")
        .await
        .unwrap();
    append(&pool, "fast").await;

    // While A is open, a reader must not move past it.
    let page = outbox::read(&pool, Cursor::START, 100).await.unwrap();
    assert!(
        page.items.is_empty(),
        "nothing may be served while an older transaction is running: {:?}",
        page.items.iter().map(|(_, e)| &e.kind).collect::<Vec<_>>()
    );
    let seen_to = page.scanned_to;

    slow.commit().await.unwrap();
    let page = outbox::read(&pool, seen_to, 100).await.unwrap();
    let kinds: Vec<_> = page.items.iter().map(|(_, e)| e.kind.as_str()).collect();
    assert_eq!(kinds, ["slow", "fast"], "both, in commit-safe order");
}

#[tokio::test]
async fn a_follower_catches_up_then_follows_with_checkpoints() {
    let (_db, pool) = database().await;
    append(&pool, "one").await;
    let wake = Wake::new();
    let shutdown = CancellationToken::new();
    let reader_pool = pool.clone();
    let stream = follow(
        Cursor::START,
        move |after, limit| {
            let pool = reader_pool.clone();
            async move { outbox::read(&pool, after, limit).await }
        },
        wake.clone(),
        FollowSettings {
            poll_interval: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(30),
            batch: 1,
        },
        shutdown.clone(),
    );
    tokio::pin!(stream);
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, Followed::Item(_, ref e) if e.kind == "one"));
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        Followed::Checkpoint(_)
    ));

    append(&pool, "two").await;
    // Woken, the follower re-reads at once (the poll is 30 s away). A
    // transaction of another test in the same cluster can hold the snapshot
    // horizon below "two" for that read; the next wake then brings it. Only
    // wakes are sent here, so it arriving within 5 s proves wake-driven reads.
    let started = tokio::time::Instant::now();
    let next = loop {
        wake.wake();
        match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(next) => break next.unwrap().unwrap(),
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "woken without waiting for the poll"
            ),
        }
    };
    assert!(matches!(next, Followed::Item(_, ref e) if e.kind == "two"));
    shutdown.cancel();
}

#[tokio::test]
async fn a_cursor_older_than_the_horizon_is_out_of_range() {
    let (_db, pool) = database().await;
    append(&pool, "old").await;
    let page = outbox::read(&pool, Cursor::START, 10).await.unwrap();
    let old_cursor = page.items[0].0;
    append(&pool, "kept").await;
    // Everything written so far is older than "the future".
    let deleted = outbox::prune(&pool, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let error = outbox::resume_point(
        &pool,
        outbox::OUTBOX_STREAM,
        Cursor::START.max(Cursor {
            tx: old_cursor.tx,
            id: old_cursor.id - 1,
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(tonic::Status::from(error).code(), tonic::Code::OutOfRange);
    // An empty cursor starts at the horizon instead.
    assert!(
        outbox::resume_point(&pool, outbox::OUTBOX_STREAM, Cursor::START)
            .await
            .is_ok()
    );
}

struct CountKinds;

impl Apply<String> for CountKinds {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: String,
    ) -> Result<(), dondoc_errors::Error> {
        sqlx::query("CREATE TABLE IF NOT EXISTS applied (kind TEXT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(dondoc_errors::Error::internal)?;
        sqlx::query("INSERT INTO applied (kind) VALUES ($1)")
            .bind(event)
            .execute(&mut *tx)
            .await
            .map_err(dondoc_errors::Error::internal)?;
        Ok(())
    }
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let (_db, pool) = database().await;
    let first = Cursor { tx: 5, id: 1 };
    let second = Cursor { tx: 5, id: 2 };
    for item in [
        Followed::Item(first, "a".to_string()),
        Followed::Item(first, "a".to_string()),
        Followed::Checkpoint(first),
        Followed::Item(second, "b".to_string()),
        Followed::Item(first, "a".to_string()),
    ] {
        consumer::apply_one(&pool, "upstream", item, &CountKinds)
            .await
            .unwrap();
    }
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM applied ORDER BY kind")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["a", "b"]);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        consumer::stored_cursor(&mut conn, "upstream")
            .await
            .unwrap(),
        second
    );
}
