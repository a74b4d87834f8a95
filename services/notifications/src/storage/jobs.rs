//! Reminder jobs: scheduled with a unique dedupe key, claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease, fenced by a token.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::{PgConnection, PgPool};

use crate::domain::policy::Reminder;

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Dedupe key within the task and version.
    pub key: String,
    /// Kind.
    pub kind: String,
    /// Deadline version it was scheduled for.
    pub deadline_version: i32,
    /// When it was due.
    pub fire_at: DateTime<Utc>,
    /// Fencing token of this claim.
    pub lease_token: i64,
}

/// Schedules reminders of a task's deadline version, in one statement;
/// existing ones are kept. Returns how many were added.
pub async fn schedule(
    conn: &mut PgConnection,
    task_id: i64,
    deadline_version: i32,
    reminders: &[Reminder],
) -> Result<u64, Error> {
    if reminders.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "INSERT INTO reminder_jobs (task_id, key, kind, deadline_version, fire_at) \
         SELECT $1, key, kind, $2, fire_at FROM unnest($3::text[], $4::text[], $5::timestamptz[]) \
           WITH ORDINALITY AS r(key, kind, fire_at, position) \
         ORDER BY position ON CONFLICT (task_id, key, deadline_version) DO NOTHING",
    )
    .bind(task_id)
    .bind(deadline_version)
    .bind(reminders.iter().map(|r| r.key.as_str()).collect::<Vec<_>>())
    .bind(
        reminders
            .iter()
            .map(|r| r.kind.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(reminders.iter().map(|r| r.fire_at).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}

/// Cancels pending reminders of a task that no longer apply: every one
/// when `keep_version` is `None` (task closed), else those of other versions.
pub async fn cancel_pending(
    conn: &mut PgConnection,
    task_id: i64,
    keep_version: Option<i32>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE reminder_jobs SET state = 'CANCELLED' WHERE task_id = $1 AND state = 'PENDING' \
         AND ($2::int IS NULL OR deadline_version <> $2)",
    )
    .bind(task_id)
    .bind(keep_version)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}

/// Claims up to `limit` jobs due by `now` (the injected clock) whose lease,
/// if any, has expired (by the database's real clock: leases are about
/// processes, not deadlines).
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, Error> {
    // In claim order: an UPDATE returns its rows in whatever order its plan
    // visits them, and a batch is handled (and its notifications written)
    // in the order returned, so "due today" could reach a stream before
    // "due in seven days" when both fell due at once.
    sqlx::query_as::<_, ClaimedJob>(
        "WITH claimed AS (UPDATE reminder_jobs SET lease_token = nextval('reminder_fencing'), \
         lease_until = clock_timestamp() + make_interval(secs => $3), attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM reminder_jobs WHERE state = 'PENDING' AND fire_at <= $1 \
           AND (lease_until IS NULL OR lease_until < clock_timestamp()) \
           ORDER BY fire_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, task_id, key, kind, deadline_version, fire_at, lease_token) \
         SELECT * FROM claimed ORDER BY fire_at, id",
    )
    .bind(now)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(storage_error)
}

/// Locks a claimed job and checks that this claim still holds it: false
/// when it was finished, cancelled, or rescued by another replica.
pub async fn still_mine(conn: &mut PgConnection, job: &ClaimedJob) -> Result<bool, Error> {
    Ok(still_mine_many(conn, std::slice::from_ref(job))
        .await?
        .contains(&job.id))
}

/// Locks claimed jobs and returns the ids of those this claim still holds
/// (the batch form of [`still_mine`]).
pub async fn still_mine_many(
    conn: &mut PgConnection,
    claimed: &[ClaimedJob],
) -> Result<HashSet<i64>, Error> {
    let ids: Vec<i64> = claimed.iter().map(|job| job.id).collect();
    let tokens: Vec<i64> = claimed.iter().map(|job| job.lease_token).collect();
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT j.id FROM reminder_jobs j JOIN unnest($1::bigint[], $2::bigint[]) AS c(id, token) \
         ON j.id = c.id AND j.lease_token = c.token WHERE j.state = 'PENDING' \
         ORDER BY j.id FOR UPDATE OF j",
    )
    .bind(&ids)
    .bind(&tokens)
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    Ok(held.into_iter().collect())
}

/// Finishes jobs as DONE or CANCELLED.
pub async fn finish_many(
    conn: &mut PgConnection,
    job_ids: &[i64],
    state: &str,
) -> Result<(), Error> {
    if job_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE reminder_jobs SET state = $2, done_at = clock_timestamp(), lease_until = NULL WHERE id = ANY($1)")
        .bind(job_ids)
        .bind(state)
        .execute(conn)
        .await
        .map_err(storage_error)?;
    Ok(())
}

/// The earliest pending fire time, for the scheduler's sleep.
pub async fn next_fire_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>, Error> {
    sqlx::query_scalar("SELECT min(fire_at) FROM reminder_jobs WHERE state = 'PENDING'")
        .fetch_one(pool)
        .await
        .map_err(storage_error)
}

/// Reminder backlog at scrape time: `dondoc_reminder_backlog` (due, not yet
/// handled) and `dondoc_reminder_oldest_due_age_seconds`, by the injected
/// clock. One index range scan of the partial index `reminder_jobs_claim`.
pub fn backlog_collector(
    metrics: &dondoc_server::metrics::Metrics,
    pool: PgPool,
    clock: dondoc_time::Clock,
) {
    metrics.collect(move || {
        let pool = pool.clone();
        let now = clock.now();
        async move {
            let row: Result<(i64, Option<DateTime<Utc>>), _> = sqlx::query_as(
                "SELECT count(*), min(fire_at) FROM reminder_jobs \
                 WHERE state = 'PENDING' AND fire_at <= $1",
            )
            .bind(now)
            .fetch_one(&pool)
            .await;
            let Ok((backlog, oldest)) = row else {
                return String::new();
            };
            let age = oldest
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            format!(
                "# HELP dondoc_reminder_backlog Reminder jobs due and not yet handled.\n\
                 # TYPE dondoc_reminder_backlog gauge\n\
                 dondoc_reminder_backlog {backlog}\n\
                 # HELP dondoc_reminder_oldest_due_age_seconds How long the oldest due reminder has waited (0 when none).\n\
                 # TYPE dondoc_reminder_oldest_due_age_seconds gauge\n\
                 dondoc_reminder_oldest_due_age_seconds {age}\n"
            )
        }
    });
}
