//! What the stream tests share: hub settings, notifications to write,
//! and reading a stream until it has caught up or taken so many.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dondoc_events::{Cursor, FollowSettings, Followed, Wake};
use dondoc_notifications::hub::{Hub, StreamedNotification};
use dondoc_notifications::storage::notifications::{self, NewNotification, StreamFilter};
use futures::{Stream, StreamExt};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub fn settings() -> FollowSettings {
    FollowSettings {
        // Wakes drive these tests; the poll is only the fallback.
        poll_interval: Duration::from_millis(100),
        checkpoint_interval: Duration::from_secs(3600),
        batch: 16,
        ..Default::default()
    }
}

pub fn notification(key: &str, recipient: &str, kind: &str, key_task: bool) -> NewNotification {
    NewNotification {
        dedupe_key: key.into(),
        kind: kind.into(),
        recipient: recipient.into(),
        task_id: Some(1),
        directive_number: "534/TB-UBND".into(),
        directive: if key_task {
            "directives/7".into()
        } else {
            String::new()
        },
        lead_agency: recipient.into(),
        due_date: None,
        key_task,
        title: key.into(),
        body: String::new(),
        notified_at: Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap(),
    }
}

pub async fn write(pool: &PgPool, wake: &Wake, items: &[NewNotification]) {
    let mut tx = pool.begin().await.unwrap();
    for n in items {
        assert!(notifications::insert(&mut tx, n).await.unwrap());
    }
    tx.commit().await.unwrap();
    wake.wake();
}

pub struct Running {
    pub hub: Hub,
    pub wake: Wake,
    pub shutdown: CancellationToken,
}

pub async fn running_hub(pool: &PgPool, buffer: usize) -> Running {
    let hub = Hub::start(pool.clone(), settings(), buffer).await.unwrap();
    let wake = Wake::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(hub.clone().run(wake.clone(), shutdown.clone()));
    Running {
        hub,
        wake,
        shutdown,
    }
}

pub type StreamItem = Followed<Arc<StreamedNotification>>;

/// Polls `stream` until its first checkpoint (registered and caught up).
pub async fn caught_up(
    stream: &mut (impl Stream<Item = Result<StreamItem, sqlx::Error>> + Unpin),
) -> Vec<String> {
    let mut items = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("caught up in time")
            .expect("stream open")
            .unwrap();
        match next {
            Followed::Item(_, n) => items.push(n.title.clone()),
            Followed::Checkpoint(_) => return items,
        }
    }
}

/// Takes `count` notifications from `stream`, checking cursors only grow.
pub async fn take(
    stream: &mut (impl Stream<Item = Result<StreamItem, sqlx::Error>> + Unpin),
    count: usize,
) -> Vec<String> {
    let mut keys = Vec::new();
    let mut last = Cursor::START;
    while keys.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {keys:?} of {count} arrived"))
            .expect("stream open")
            .unwrap();
        if let Followed::Item(cursor, n) = next {
            assert!(cursor > last, "cursors only grow");
            last = cursor;
            keys.push(n.title.clone());
        }
    }
    keys
}

pub fn for_recipient(recipient: &str) -> StreamFilter {
    StreamFilter {
        recipients: Some(vec![recipient.into()]),
        ..Default::default()
    }
}
