//! The gap-free stream against a real PostgreSQL.

use std::time::Duration;

use dondoc_database::{HotConnections, ServiceSchema};
use dondoc_events::consumer::{self, Apply};
use dondoc_events::outbox;
use dondoc_events::{Cursor, FollowSettings, Followed, Wake, follow};
use dondoc_testing::TestDatabase;
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

fn schema() -> ServiceSchema {
    ServiceSchema::for_service("eventtest")
}

async fn database() -> (TestDatabase, PgPool) {
    dondoc_testing::migrated("events_template", &schema(), &dondoc_testing::NO_MIGRATIONS).await
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
    let page = outbox::read(&mut pool.acquire().await.unwrap(), Cursor::START, 100)
        .await
        .unwrap();
    assert!(
        page.items.is_empty(),
        "nothing may be served while an older transaction is running: {:?}",
        page.items.iter().map(|(_, e)| &e.kind).collect::<Vec<_>>()
    );
    let seen_to = page.scanned_to;

    slow.commit().await.unwrap();
    let page = outbox::read(&mut pool.acquire().await.unwrap(), seen_to, 100)
        .await
        .unwrap();
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
            async move { outbox::read(&mut *pool.acquire().await?, after, limit).await }
        },
        wake.clone(),
        FollowSettings {
            poll_interval: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(30),
            batch: 1,
            ..Default::default()
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
    let page = outbox::read(&mut pool.acquire().await.unwrap(), Cursor::START, 10)
        .await
        .unwrap();
    let old_cursor = page.items[0].0;
    append(&pool, "kept").await;
    // Everything written so far is older than "the future".
    let deleted = outbox::prune(&pool, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let error = outbox::resume_point(
        &mut pool.acquire().await.unwrap(),
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
        outbox::resume_point(
            &mut pool.acquire().await.unwrap(),
            outbox::OUTBOX_STREAM,
            Cursor::START
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let (_db, pool) = database().await;
    let hot = HotConnections::new(pool.clone());
    let first = Cursor { tx: 5, id: 1 };
    let second = Cursor { tx: 5, id: 2 };
    for item in [
        Followed::Item(first, "a".to_string()),
        Followed::Item(first, "a".to_string()),
        Followed::Checkpoint(first),
        Followed::Item(second, "b".to_string()),
        Followed::Item(first, "a".to_string()),
    ] {
        consumer::apply_one(&hot, "upstream", item, &Recorder::default())
            .await
            .unwrap();
    }
    let kinds: Vec<String> = recorded(&pool).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["a", "b"]);
    assert_eq!(stored(&pool).await, second);
}

/// Records each event with its transaction, fails on `poison`, and counts
/// the `committed` calls.
#[derive(Default)]
struct Recorder {
    committed: std::sync::atomic::AtomicUsize,
}

impl Apply<String> for Recorder {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: String,
    ) -> Result<(), dondoc_errors::Error> {
        if event == "poison" {
            return Err(dondoc_errors::Error::internal("a poison event"));
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS recorded (kind TEXT NOT NULL, xid TEXT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(dondoc_errors::Error::internal)?;
        sqlx::query("INSERT INTO recorded (kind, xid) VALUES ($1, pg_current_xact_id()::text)")
            .bind(event)
            .execute(&mut *tx)
            .await
            .map_err(dondoc_errors::Error::internal)?;
        Ok(())
    }

    fn committed(&self) {
        self.committed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn recorded(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, xid FROM recorded ORDER BY kind")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

async fn stored(pool: &PgPool) -> Cursor {
    let mut conn = pool.acquire().await.unwrap();
    consumer::stored_cursor(&mut conn, "upstream")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_applied_in_one_transaction_then_wakes_once() {
    let (_db, pool) = database().await;
    let hot = HotConnections::new(pool.clone());
    let recorder = Recorder::default();
    let at = |id| Cursor { tx: 7, id };
    let stored_now = consumer::apply_batch(
        &hot,
        "upstream",
        vec![
            Followed::Item(at(1), "a".to_string()),
            Followed::Item(at(2), "b".to_string()),
            Followed::Item(at(3), "c".to_string()),
            Followed::Checkpoint(at(9)),
        ],
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(stored_now, at(9));
    assert_eq!(stored(&pool).await, at(9));
    let rows = recorded(&pool).await;
    let kinds: Vec<&str> = rows.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["a", "b", "c"]);
    assert!(
        rows.iter().all(|(_, xid)| *xid == rows[0].1),
        "one transaction for the batch: {rows:?}"
    );
    assert_eq!(
        recorder.committed.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // The same batch again is a redelivery: nothing changes, nothing wakes.
    let again = consumer::apply_batch(
        &hot,
        "upstream",
        vec![
            Followed::Item(at(2), "b".to_string()),
            Followed::Item(at(3), "c".to_string()),
        ],
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(again, at(9));
    assert_eq!(recorded(&pool).await.len(), 3);
    assert_eq!(
        recorder.committed.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_failing_event_keeps_the_events_before_it_and_stops_the_cursor() {
    let (_db, pool) = database().await;
    let hot = HotConnections::new(pool.clone());
    let recorder = Recorder::default();
    let at = |id| Cursor { tx: 8, id };
    let batch = || {
        vec![
            Followed::Item(at(1), "a".to_string()),
            Followed::Item(at(2), "b".to_string()),
            Followed::Item(at(3), "poison".to_string()),
            Followed::Item(at(4), "d".to_string()),
        ]
    };
    let error = consumer::apply_batch(&hot, "upstream", batch(), &recorder)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("poison"), "{error}");
    // The batch failed as a whole, then "a" and "b" landed one by one; "d",
    // after the poison, waits for it.
    let kinds: Vec<String> = recorded(&pool).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["a", "b"]);
    assert_eq!(stored(&pool).await, at(2));
    assert_eq!(
        recorder.committed.load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    // Redelivered from the stored cursor, the poison fails again and
    // nothing is applied twice.
    consumer::apply_batch(&hot, "upstream", batch(), &recorder)
        .await
        .unwrap_err();
    assert_eq!(recorded(&pool).await.len(), 2);
    assert_eq!(stored(&pool).await, at(2));
}

#[tokio::test]
async fn the_consumer_keeps_what_arrived_before_a_failure_and_resumes_from_its_cursor() {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};

    type Upstream =
        Pin<Box<dyn futures::Stream<Item = Result<Followed<String>, tonic::Status>> + Send>>;

    let (_db, pool) = database().await;
    let (a, b, c) = (
        Cursor { tx: 7, id: 1 },
        Cursor { tx: 7, id: 2 },
        Cursor { tx: 8, id: 1 },
    );
    // The upstream as the consumer sees it: first two events and a failure
    // (a restarted producer), then, from the cursor asked for, a redelivery
    // of the second, a third and a checkpoint, and nothing more.
    let asked: Arc<Mutex<Vec<Cursor>>> = Arc::default();
    let connect = {
        let asked = asked.clone();
        move |from: Cursor| {
            let first = {
                let mut asked = asked.lock().unwrap();
                asked.push(from);
                asked.len() == 1
            };
            let items = if first {
                vec![
                    Ok(Followed::Item(a, "a".to_string())),
                    Ok(Followed::Item(b, "b".to_string())),
                    Err(tonic::Status::unavailable("the producer restarted")),
                ]
            } else {
                vec![
                    Ok(Followed::Item(b, "b".to_string())),
                    Ok(Followed::Item(c, "c".to_string())),
                    Ok(Followed::Checkpoint(c)),
                ]
            };
            let upstream: Upstream =
                Box::pin(futures::stream::iter(items).chain(futures::stream::pending()));
            async move { Ok::<_, tonic::Status>(upstream) }
        }
    };
    let (progress, mut watched) = tokio::sync::watch::channel(Cursor::START);
    let status = consumer::ConsumerStatus::new("upstream");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(consumer::run_observed(
        HotConnections::new(pool.clone()),
        connect,
        Recorder::default(),
        progress,
        status.clone(),
        Duration::from_millis(10),
        shutdown.clone(),
    ));

    tokio::time::timeout(Duration::from_secs(10), watched.wait_for(|at| *at == c))
        .await
        .expect("the consumer reaches the checkpoint")
        .unwrap();
    assert_eq!(
        *asked.lock().unwrap(),
        [Cursor::START, b],
        "reconnected from the cursor stored with what it had applied"
    );
    let kinds: Vec<String> = recorded(&pool).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["a", "b", "c"], "each event once");
    assert_eq!(stored(&pool).await, c);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the consumer stops on shutdown")
        .unwrap();
}
