//! Retention: notifications, the outbox and finished work older than the
//! retention period are deleted; a stream cursor older than what is kept
//! then gets OUT_OF_RANGE (the horizon moves with the cut).

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::PgPool;

/// What one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Notifications.
    pub notifications: u64,
    /// Outbox events.
    pub outbox: u64,
    /// Finished jobs and deliveries.
    pub finished: u64,
}

/// Deletes what is older than `before`.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<Pruned, Error> {
    let notifications = dondoc_events::outbox::prune_log(
        pool,
        "notifications",
        super::notifications::STREAM,
        before,
    )
    .await
    .map_err(storage_error)?;
    let outbox = dondoc_events::outbox::prune(pool, before)
        .await
        .map_err(storage_error)?;
    let mut finished = 0;
    for statement in [
        "DELETE FROM reminder_jobs WHERE state <> 'PENDING' AND done_at < $1",
        "DELETE FROM digest_jobs WHERE state <> 'PENDING' AND done_at < $1",
        "DELETE FROM deliveries WHERE state <> 'PENDING' AND updated_at < $1",
    ] {
        finished += sqlx::query(statement)
            .bind(before)
            .execute(pool)
            .await
            .map_err(storage_error)?
            .rows_affected();
    }
    Ok(Pruned {
        notifications,
        outbox,
        finished,
    })
}
