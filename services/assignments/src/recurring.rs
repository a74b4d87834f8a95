//! Generating the occurrences of recurring duties as the clock moves: on
//! creation of a duty, and at every tick of [`crate::upkeep`].
//! Idempotent: one occurrence per (duty, due date), whoever runs it.

use chrono::NaiveDate;
use dondoc_contracts::assignments::v1::TaskEventKind;
use dondoc_errors::Error;
use dondoc_events::Wake;
use dondoc_server::Actor;
use dondoc_server::convert::recurrence_from_text;
use dondoc_time::Clock;
use sqlx::{PgConnection, PgPool};

use crate::domain::deadline::DeadlinePolicy;
use crate::domain::recurring::occurrences;
use crate::grpc::task_to_pb;
use crate::publish;
use crate::storage::tasks::{self, TaskRecord};

/// Who generates occurrences.
pub fn service_actor(clock: &Clock) -> Actor {
    Actor {
        subject: format!("services/{}", crate::NAME),
        agency: None,
        at: clock.now(),
    }
}

/// Creates the missing occurrences of one duty up to the current period,
/// each with its ASSIGNED history entry and event. Returns how many.
pub async fn generate_for(
    conn: &mut PgConnection,
    duty: &TaskRecord,
    today: NaiveDate,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> Result<usize, Error> {
    let Some(rule) = duty.recurrence.as_deref().and_then(recurrence_from_text) else {
        return Ok(0);
    };
    if duty.recurrence_parent.is_some() || !duty.stage()?.is_open() {
        return Ok(0);
    }
    let mut created = 0;
    for occurrence in occurrences(rule, duty.assign_date, today) {
        if let Some(record) = tasks::insert_occurrence(conn, duty, occurrence, actor).await? {
            let view = task_to_pb(&record, today, policy);
            publish::task_event(conn, actor, TaskEventKind::Assigned, &view, "").await?;
            created += 1;
        }
    }
    Ok(created)
}

/// Creates the missing occurrences of every open duty. Returns how many.
pub async fn generate(
    pool: &PgPool,
    clock: &Clock,
    policy: &DeadlinePolicy,
    wake: &Wake,
) -> Result<usize, Error> {
    let mut tx = pool.begin().await.map_err(dondoc_database::storage_error)?;
    let today = clock.today();
    let actor = service_actor(clock);
    let mut created = 0;
    for duty in tasks::open_duties(&mut tx).await? {
        created += generate_for(&mut tx, &duty, today, &actor, policy).await?;
    }
    tx.commit().await.map_err(dondoc_database::storage_error)?;
    if created > 0 {
        wake.wake();
    }
    Ok(created)
}
