//! Weekly digest jobs: one per agency and week (a unique key), claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease, fenced by a token, like reminders.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::{PgConnection, PgPool};

/// A claimed digest job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDigest {
    /// Id.
    pub id: i64,
    /// Agency code.
    pub agency: String,
    /// The week's Monday.
    pub week: NaiveDate,
    /// When it was due.
    pub fire_at: DateTime<Utc>,
    /// Fencing token of this claim.
    pub lease_token: i64,
}

/// Plans the digest of `week` for each agency; existing ones are kept.
pub async fn plan(
    conn: &mut PgConnection,
    agencies: &[String],
    week: NaiveDate,
    fire_at: DateTime<Utc>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "INSERT INTO digest_jobs (agency, week, fire_at) SELECT a, $2, $3 FROM unnest($1::text[]) AS a \
         ON CONFLICT (agency, week) DO NOTHING",
    )
    .bind(agencies)
    .bind(week)
    .bind(fire_at)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}

/// Claims due digests, like [`super::jobs::claim`].
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedDigest>, Error> {
    // In claim order (see `jobs::claim`).
    sqlx::query_as::<_, ClaimedDigest>(
        "WITH claimed AS (UPDATE digest_jobs SET lease_token = nextval('reminder_fencing'), \
         lease_until = clock_timestamp() + make_interval(secs => $3), attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM digest_jobs WHERE state = 'PENDING' AND fire_at <= $1 \
           AND (lease_until IS NULL OR lease_until < clock_timestamp()) \
           ORDER BY fire_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, agency, week, fire_at, lease_token) \
         SELECT * FROM claimed ORDER BY fire_at, id",
    )
    .bind(now)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(storage_error)
}

/// Locks a claimed digest and checks that this claim still holds it.
pub async fn still_mine(conn: &mut PgConnection, job: &ClaimedDigest) -> Result<bool, Error> {
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT state, lease_token FROM digest_jobs WHERE id = $1 FOR UPDATE")
            .bind(job.id)
            .fetch_optional(conn)
            .await
            .map_err(storage_error)?;
    Ok(matches!(row, Some((state, Some(token))) if state == "PENDING" && token == job.lease_token))
}

/// Finishes a digest job as DONE or EMPTY.
pub async fn finish(conn: &mut PgConnection, id: i64, state: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE digest_jobs SET state = $2, done_at = clock_timestamp(), lease_until = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}
