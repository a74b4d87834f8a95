//! The stream hub when a read of the log fails. Alone in its test binary,
//! so on a PostgreSQL cluster of its own: the table lock it takes holds a
//! transaction id, which would hold back the snapshot horizon, and so the
//! gap-free reads, of every other test in the cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use dondoc_events::{Cursor, FollowSettings, Followed, Wake};
use dondoc_notifications::hub::Hub;
use dondoc_notifications::storage::notifications;
use futures::StreamExt;
use sqlx::{Connection, PgConnection};
use support::streams::{caught_up, for_recipient, notification, settings, take};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_failed_read_of_the_hub_is_retried_from_the_same_position() {
    let (db, pool) = support::database().await;
    // Only wakes drive this hub: its poll is an hour away.
    let follow = FollowSettings {
        poll_interval: Duration::from_secs(3600),
        ..settings()
    };
    let hub = Hub::start(pool.clone(), follow, 1024).await.unwrap();
    let wake = Wake::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(hub.clone().run(wake.clone(), shutdown.clone()));
    let mut stream = Box::pin(hub.stream(for_recipient("so-ldtbxh"), Cursor::START));
    assert!(caught_up(&mut stream).await.is_empty());

    // Committed, but the hub is not told: it has not read it yet.
    let mut tx = pool.begin().await.unwrap();
    notifications::insert(&mut tx, &notification("n1", "so-ldtbxh", "DUE_SOON", false))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The hub's next read waits on a lock and is then cancelled: it fails.
    let mut admin = PgConnection::connect_with(&db.admin_options())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    sqlx::query("LOCK TABLE notifications.notifications IN ACCESS EXCLUSIVE MODE")
        .execute(&mut admin)
        .await
        .unwrap();
    wake.wake();
    // The only session of this database that can wait on a lock now is
    // the hub's read.
    let reader = dondoc_testing::lock_waiter(&pool).await;
    // Read only now: the hub reads one page at a time, so with one read
    // waiting none is in flight. Read before the lock, it raced the hub's
    // first read (started by `run`), which may move the position past an
    // empty stretch of the log when it completes.
    let before = hub.position();
    let cancelled: bool = sqlx::query_scalar("SELECT pg_cancel_backend($1)")
        .bind(reader)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(cancelled);
    assert_eq!(hub.position(), before, "a failed read moves nothing");
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();

    // The next read starts from the same position: the notification comes,
    // once.
    wake.wake();
    assert_eq!(take(&mut stream, 1).await, ["n1"]);
    let later = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(
        !matches!(later, Ok(Some(Ok(Followed::Item(..))))),
        "nothing else: {later:?}"
    );
    shutdown.cancel();
}
