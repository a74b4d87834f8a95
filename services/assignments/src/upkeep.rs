//! Work that follows the clock rather than a request: at start, every
//! [`crate::UPKEEP_TICK`] and whenever the injected clock is moved. Each
//! step is idempotent, so replicas may run it side by side.
//!
//! * occurrences of recurring duties fall due ([`crate::recurring`]);
//! * at start and whenever the long-overdue boundary has moved (once a
//!   day), the statistics counters roll the days past it into one row
//!   ([`crate::storage::statistics::roll_tallies`]) and fold their shards
//!   ([`crate::storage::statistics::fold_tallies`]).

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
    let mut upkept_until = None;
    loop {
        if let Err(error) = recurring::generate(&pool, &clock, &policy, &wake).await {
            tracing::warn!(%error, "generating occurrences of recurring duties failed");
        }
        let until = statistics::roll_until(clock.today(), &policy);
        if upkept_until != Some(until) {
            match roll_and_fold(&pool, until).await {
                Ok(folded) => {
                    tracing::debug!(%until, folded, "statistics counters rolled and folded");
                    upkept_until = Some(until);
                }
                Err(error) => {
                    tracing::warn!(%error, %until, "rolling the statistics counters failed");
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

/// Returns how many counter rows were folded.
async fn roll_and_fold(pool: &PgPool, until: NaiveDate) -> Result<u64, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(dondoc_database::storage_error)?;
    statistics::roll_tallies(&mut conn, until).await?;
    statistics::fold_tallies(&mut conn).await
}
