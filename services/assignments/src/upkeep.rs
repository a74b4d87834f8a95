//! Work that follows the clock rather than a request: at start, every
//! [`crate::UPKEEP_TICK`] and whenever the injected clock is moved. Each
//! step is idempotent, so replicas may run it side by side.
//!
//! * occurrences of recurring duties fall due ([`crate::recurring`]);
//! * at start and whenever the day has changed, the statistics counters
//!   roll the days past the long-overdue boundary into one row
//!   ([`crate::storage::statistics::roll_tallies`]), fold their shards
//!   ([`crate::storage::statistics::fold_tallies`]) and sum the days from
//!   there to today ([`crate::storage::statistics::sum_overdue_tallies`]).

use std::time::Duration;

use chrono::NaiveDate;
use dondoc_errors::Error;
use dondoc_events::Wake;
use dondoc_time::Clock;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::deadline::DeadlinePolicy;
use crate::recurring;
use crate::storage::statistics;

/// Runs the upkeep until `shutdown`.
pub async fn run(
    pool: PgPool,
    clock: Clock,
    policy: DeadlinePolicy,
    wake: Wake,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut changes = clock.changes();
    let mut upkept_on = None;
    loop {
        if let Err(error) = recurring::generate(&pool, &clock, &policy, &wake).await {
            tracing::warn!(%error, "generating occurrences of recurring duties failed");
        }
        let today = clock.today();
        if upkept_on != Some(today) {
            match upkeep_tallies(&pool, today, &policy).await {
                Ok(folded) => {
                    tracing::debug!(%today, folded, "statistics counters rolled, folded and summed");
                    upkept_on = Some(today);
                }
                Err(error) => {
                    tracing::warn!(%error, %today, "the upkeep of the statistics counters failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = changes.changed() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Rolls, folds and sums the counters for `today`; returns how many
/// counter rows were folded.
async fn upkeep_tallies(
    pool: &PgPool,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<u64, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(dondoc_database::storage_error)?;
    statistics::roll_tallies(&mut conn, statistics::roll_until(today, policy)).await?;
    let folded = statistics::fold_tallies(&mut conn).await?;
    statistics::sum_overdue_tallies(&mut conn, statistics::sum_overdue_until(today, policy))
        .await?;
    Ok(folded)
}
