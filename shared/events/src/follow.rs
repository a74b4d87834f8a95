//! Following a gap-free log: catch up, then wait for new rows, with
//! checkpoints while idle.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cursor::Cursor;

/// One read of a log.
#[derive(Debug)]
pub struct Page<T> {
    /// Rows with their positions, in order.
    pub items: Vec<(Cursor, T)>,
    /// How far the read looked (at least the last item's cursor).
    pub scanned_to: Cursor,
    /// True when the page hit its limit: read again at once.
    pub full: bool,
}

/// What a follower yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed<T> {
    /// A row at its position.
    Item(Cursor, T),
    /// Nothing more up to this position, for now.
    Checkpoint(Cursor),
}

/// In-process wake-up for followers after a commit. Writers call
/// [`Wake::wake`] after their transaction commits (never inside it), and
/// followers re-read at once instead of at their next poll.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// A new wake-up signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every follower waiting now.
    pub fn wake(&self) {
        self.0.notify_waiters();
    }

    /// A wake-up to wait for; register it (`enable`) before the work it
    /// guards so that a wake in between is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notified()
    }
}

/// How a follower paces itself.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// Re-read this often even without a wake-up (writes from other replicas).
    pub poll_interval: Duration,
    /// Send a checkpoint after this long without sending anything.
    pub checkpoint_interval: Duration,
    /// Rows per read.
    pub batch: i64,
    /// How long a consumer lets the first event of a transaction wait for
    /// more to join it: under steady writes, one commit (one WAL flush)
    /// then applies several events instead of one each. Zero applies at
    /// once whatever has arrived.
    pub apply_linger: Duration,
    /// The least time from one read to the next when woken: under steady
    /// commits, one read then takes what several commits wrote instead of
    /// each commit setting off a read of its own. A commit after a quiet
    /// spell is read at once. Zero reads on every wake-up.
    pub read_interval: Duration,
}

impl Default for FollowSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            checkpoint_interval: Duration::from_secs(10),
            batch: 256,
            apply_linger: Duration::from_millis(10),
            read_interval: Duration::from_millis(5),
        }
    }
}

/// Follows a log from `start`: yields every row once, in order, then waits
/// for more. A checkpoint is sent when first caught up and then whenever
/// the stream has been quiet for the checkpoint interval. Ends on
/// `shutdown`, or with the first read error.
pub fn follow<T, E, F, Fut>(
    start: Cursor,
    mut read: F,
    wake: Wake,
    settings: FollowSettings,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Followed<T>, E>>
where
    F: FnMut(Cursor, i64) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    async_stream::try_stream! {
        let mut cursor = start;
        let mut caught_up_once = false;
        let mut last_sent = Instant::now();
        loop {
            // Register for the wake-up before reading, so a commit that
            // lands during the read is not missed.
            let notified = wake.0.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let read_at = Instant::now();
            let page = read(cursor, settings.batch).await?;
            let sent_items = !page.items.is_empty();
            for (position, item) in page.items {
                cursor = position;
                yield Followed::Item(position, item);
            }
            if page.scanned_to > cursor {
                cursor = page.scanned_to;
            }
            if sent_items {
                last_sent = Instant::now();
            }
            if page.full {
                continue;
            }
            if !caught_up_once || last_sent.elapsed() >= settings.checkpoint_interval {
                caught_up_once = true;
                last_sent = Instant::now();
                yield Followed::Checkpoint(cursor);
            }
            let until_checkpoint = settings
                .checkpoint_interval
                .saturating_sub(last_sent.elapsed());
            tokio::select! {
                _ = &mut notified => {
                    let next = read_at + settings.read_interval;
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                _ = tokio::time::sleep(settings.poll_interval.min(until_checkpoint)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::{Stream, StreamExt};

    use super::*;

    /// An in-memory log of numbered events that records when it is read.
    #[derive(Clone, Default)]
    struct Log {
        events: Arc<Mutex<Vec<i64>>>,
        reads: Arc<Mutex<Vec<Instant>>>,
    }

    impl Log {
        fn append(&self, wake: &Wake) {
            let mut events = self.events.lock().unwrap();
            let next = events.len() as i64 + 1;
            events.push(next);
            wake.wake();
        }

        fn read(&self, after: Cursor) -> Page<i64> {
            self.reads.lock().unwrap().push(Instant::now());
            let items: Vec<_> = self
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|id| **id > after.id)
                .map(|id| (Cursor { tx: 1, id: *id }, *id))
                .collect();
            let scanned_to = items.last().map_or(after, |(c, _)| *c);
            Page {
                items,
                scanned_to,
                full: false,
            }
        }

        fn reads(&self) -> usize {
            self.reads.lock().unwrap().len()
        }
    }

    fn settings() -> FollowSettings {
        FollowSettings {
            poll_interval: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(60),
            batch: 100,
            apply_linger: Duration::ZERO,
            read_interval: Duration::from_millis(5),
        }
    }

    fn items(followed: &[Followed<i64>]) -> Vec<i64> {
        followed
            .iter()
            .filter_map(|f| match f {
                Followed::Item(_, id) => Some(*id),
                Followed::Checkpoint(_) => None,
            })
            .collect()
    }

    /// A follower of `log`, caught up, after a second without commits.
    async fn quiet_follower(
        log: &Log,
        wake: &Wake,
    ) -> std::pin::Pin<Box<dyn Stream<Item = Result<Followed<i64>, ()>>>> {
        let source = log.clone();
        let mut stream = Box::pin(follow(
            Cursor::START,
            move |after, _| std::future::ready(Ok::<_, ()>(source.read(after))),
            wake.clone(),
            settings(),
            CancellationToken::new(),
        ));
        assert!(matches!(
            stream.next().await,
            Some(Ok(Followed::Checkpoint(_)))
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        stream
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_after_a_quiet_spell_is_read_at_once() {
        let (log, wake) = (Log::default(), Wake::new());
        let mut stream = quiet_follower(&log, &wake).await;

        let woken = Instant::now();
        log.append(&wake);
        let next = stream.next().await.unwrap().unwrap();
        assert_eq!(items(&[next]), [1]);
        assert_eq!(
            woken.elapsed(),
            Duration::ZERO,
            "no wait after a quiet spell"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn commits_within_the_read_interval_are_read_together() {
        let (log, wake) = (Log::default(), Wake::new());
        let mut stream = quiet_follower(&log, &wake).await;
        log.append(&wake);
        assert_eq!(items(&[stream.next().await.unwrap().unwrap()]), [1]);
        let first_read = *log.reads.lock().unwrap().last().unwrap();
        let reads = log.reads();

        // Three more commits, each waking the follower, within 5 ms of that read.
        let writer = {
            let (log, wake) = (log.clone(), wake.clone());
            tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    log.append(&wake);
                }
            })
        };
        let mut followed = Vec::new();
        while items(&followed).len() < 3 {
            followed.push(stream.next().await.unwrap().unwrap());
        }
        writer.await.unwrap();
        assert_eq!(items(&followed), [2, 3, 4]);
        assert_eq!(log.reads(), reads + 1, "one read took all three");
        let second_read = *log.reads.lock().unwrap().last().unwrap();
        assert_eq!(second_read - first_read, Duration::from_millis(5));
    }
}
