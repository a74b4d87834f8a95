//! Applying another service's events exactly once.
//!
//! The consumer keeps its cursor in its own schema (`consumer_cursors`) and
//! applies each event in the same transaction as the cursor update: an event
//! delivered twice (after a reconnect, a crash, a second replica) finds the
//! cursor already past it and changes nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dondoc_database::HotConnections;
use futures::{FutureExt as _, Stream, StreamExt};
use sqlx::PgConnection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::cursor::Cursor;
use crate::follow::Followed;

/// Applies one event inside the consumer's transaction.
pub trait Apply<E>: Send + Sync {
    /// Makes the event's effects in `tx`. An error rolls the event back and
    /// the consumer retries it after reconnecting.
    fn apply(
        &self,
        tx: &mut PgConnection,
        event: E,
    ) -> impl Future<Output = Result<(), dondoc_errors::Error>> + Send;

    /// Called once after a transaction that applied events committed
    /// (a batch: once for all of them), e.g. to wake the consumer's own
    /// followers. Never inside the transaction.
    fn committed(&self) {}

    /// What the event says about its origin: the producer's `traceparent`
    /// (the apply span links to it) and its commit time (consumer lag).
    fn origin(&self, _event: &E) -> Origin {
        Origin::default()
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// W3C traceparent of the request that made the change; empty if none.
    pub traceparent: String,
    /// When the producer committed it.
    pub committed_at: Option<SystemTime>,
}

/// What a consumer reports about itself (metrics, readiness), shared
/// between the consumer task and the admin listener.
#[derive(Debug, Clone)]
pub struct ConsumerStatus {
    source: &'static str,
    inner: Arc<Mutex<StatusInner>>,
}

#[derive(Debug)]
struct StatusInner {
    connected: bool,
    /// When the stream was lost (or the consumer started unconnected).
    disconnected_since: Instant,
    /// Commit-to-apply delay of the last applied event; zero once a
    /// checkpoint said the consumer is caught up.
    lag: Duration,
    applied: u64,
}

impl ConsumerStatus {
    /// A consumer of `source`, not yet connected.
    pub fn new(source: &'static str) -> Self {
        Self {
            source,
            inner: Arc::new(Mutex::new(StatusInner {
                connected: false,
                disconnected_since: Instant::now(),
                lag: Duration::ZERO,
                applied: 0,
            })),
        }
    }

    /// The upstream's name, e.g. `directives`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    fn update(&self, change: impl FnOnce(&mut StatusInner)) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut inner);
    }

    fn read<T>(&self, read: impl FnOnce(&StatusInner) -> T) -> T {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        read(&inner)
    }

    fn connected(&self) {
        self.update(|s| s.connected = true);
    }

    fn disconnected(&self) {
        self.update(|s| {
            if s.connected {
                s.connected = false;
                s.disconnected_since = Instant::now();
            }
        });
    }

    fn applied(&self, committed_at: Option<SystemTime>) {
        let lag = committed_at
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        self.update(|s| {
            s.lag = lag;
            s.applied += 1;
        });
    }

    fn caught_up(&self) {
        self.update(|s| s.lag = Duration::ZERO);
    }

    /// Whether the upstream stream is open.
    pub fn is_connected(&self) -> bool {
        self.read(|s| s.connected)
    }

    /// How long the stream has been lost, or `None` while it is open.
    pub fn disconnected_for(&self) -> Option<Duration> {
        self.read(|s| (!s.connected).then(|| s.disconnected_since.elapsed()))
    }

    /// How far behind its upstream the consumer is: while connected, the
    /// commit-to-apply delay of the last event applied (zero after a
    /// checkpoint: caught up); while disconnected, at least the time since
    /// the stream was lost.
    pub fn lag(&self) -> Duration {
        self.read(|s| {
            if s.connected {
                s.lag
            } else {
                s.lag.max(s.disconnected_since.elapsed())
            }
        })
    }

    /// Events applied since start (redeliveries not counted).
    pub fn applied_total(&self) -> u64 {
        self.read(|s| s.applied)
    }
}

/// Reads the stored cursor of `source`.
pub async fn stored_cursor(conn: &mut PgConnection, source: &str) -> Result<Cursor, sqlx::Error> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT cursor FROM consumer_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(conn)
            .await?;
    Ok(text
        .as_deref()
        .and_then(Cursor::parse)
        .unwrap_or(Cursor::START))
}

async fn lock_cursor(conn: &mut PgConnection, source: &str) -> Result<Cursor, sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_cursors (source, cursor) VALUES ($1, '') ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .execute(&mut *conn)
    .await?;
    let text: String =
        sqlx::query_scalar("SELECT cursor FROM consumer_cursors WHERE source = $1 FOR UPDATE")
            .bind(source)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Cursor::parse(&text).unwrap_or(Cursor::START))
}

async fn store_cursor(
    conn: &mut PgConnection,
    source: &str,
    cursor: Cursor,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE consumer_cursors SET cursor = $2, updated_at = now() WHERE source = $1")
        .bind(source)
        .bind(cursor.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// How many stream items one transaction applies at most.
pub const MAX_BATCH: usize = 128;

/// Applies one stream item. Returns the cursor now stored.
pub async fn apply_one<E: Clone, A: Apply<E>>(
    hot: &HotConnections,
    source: &str,
    item: Followed<E>,
    applier: &A,
) -> Result<Cursor, dondoc_errors::Error> {
    apply_batch(hot, source, vec![item], applier).await
}

/// Applies stream items in order in one transaction with the cursor
/// update: one commit, so one WAL flush, for the whole batch. Items at or
/// before the stored cursor are redeliveries and change nothing. If an
/// event of a batch fails, the batch is applied again item by item, so the
/// events before the failing one still land and the error returned is the
/// failing event's. Returns the cursor now stored.
pub async fn apply_batch<E: Clone, A: Apply<E>>(
    hot: &HotConnections,
    source: &str,
    items: Vec<Followed<E>>,
    applier: &A,
) -> Result<Cursor, dondoc_errors::Error> {
    if items.len() != 1 {
        match apply_in_transaction(hot, source, items.clone(), applier).await {
            Ok(stored) => return Ok(stored),
            Err(error) => {
                tracing::debug!(source, %error, events = items.len(), "batch failed; applying its events one by one");
            }
        }
    }
    let mut stored = Cursor::START;
    for item in items {
        stored = apply_in_transaction(hot, source, vec![item], applier).await?;
    }
    Ok(stored)
}

async fn apply_in_transaction<E, A: Apply<E>>(
    hot: &HotConnections,
    source: &str,
    items: Vec<Followed<E>>,
    applier: &A,
) -> Result<Cursor, dondoc_errors::Error> {
    let storage = dondoc_database::storage_error;
    let mut tx = hot.begin().await.map_err(storage)?;
    let stored = lock_cursor(&mut tx, source).await.map_err(storage)?;
    let mut position = stored;
    let mut applied = false;
    for item in items {
        let (at, event) = match item {
            Followed::Item(at, event) => (at, Some(event)),
            Followed::Checkpoint(at) => (at, None),
        };
        if at <= position {
            // Already applied (a redelivery): nothing changes.
            continue;
        }
        position = at;
        let Some(event) = event else { continue };
        let origin = applier.origin(&event);
        let span = tracing::info_span!(
            "event.apply",
            otel.name = %format!("{source} apply"),
            otel.kind = "consumer",
            messaging.system = "dondoc",
            messaging.source = source,
            messaging.cursor = %at,
        );
        if let Some(producer) = dondoc_telemetry::span_context_from_traceparent(&origin.traceparent)
        {
            use dondoc_telemetry::OpenTelemetrySpanExt as _;
            span.add_link(producer);
        }
        applier.apply(&mut tx, event).instrument(span).await?;
        applied = true;
    }
    if position == stored {
        tx.rollback().await.map_err(storage)?;
        return Ok(stored);
    }
    store_cursor(&mut tx, source, position)
        .await
        .map_err(storage)?;
    tx.commit().await.map_err(storage)?;
    if applied {
        applier.committed();
    }
    Ok(position)
}

/// Follows the source of `status` until `shutdown`: connects from the
/// stored cursor, applies the events in batches (the first event of a batch
/// waits up to `linger` for more to apply in the same transaction; zero:
/// only what has already arrived), reconnects after any failure with a
/// growing pause. Publishes the stored cursor on `progress` and reports
/// connection state and lag on `status`.
pub async fn run_observed<E, A, S, C, Fut>(
    hot: HotConnections,
    connect: C,
    applier: A,
    progress: watch::Sender<Cursor>,
    status: ConsumerStatus,
    linger: Duration,
    shutdown: CancellationToken,
) where
    E: Clone,
    A: Apply<E>,
    C: Fn(Cursor) -> Fut,
    Fut: Future<Output = Result<S, tonic::Status>>,
    S: Stream<Item = Result<Followed<E>, tonic::Status>> + Unpin,
{
    let source = status.source();
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let attempt = async {
            let mut conn = hot.acquire().await.map_err(|e| e.to_string())?;
            let start = stored_cursor(&mut conn, source)
                .await
                .map_err(|e| e.to_string())?;
            conn.release();
            progress.send_replace(start);
            let mut stream = connect(start).await.map_err(|s| s.to_string())?;
            status.connected();
            pause = Duration::from_millis(100);
            while let Some(item) = stream.next().await {
                let (batch, after) = gather(item, &mut stream, linger).await;
                let batch = batch.map_err(|s| s.to_string())?;
                let origins: Vec<_> = batch
                    .iter()
                    .map(|item| match item {
                        Followed::Item(_, event) => Some(applier.origin(event).committed_at),
                        Followed::Checkpoint(_) => None,
                    })
                    .collect();
                let stored = apply_batch(&hot, source, batch, &applier)
                    .await
                    .map_err(|e| e.to_string())?;
                for origin in origins {
                    match origin {
                        Some(at) => status.applied(at),
                        None => status.caught_up(),
                    }
                }
                progress.send_replace(stored);
                match after {
                    After::More => {}
                    After::Ended => break,
                    After::Failed(error) => return Err(error.to_string()),
                }
            }
            Ok::<(), String>(())
        };
        let result = tokio::select! {
            result = attempt => Some(result),
            _ = shutdown.cancelled() => None,
        };
        status.disconnected();
        match result {
            None => break,
            Some(result) => match result {
                Ok(()) => tracing::info!(source, "event stream ended; reconnecting"),
                Err(error) => {
                    tracing::warn!(source, %error, "event stream failed; reconnecting");
                }
            },
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// What the stream did after a gathered batch.
enum After {
    /// Still open.
    More,
    /// Ended cleanly.
    Ended,
    /// Failed: apply the batch, then reconnect.
    Failed(tonic::Status),
}

/// Gathers a batch from `first` on: everything the stream already holds
/// and, after an event, whatever arrives within `linger`, up to
/// [`MAX_BATCH`] items. A checkpoint closes the batch (the upstream is
/// caught up, so waiting would only delay it). A stream error or end after
/// the first item is reported next to the batch, so what arrived before it
/// is still applied.
async fn gather<E, S>(
    first: Result<Followed<E>, tonic::Status>,
    stream: &mut S,
    linger: Duration,
) -> (Result<Vec<Followed<E>>, tonic::Status>, After)
where
    S: Stream<Item = Result<Followed<E>, tonic::Status>> + Unpin,
{
    let first = match first {
        Ok(item) => item,
        Err(status) => return (Err(status), After::More),
    };
    let mut open = matches!(first, Followed::Item(..));
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + linger;
    while open && batch.len() < MAX_BATCH {
        let next = match stream.next().now_or_never() {
            Some(next) => next,
            None if linger.is_zero() => break,
            None => match tokio::time::timeout_at(until, stream.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        match next {
            Some(Ok(item)) => {
                open = matches!(item, Followed::Item(..));
                batch.push(item);
            }
            Some(Err(status)) => return (Ok(batch), After::Failed(status)),
            None => return (Ok(batch), After::Ended),
        }
    }
    (Ok(batch), After::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64) -> Result<Followed<i64>, tonic::Status> {
        Ok(Followed::Item(Cursor { tx: 1, id }, id))
    }

    fn ids(batch: &[Followed<i64>]) -> Vec<i64> {
        batch
            .iter()
            .map(|item| match item {
                Followed::Item(_, id) => *id,
                Followed::Checkpoint(_) => -1,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_first_event_waits_for_more_until_a_checkpoint_closes_the_batch() {
        let (send, mut stream) = futures::channel::mpsc::unbounded();
        send.unbounded_send(item(2)).unwrap();
        let (gathering, started) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            // Only once gather has taken what had arrived and is waiting.
            started.await.ok();
            send.unbounded_send(item(3)).unwrap();
            send.unbounded_send(Ok(Followed::Checkpoint(Cursor { tx: 1, id: 9 })))
                .unwrap();
            send.unbounded_send(item(10)).unwrap();
        });
        let mut gathering = Some(gathering);
        let first = item(1);
        // A linger far longer than the test: only the checkpoint can end it.
        let watch = futures::stream::poll_fn(|cx| {
            let polled = stream.poll_next_unpin(cx);
            if polled.is_pending()
                && let Some(tell) = gathering.take()
            {
                tell.send(()).ok();
            }
            polled
        });
        tokio::pin!(watch);
        let (batch, after) = gather(first, &mut watch, Duration::from_secs(3600)).await;
        assert_eq!(ids(&batch.unwrap()), [1, 2, 3, -1]);
        assert!(matches!(after, After::More));
        // The item after the checkpoint starts the next batch.
        let next = watch.next().await.unwrap();
        assert_eq!(ids(&[next.unwrap()]), [10]);
    }

    #[tokio::test]
    async fn the_linger_ends_a_batch_that_nothing_joins() {
        let mut stream = futures::stream::pending();
        let (batch, after) = gather(item(1), &mut stream, Duration::from_millis(5)).await;
        assert_eq!(ids(&batch.unwrap()), [1]);
        assert!(matches!(after, After::More));
    }

    #[tokio::test]
    async fn without_linger_only_what_has_arrived_is_gathered() {
        let mut stream =
            futures::stream::iter([item(2), item(3)]).chain(futures::stream::pending());
        // A pending stream with no linger must not wait at all; a wait
        // would hang this test.
        let (batch, after) = gather(item(1), &mut stream, Duration::ZERO).await;
        assert_eq!(ids(&batch.unwrap()), [1, 2, 3]);
        assert!(matches!(after, After::More));
    }

    #[tokio::test]
    async fn a_batch_that_starts_with_a_checkpoint_does_not_wait() {
        let mut stream = futures::stream::pending();
        let (batch, _) = gather(
            Ok(Followed::Checkpoint(Cursor { tx: 1, id: 9 })),
            &mut stream,
            Duration::from_secs(3600),
        )
        .await;
        assert_eq!(ids(&batch.unwrap()), [-1]);
    }

    #[tokio::test]
    async fn what_arrived_before_an_error_or_the_end_is_still_applied() {
        let mut failing = futures::stream::iter([item(2), Err(tonic::Status::unavailable("gone"))]);
        let (batch, after) = gather(item(1), &mut failing, Duration::from_millis(10)).await;
        assert_eq!(ids(&batch.unwrap()), [1, 2]);
        assert!(
            matches!(after, After::Failed(status) if status.code() == tonic::Code::Unavailable)
        );

        let mut ending = futures::stream::iter([item(2)]);
        let (batch, after) = gather(item(1), &mut ending, Duration::from_millis(10)).await;
        assert_eq!(ids(&batch.unwrap()), [1, 2]);
        assert!(matches!(after, After::Ended));

        let mut rest = futures::stream::pending();
        let (batch, _) = gather(
            Err::<Followed<i64>, _>(tonic::Status::internal("first")),
            &mut rest,
            Duration::from_millis(10),
        )
        .await;
        assert_eq!(batch.unwrap_err().code(), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_max_batch_items() {
        let mut stream =
            futures::stream::iter((2..1000).map(item)).chain(futures::stream::pending());
        let (batch, _) = gather(item(1), &mut stream, Duration::from_millis(10)).await;
        assert_eq!(batch.unwrap().len(), MAX_BATCH);
    }
}
