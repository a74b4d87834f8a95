//! The transactional outbox: events written with the change they describe.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::cursor::{Cursor, WINDOW_CONDITION, Window};
use crate::follow::Page;

/// The stream name the outbox's horizon is kept under.
pub const OUTBOX_STREAM: &str = "outbox";

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position.
    pub cursor: Cursor,
    /// Unique id, stable across redeliveries.
    pub event_id: Uuid,
    /// Kind, e.g. "directive_issued".
    pub kind: String,
    /// The resource it concerns, e.g. "directives/12".
    pub aggregate: String,
    /// Encoded protobuf payload.
    pub payload: Vec<u8>,
    /// Commit time (transaction start, as PostgreSQL's now()).
    pub created_at: DateTime<Utc>,
}

/// Appends an event inside the caller's transaction. Wake followers with
/// [`crate::Wake::wake`] after the commit, never inside the transaction.
#[tracing::instrument(
    name = "db.outbox.append",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT", event.kind = kind)
)]
pub async fn append(
    tx: &mut PgConnection,
    kind: &str,
    aggregate: &str,
    payload: &[u8],
) -> Result<Uuid, sqlx::Error> {
    let event_id = Uuid::now_v7();
    sqlx::query("INSERT INTO outbox (event_id, kind, aggregate, payload) VALUES ($1, $2, $3, $4)")
        .bind(event_id)
        .bind(kind)
        .bind(aggregate)
        .bind(payload)
        .execute(tx)
        .await?;
    Ok(event_id)
}

/// Reads up to `limit` events after `after`, gap-free.
pub async fn read(
    conn: &mut PgConnection,
    after: Cursor,
    limit: i64,
) -> Result<Page<StoredEvent>, sqlx::Error> {
    let window = Window::open(&mut *conn, after).await?;
    let (tx, id, xmin) = window.binds();
    let rows = sqlx::query(&format!(
        "SELECT tx_id::text AS tx, id, event_id, kind, aggregate, payload, created_at \
         FROM outbox WHERE {WINDOW_CONDITION} ORDER BY tx_id, id LIMIT $4"
    ))
    .bind(tx)
    .bind(id)
    .bind(xmin)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let tx: String = row.try_get("tx")?;
        let cursor = Cursor {
            tx: tx.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            id: row.try_get("id")?,
        };
        items.push((
            cursor,
            StoredEvent {
                cursor,
                event_id: row.try_get("event_id")?,
                kind: row.try_get("kind")?,
                aggregate: row.try_get("aggregate")?,
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
            },
        ));
    }
    let full = items.len() as i64 == limit;
    let scanned_to = window.scanned_to(items.last().map(|(c, _)| *c), full);
    Ok(Page {
        items,
        scanned_to,
        full,
    })
}

/// The oldest position still served: cursors before it were pruned.
pub async fn horizon(conn: &mut PgConnection, stream: &str) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT tx_id::text, id FROM stream_horizons WHERE stream = $1")
            .bind(stream)
            .fetch_optional(conn)
            .await?;
    Ok(match row {
        Some((tx, id)) => Cursor {
            tx: tx.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            id,
        },
        None => Cursor::START,
    })
}

/// Refuses a resume point older than what is kept: OUT_OF_RANGE, so the
/// client knows to relist instead of silently missing events. An empty
/// cursor starts at the horizon.
pub async fn resume_point(
    conn: &mut PgConnection,
    stream: &str,
    after: Cursor,
) -> Result<Cursor, dondoc_errors::Error> {
    let horizon = horizon(conn, stream)
        .await
        .map_err(dondoc_database::storage_error)?;
    if after == Cursor::START {
        return Ok(horizon);
    }
    if after < horizon {
        return Err(dondoc_errors::Error::OutOfRange {
            reason: "CURSOR_EXPIRED",
            message: format!(
                "cursor {after} is older than the retained history (from {horizon}): list the current state and resume from its cursor"
            ),
        });
    }
    Ok(after)
}

/// Deletes events older than `before` and moves the horizon past them.
/// Returns how many were deleted.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    prune_log(pool, "outbox", OUTBOX_STREAM, before).await
}

/// Prunes any gap-free log table (`tx_id`, `id`, `created_at`) and records
/// its horizon under `stream`. The cut is a cursor (the newest row older than
/// `before`), so the horizon and what is deleted always agree.
pub async fn prune_log(
    pool: &PgPool,
    table: &'static str,
    stream: &str,
    before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cut: Option<(String, i64)> = sqlx::query_as(&format!(
        "SELECT tx_id::text, id FROM {table} WHERE created_at < $1 \
         ORDER BY tx_id DESC, id DESC LIMIT 1"
    ))
    .bind(before)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((cut_tx, cut_id)) = cut else {
        tx.rollback().await?;
        return Ok(0);
    };
    let deleted = sqlx::query(&format!(
        "DELETE FROM {table} WHERE (tx_id, id) <= ($1::text::xid8, $2)"
    ))
    .bind(&cut_tx)
    .bind(cut_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO stream_horizons (stream, tx_id, id) VALUES ($1, $2::text::xid8, $3) \
         ON CONFLICT (stream) DO UPDATE SET tx_id = EXCLUDED.tx_id, id = EXCLUDED.id \
         WHERE (stream_horizons.tx_id, stream_horizons.id) < (EXCLUDED.tx_id, EXCLUDED.id)",
    )
    .bind(stream)
    .bind(&cut_tx)
    .bind(cut_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}
