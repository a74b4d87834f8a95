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
}

impl Default for FollowSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            checkpoint_interval: Duration::from_secs(10),
            batch: 256,
            apply_linger: Duration::from_millis(10),
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
                _ = &mut notified => {}
                _ = tokio::time::sleep(settings.poll_interval.min(until_checkpoint)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
}
