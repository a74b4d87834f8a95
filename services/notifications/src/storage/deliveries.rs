//! Deliveries of notifications to webhook and e-mail subscriptions: queued
//! by the statement that writes the notification (unique per subscription
//! and notification; see
//! [`insert_many`](crate::storage::notifications::insert_many)), claimed
//! with `FOR UPDATE SKIP LOCKED` under a lease, fenced by a token, and
//! every attempt recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A claimed delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    /// Id.
    pub id: i64,
    /// Subscription.
    pub subscription_id: i64,
    /// Notification.
    pub notification_id: Uuid,
    /// Attempts made before this one.
    pub attempts: i32,
    /// Fencing token of this claim.
    pub lease_token: i64,
}

/// Claims up to `limit` deliveries due by `now` (the injected clock) whose
/// lease, if any, has expired, of subscriptions still enabled.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedDelivery>, Error> {
    // In claim order (see `jobs::claim`): a webhook hears of notifications
    // in the order they were due.
    sqlx::query_as::<_, ClaimedDelivery>(
        "WITH claimed AS (UPDATE deliveries SET lease_token = nextval('delivery_fencing'), \
         lease_until = clock_timestamp() + make_interval(secs => $3) \
         WHERE id IN (SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id \
           WHERE d.state = 'PENDING' AND d.next_attempt_at <= $1 \
           AND (d.lease_until IS NULL OR d.lease_until < clock_timestamp()) \
           AND NOT s.disabled AND NOT s.deleted \
           ORDER BY d.next_attempt_at, d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
         RETURNING id, subscription_id, notification_id, attempts, lease_token, next_attempt_at) \
         SELECT id, subscription_id, notification_id, attempts, lease_token FROM claimed \
         ORDER BY next_attempt_at, id",
    )
    .bind(now)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(storage_error)
}

/// Locks a claimed delivery and checks that this claim still holds it:
/// false when it was settled, or rescued by another replica.
pub async fn still_mine(conn: &mut PgConnection, d: &ClaimedDelivery) -> Result<bool, Error> {
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT state, lease_token FROM deliveries WHERE id = $1 FOR UPDATE")
            .bind(d.id)
            .fetch_optional(conn)
            .await
            .map_err(storage_error)?;
    Ok(matches!(row, Some((state, Some(token))) if state == "PENDING" && token == d.lease_token))
}

/// One attempt, as it happened.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Attempt {
    /// Its number, from 1.
    pub attempt: i32,
    /// When (injected clock).
    pub attempted_at: DateTime<Utc>,
    /// HTTP status, when there was an answer.
    pub status_code: Option<i32>,
    /// What went wrong, if anything.
    pub error: String,
    /// How long it took.
    pub duration_ms: i32,
}

/// Records an attempt.
pub async fn record_attempt(
    conn: &mut PgConnection,
    delivery_id: i64,
    a: &Attempt,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(delivery_id)
    .bind(a.attempt)
    .bind(a.attempted_at)
    .bind(a.status_code)
    .bind(&a.error)
    .bind(a.duration_ms)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Every attempt of a delivery, in order.
pub async fn attempts(conn: &mut PgConnection, delivery_id: i64) -> Result<Vec<Attempt>, Error> {
    sqlx::query_as::<_, Attempt>(
        "SELECT attempt, attempted_at, status_code, error, duration_ms FROM delivery_attempts \
         WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(delivery_id)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Sets a delivery's state after an attempt; the lease is released.
pub async fn settle(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
    attempts: i32,
    last_result: &str,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE deliveries SET state = $2, attempts = $3, last_result = $4, \
         next_attempt_at = COALESCE($5, next_attempt_at), lease_token = NULL, lease_until = NULL, updated_at = $6 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(attempts)
    .bind(last_result)
    .bind(next_attempt_at)
    .bind(now)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Ends every pending delivery of a subscription as a dead letter.
pub async fn dead_letter_pending(
    conn: &mut PgConnection,
    subscription_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE deliveries SET state = 'DEAD_LETTER', last_result = $2, lease_token = NULL, lease_until = NULL, \
         updated_at = $3 WHERE subscription_id = $1 AND state = 'PENDING'",
    )
    .bind(subscription_id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}

/// A delivery as listed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredDelivery {
    /// Id.
    pub id: i64,
    /// Subscription.
    pub subscription_id: i64,
    /// Notification.
    pub notification_id: Uuid,
    /// State.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Last status or error.
    pub last_result: String,
    /// Next attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Deliveries of a subscription, optionally in one state, after id `after`.
pub async fn list(
    conn: &mut PgConnection,
    subscription_id: i64,
    state: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredDelivery>, Error> {
    sqlx::query_as::<_, StoredDelivery>(
        "SELECT id, subscription_id, notification_id, state, attempts, last_result, next_attempt_at, updated_at \
         FROM deliveries WHERE subscription_id = $1 AND ($2::text IS NULL OR state = $2) AND id > $3 \
         ORDER BY id LIMIT $4",
    )
    .bind(subscription_id)
    .bind(state)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Queues deliveries again, at once, with a fresh retry schedule: the named
/// ones (unless delivered), or every dead letter. Returns how many.
pub async fn replay(
    conn: &mut PgConnection,
    subscription_id: i64,
    ids: Option<&[i64]>,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE deliveries SET state = 'PENDING', attempts = 0, next_attempt_at = $3, lease_token = NULL, \
         lease_until = NULL, updated_at = $3 \
         WHERE subscription_id = $1 AND state <> 'DELIVERED' \
         AND (($2::bigint[] IS NULL AND state = 'DEAD_LETTER') OR id = ANY($2))",
    )
    .bind(subscription_id)
    .bind(ids)
    .bind(now)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}

/// The earliest pending attempt, for the worker's sleep.
pub async fn next_attempt_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>, Error> {
    sqlx::query_scalar("SELECT min(next_attempt_at) FROM deliveries WHERE state = 'PENDING'")
        .fetch_one(pool)
        .await
        .map_err(storage_error)
}
