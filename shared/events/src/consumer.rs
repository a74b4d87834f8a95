//! Applying another service's events exactly once.
//!
//! The consumer keeps its cursor in its own schema (`consumer_cursors`) and
//! applies each event in the same transaction as the cursor update: an event
//! delivered twice (after a reconnect, a crash, a second replica) finds the
//! cursor already past it and changes nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{Stream, StreamExt};
use sqlx::{PgConnection, PgPool};
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

    /// Called after an applied event committed, e.g. to wake the
    /// consumer's own followers. Never inside the transaction.
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

/// Applies one stream item. Returns the cursor now stored.
pub async fn apply_one<E, A: Apply<E>>(
    pool: &PgPool,
    source: &str,
    item: Followed<E>,
    applier: &A,
) -> Result<Cursor, dondoc_errors::Error> {
    let storage = dondoc_database::storage_error;
    let mut tx = pool.begin().await.map_err(storage)?;
    let stored = lock_cursor(&mut tx, source).await.map_err(storage)?;
    let position = match &item {
        Followed::Item(position, _) | Followed::Checkpoint(position) => *position,
    };
    if position <= stored {
        // Already applied (a redelivery): nothing changes.
        tx.rollback().await.map_err(storage)?;
        return Ok(stored);
    }
    if let Followed::Item(_, event) = item {
        let origin = applier.origin(&event);
        let span = tracing::info_span!(
            "event.apply",
            otel.name = %format!("{source} apply"),
            otel.kind = "consumer",
            messaging.system = "dondoc",
            messaging.source = source,
            messaging.cursor = %position,
        );
        if let Some(producer) = dondoc_telemetry::span_context_from_traceparent(&origin.traceparent)
        {
            use dondoc_telemetry::OpenTelemetrySpanExt as _;
            span.add_link(producer);
        }
        applier.apply(&mut tx, event).instrument(span).await?;
    }
    store_cursor(&mut tx, source, position)
        .await
        .map_err(storage)?;
    tx.commit().await.map_err(storage)?;
    Ok(position)
}

/// Follows `source` until `shutdown`: connects from the stored cursor,
/// applies each event, reconnects after any failure with a growing pause.
/// Publishes the stored cursor on `progress`.
pub async fn run<E, A, S, C, Fut>(
    pool: PgPool,
    source: &'static str,
    connect: C,
    applier: A,
    progress: watch::Sender<Cursor>,
    shutdown: CancellationToken,
) where
    A: Apply<E>,
    C: Fn(Cursor) -> Fut,
    Fut: Future<Output = Result<S, tonic::Status>>,
    S: Stream<Item = Result<Followed<E>, tonic::Status>> + Unpin,
{
    let status = ConsumerStatus::new(source);
    run_observed(pool, connect, applier, progress, status, shutdown).await;
}

/// [`run`], reporting connection state and lag on `status`.
pub async fn run_observed<E, A, S, C, Fut>(
    pool: PgPool,
    connect: C,
    applier: A,
    progress: watch::Sender<Cursor>,
    status: ConsumerStatus,
    shutdown: CancellationToken,
) where
    A: Apply<E>,
    C: Fn(Cursor) -> Fut,
    Fut: Future<Output = Result<S, tonic::Status>>,
    S: Stream<Item = Result<Followed<E>, tonic::Status>> + Unpin,
{
    let source = status.source();
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let attempt = async {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            let start = stored_cursor(&mut conn, source)
                .await
                .map_err(|e| e.to_string())?;
            drop(conn);
            progress.send_replace(start);
            let mut stream = connect(start).await.map_err(|s| s.to_string())?;
            status.connected();
            pause = Duration::from_millis(100);
            while let Some(item) = stream.next().await {
                let item = item.map_err(|s| s.to_string())?;
                let committed_at = match &item {
                    Followed::Item(_, event) => Some(applier.origin(event).committed_at),
                    Followed::Checkpoint(_) => None,
                };
                let stored = apply_one(&pool, source, item, &applier)
                    .await
                    .map_err(|e| e.to_string())?;
                match committed_at {
                    Some(at) => status.applied(at),
                    None => status.caught_up(),
                }
                progress.send_replace(stored);
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
