//! Applying another service's events exactly once.
//!
//! The consumer keeps its cursor in its own schema (`consumer_cursors`) and
//! applies each event in the same transaction as the cursor update: an event
//! delivered twice (after a reconnect, a crash, a second replica) finds the
//! cursor already past it and changes nothing.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
        applier.apply(&mut tx, event).await?;
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
            pause = Duration::from_millis(100);
            while let Some(item) = stream.next().await {
                let item = item.map_err(|s| s.to_string())?;
                let stored = apply_one(&pool, source, item, &applier)
                    .await
                    .map_err(|e| e.to_string())?;
                progress.send_replace(stored);
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            result = attempt => match result {
                Ok(()) => tracing::info!(source, "event stream ended; reconnecting"),
                Err(error) => {
                    tracing::warn!(source, %error, "event stream failed; reconnecting");
                }
            },
            _ = shutdown.cancelled() => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
