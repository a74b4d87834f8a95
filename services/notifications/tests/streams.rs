//! The stream hub against a real PostgreSQL: one reader per replica, every
//! notification reaches every stream that wants it once and in log order,
//! including streams that resume from a cursor, streams that fell behind and
//! writes that commit out of order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use dondoc_events::{Cursor, FollowSettings, Followed, Wake};
use dondoc_notifications::hub::Hub;
use dondoc_notifications::storage::notifications::{self, StoredNotification, StreamFilter};
use futures::StreamExt;
use support::pool;
use support::streams::{
    caught_up, for_recipient, notification, running_hub, settings, take, write,
};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn every_stream_gets_what_it_wants_once_and_in_order() {
    let pool = pool().await;
    let r = running_hub(&pool, 1024).await;
    let mut labour: Vec<_> = (0..40)
        .map(|_| Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), Cursor::START)))
        .collect();
    let mut finance = Box::pin(r.hub.stream(for_recipient("so-tc"), Cursor::START));
    let mut everyone = Box::pin(r.hub.stream(StreamFilter::default(), Cursor::START));
    let mut key_tasks_of_both = Box::pin(r.hub.stream(
        StreamFilter {
            recipients: Some(vec!["so-ldtbxh".into(), "so-tc".into()]),
            kinds: vec!["OVERDUE".into()],
            key_tasks_only: true,
            directive: "directives/7".into(),
        },
        Cursor::START,
    ));
    // Filed under one recipient, but not everything of it: it is offered
    // its recipient's part of each page and picks what it wants.
    let mut overdue_of_finance = Box::pin(r.hub.stream(
        StreamFilter {
            kinds: vec!["OVERDUE".into()],
            ..for_recipient("so-tc")
        },
        Cursor::START,
    ));
    for s in labour.iter_mut() {
        assert!(caught_up(s).await.is_empty());
    }
    assert!(caught_up(&mut overdue_of_finance).await.is_empty());
    assert!(caught_up(&mut finance).await.is_empty());
    assert!(caught_up(&mut everyone).await.is_empty());
    assert!(caught_up(&mut key_tasks_of_both).await.is_empty());
    assert_eq!(r.hub.streams(), 44);

    // A transaction that writes first but commits last: nothing after it
    // may be served before it, or it would be skipped.
    let mut early = pool.begin().await.unwrap();
    notifications::insert(
        &mut early,
        &notification("l1", "so-ldtbxh", "DUE_SOON", false),
    )
    .await
    .unwrap();
    write(
        &pool,
        &r.wake,
        &[
            notification("f1", "so-tc", "OVERDUE", true),
            notification("l2", "so-ldtbxh", "OVERDUE", true),
        ],
    )
    .await;
    early.commit().await.unwrap();
    r.wake.wake();
    write(
        &pool,
        &r.wake,
        &[
            notification("x1", "so-xd", "DUE_SOON", false),
            notification("l3", "so-ldtbxh", "OVERDUE", false),
            notification("f2", "so-tc", "OVERDUE", true),
        ],
    )
    .await;

    for s in labour.iter_mut() {
        assert_eq!(take(s, 3).await, ["l1", "l2", "l3"]);
    }
    assert_eq!(take(&mut finance, 2).await, ["f1", "f2"]);
    assert_eq!(
        take(&mut everyone, 6).await,
        ["l1", "f1", "l2", "x1", "l3", "f2"]
    );
    assert_eq!(take(&mut key_tasks_of_both, 3).await, ["f1", "l2", "f2"]);
    assert_eq!(take(&mut overdue_of_finance, 2).await, ["f1", "f2"]);

    // Nothing more, and no duplicate, on any stream once the log is quiet:
    // the next item each one yields is the one written now.
    write(
        &pool,
        &r.wake,
        &[
            notification("l4", "so-ldtbxh", "DUE_SOON", false),
            notification("f3", "so-tc", "DUE_SOON", false),
        ],
    )
    .await;
    for s in labour.iter_mut() {
        assert_eq!(take(s, 1).await, ["l4"]);
    }
    assert_eq!(take(&mut finance, 1).await, ["f3"]);
    assert_eq!(take(&mut everyone, 2).await, ["l4", "f3"]);
    write(
        &pool,
        &r.wake,
        &[notification("f4", "so-tc", "OVERDUE", false)],
    )
    .await;
    assert_eq!(take(&mut overdue_of_finance, 1).await, ["f4"], "not f3");

    drop(labour);
    drop(finance);
    drop(everyone);
    drop(key_tasks_of_both);
    drop(overdue_of_finance);
    assert_eq!(r.hub.streams(), 0, "closed streams leave the hub");
    r.shutdown.cancel();
}

#[tokio::test]
async fn a_stream_that_falls_behind_catches_up_from_the_database() {
    let pool = pool().await;
    // Room for two waiting notifications only.
    let r = running_hub(&pool, 2).await;
    let mut slow = Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), Cursor::START));
    let mut prompt = Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), Cursor::START));
    caught_up(&mut slow).await;
    caught_up(&mut prompt).await;

    let mut expected = Vec::new();
    for batch in 0..5 {
        let items: Vec<_> = (0..10)
            .map(|i| notification(&format!("n{batch}-{i}"), "so-ldtbxh", "DUE_SOON", false))
            .collect();
        expected.extend(items.iter().map(|n| n.title.clone()));
        write(&pool, &r.wake, &items).await;
        // The hub hands over a read of ten at once, more than either
        // buffer holds: both are let go; the prompt stream catches up at
        // once, the slow one (not polled) stays out.
        assert_eq!(take(&mut prompt, 10).await, expected[batch * 10..]);
        assert_eq!(r.hub.streams(), 1, "the slow stream was let go");
    }
    assert_eq!(take(&mut slow, 50).await, expected);

    // Back in the hub after catching up: the next one arrives live.
    write(
        &pool,
        &r.wake,
        &[notification("after", "so-ldtbxh", "DUE_SOON", false)],
    )
    .await;
    assert_eq!(take(&mut slow, 1).await, ["after"]);
    assert_eq!(take(&mut prompt, 1).await, ["after"]);
    r.shutdown.cancel();
}

#[tokio::test]
async fn the_buffer_counts_what_a_stream_selects_not_what_the_hub_read() {
    let pool = pool().await;
    // Room for two waiting notifications; the hub hands streams pages.
    let r = running_hub(&pool, 2).await;
    let mut finance = Box::pin(r.hub.stream(for_recipient("so-tc"), Cursor::START));
    let mut labour = Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), Cursor::START));
    // Filed under both recipients, and never polled until the end.
    let mut both = Box::pin(r.hub.stream(
        StreamFilter {
            recipients: Some(vec!["so-ldtbxh".into(), "so-tc".into()]),
            ..Default::default()
        },
        Cursor::START,
    ));
    caught_up(&mut finance).await;
    caught_up(&mut labour).await;
    caught_up(&mut both).await;

    // One page of ten, two of them for `both`: they fill its buffer, the
    // eight for someone else do not count, nor does the page count twice
    // for being offered under two recipients.
    let mut page: Vec<_> = (0..8)
        .map(|i| notification(&format!("x{i}"), "so-xd", "DUE_SOON", false))
        .collect();
    page.insert(3, notification("f1", "so-tc", "DUE_SOON", false));
    page.push(notification("l1", "so-ldtbxh", "DUE_SOON", false));
    write(&pool, &r.wake, &page).await;
    assert_eq!(take(&mut finance, 1).await, ["f1"]);
    assert_eq!(take(&mut labour, 1).await, ["l1"]);
    assert_eq!(r.hub.streams(), 3, "no stream was let go");

    // A third one waiting is one too many: `both` is let go.
    write(
        &pool,
        &r.wake,
        &[notification("l2", "so-ldtbxh", "DUE_SOON", false)],
    )
    .await;
    assert_eq!(take(&mut labour, 1).await, ["l2"]);
    assert_eq!(r.hub.streams(), 2, "the full stream was let go");
    // It drains what it had, catches up from the database and is back.
    assert_eq!(take(&mut both, 3).await, ["f1", "l1", "l2"]);
    write(
        &pool,
        &r.wake,
        &[notification("f2", "so-tc", "DUE_SOON", false)],
    )
    .await;
    assert_eq!(take(&mut both, 1).await, ["f2"]);
    assert_eq!(take(&mut finance, 1).await, ["f2"]);
    assert_eq!(r.hub.streams(), 3);
    r.shutdown.cancel();
}

/// The cursor of `recipient`'s first notification. Reads are gap-free:
/// they stop below the oldest transaction still running in the cluster,
/// which another test may hold open for a moment after this one committed.
async fn first_cursor(pool: &sqlx::PgPool, recipient: &str) -> Cursor {
    dondoc_testing::eventually(Duration::from_secs(10), || async {
        notifications::read(pool, recipient, Cursor::START, 1)
            .await
            .unwrap()
            .items
            .first()
            .map(|(cursor, _)| *cursor)
    })
    .await
}

#[tokio::test]
async fn a_stream_resumes_after_its_cursor_and_starts_at_the_beginning_without_one() {
    let pool = pool().await;
    let wake = Wake::new();
    write(
        &pool,
        &wake,
        &[
            notification("a", "so-ldtbxh", "DUE_SOON", false),
            notification("b", "so-ldtbxh", "DUE_SOON", false),
        ],
    )
    .await;
    // The hub starts after these were written: streams read them from
    // the database.
    let r = running_hub(&pool, 1024).await;
    let mut from_start = Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), Cursor::START));
    assert_eq!(caught_up(&mut from_start).await, ["a", "b"]);

    let first = first_cursor(&pool, "so-ldtbxh").await;
    let mut resumed = Box::pin(r.hub.stream(for_recipient("so-ldtbxh"), first));
    assert_eq!(caught_up(&mut resumed).await, ["b"]);

    write(
        &pool,
        &r.wake,
        &[notification("c", "so-ldtbxh", "DUE_SOON", false)],
    )
    .await;
    assert_eq!(take(&mut from_start, 1).await, ["c"]);
    assert_eq!(take(&mut resumed, 1).await, ["c"]);
    r.shutdown.cancel();
}

#[tokio::test]
async fn a_quiet_stream_checkpoints_past_what_its_filter_left_out() {
    let pool = pool().await;
    let hub = Hub::start(
        pool.clone(),
        FollowSettings {
            checkpoint_interval: Duration::from_millis(50),
            ..settings()
        },
        1024,
    )
    .await
    .unwrap();
    let wake = Wake::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(hub.clone().run(wake.clone(), shutdown.clone()));
    let mut stream = Box::pin(hub.stream(for_recipient("so-tc"), Cursor::START));
    caught_up(&mut stream).await;
    write(
        &pool,
        &wake,
        &[notification("other", "so-ldtbxh", "DUE_SOON", false)],
    )
    .await;
    let other = first_cursor(&pool, "so-ldtbxh").await;
    // Checkpoints move past the other agency's notification once the hub
    // has dispatched it; a client resuming there misses nothing of its own.
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await.unwrap().unwrap() {
                Followed::Checkpoint(c) if c >= other => return c,
                Followed::Checkpoint(_) => {}
                Followed::Item(_, n) => panic!("{} is not for so-tc", n.title),
            }
        }
    })
    .await
    .expect("a checkpoint past the other agency's notification");
    assert!(reached >= other);
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends on shutdown"
    );
    let mut late = Box::pin(hub.stream(for_recipient("so-tc"), Cursor::START));
    assert!(
        tokio::time::timeout(Duration::from_secs(10), late.next())
            .await
            .unwrap()
            .is_none(),
        "a stream opened after shutdown ends at once"
    );
}

#[tokio::test]
async fn the_in_memory_filter_selects_what_the_sql_selects() {
    let pool = pool().await;
    let wake = Wake::new();
    let mut all = Vec::new();
    for (i, recipient) in ["so-ldtbxh", "so-tc", "so-xd"].iter().enumerate() {
        for kind in ["DUE_SOON", "OVERDUE"] {
            for key_task in [false, true] {
                all.push(notification(
                    &format!("{i}-{kind}-{key_task}"),
                    recipient,
                    kind,
                    key_task,
                ));
            }
        }
    }
    write(&pool, &wake, &all).await;
    let stored: Vec<StoredNotification> =
        notifications::read_filtered(&pool, &StreamFilter::default(), Cursor::START, 100)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|(_, n)| n)
            .collect();
    assert_eq!(stored.len(), all.len());
    let recipients = [
        None,
        Some(vec![]),
        Some(vec!["so-tc".to_string()]),
        Some(vec!["so-tc".to_string(), "so-xd".to_string()]),
    ];
    let kinds = [vec![], vec!["OVERDUE".to_string()]];
    let mut checked = 0;
    for recipients in &recipients {
        for kinds in &kinds {
            for key_tasks_only in [false, true] {
                for directive in ["", "directives/7", "directives/8"] {
                    let filter = StreamFilter {
                        recipients: recipients.clone(),
                        kinds: kinds.clone(),
                        key_tasks_only,
                        directive: directive.into(),
                    };
                    let by_sql: Vec<String> =
                        notifications::read_filtered(&pool, &filter, Cursor::START, 100)
                            .await
                            .unwrap()
                            .items
                            .into_iter()
                            .map(|(_, n)| n.title)
                            .collect();
                    let in_memory: Vec<String> = stored
                        .iter()
                        .filter(|n| filter.matches(n))
                        .map(|n| n.title.clone())
                        .collect();
                    assert_eq!(by_sql, in_memory, "{filter:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 48);
}
