//! The reminder worker. Any number of replicas run it: each claims due jobs
//! with `FOR UPDATE SKIP LOCKED` under a lease, and handles each in one
//! transaction (re-check the task, write the notifications, mark the job
//! done). A replica that dies leaves leases that expire and are rescued; its
//! fencing token keeps a late replica from finishing a job twice. The
//! notifications' dedupe keys make a doubled write impossible regardless.

use std::time::Duration;

use dondoc_errors::Error;
use dondoc_events::Wake;
use dondoc_time::{Clock, local_date};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::message::{self, TaskSummary};
use crate::domain::policy::{ReminderKind, ReminderPolicy};
use crate::names::AgencyNames;
use crate::storage::deadlines;
use crate::storage::jobs::{self, ClaimedJob};
use crate::storage::notifications::{self, NewNotification};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Jobs per claim.
    pub batch: i64,
    /// How long a claim holds a job before another replica may rescue it.
    pub lease: Duration,
    /// Check for due jobs at least this often.
    pub poll_interval: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The worker.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Pool.
    pub pool: PgPool,
    /// Injected clock: jobs are due by it.
    pub clock: Clock,
    /// Policy (for repeating overdue reminders).
    pub policy: ReminderPolicy,
    /// Wakes notification streams.
    pub notifications: Wake,
    /// Woken when jobs are added.
    pub jobs: Wake,
    /// Names for bodies.
    pub names: AgencyNames,
    /// Settings.
    pub settings: SchedulerSettings,
}

impl Scheduler {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut clock_moves = self.clock.changes();
        loop {
            let added = self.jobs.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let handled = match self.tick().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "reminder claim failed; retrying");
                    0
                }
            };
            if handled as i64 >= self.settings.batch {
                continue;
            }
            tokio::select! {
                _ = clock_moves.changed() => {}
                _ = &mut added => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Claims and handles one batch of due jobs; returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, Error> {
        let claimed = jobs::claim(
            &self.pool,
            self.clock.now(),
            self.settings.batch,
            self.settings.lease,
        )
        .await?;
        let count = claimed.len();
        for job in claimed {
            if let Err(error) = self.handle(&job).await {
                // The lease expires and the job is claimed again.
                tracing::warn!(job = job.id, %error, "reminder failed; it will be retried");
            }
        }
        if count > 0 {
            self.notifications.wake();
        }
        Ok(count)
    }

    /// Handles one claimed job in one transaction.
    pub async fn handle(&self, job: &ClaimedJob) -> Result<(), Error> {
        let storage = dondoc_database::storage_error;
        // Names are looked up before the transaction, so it stays short.
        let mut conn = self.pool.acquire().await.map_err(storage)?;
        let Some(peek) = deadlines::get(&mut conn, job.task_id).await? else {
            drop(conn);
            return self.finish(job, "CANCELLED").await;
        };
        drop(conn);
        let lead = self.names.names(&peek.lead_agencies).await;

        let mut tx = self.pool.begin().await.map_err(storage)?;
        if !jobs::still_mine(&mut tx, job).await? {
            return Ok(());
        }
        let deadline = deadlines::get(&mut tx, job.task_id).await?;
        let live = deadline.as_ref().filter(|d| {
            d.open && d.deadline_version == job.deadline_version && d.due_date.is_some()
        });
        let Some(d) = live else {
            // Completed, withdrawn or rescheduled since: nothing to say.
            jobs::finish(&mut tx, job.id, "CANCELLED").await?;
            tx.commit().await.map_err(storage)?;
            return Ok(());
        };
        let due = d.due_date.unwrap_or_default();
        let fired_on = local_date(job.fire_at);
        let summary = TaskSummary {
            name: format!("tasks/{}", d.task_id),
            title: d.title.clone(),
            directive_number: d.directive_number.clone(),
            reference: d.reference.clone(),
            lead,
            due: d.due_date,
            key_task: d.key_task,
        };
        let (kind, text) = match job.kind.as_str() {
            "DUE_SOON" => (
                ReminderKind::DueSoon,
                message::due_soon(
                    &summary,
                    self.policy.calendar.working_days_between(fired_on, due),
                ),
            ),
            "DUE_TODAY" => (ReminderKind::DueToday, message::due_today(&summary)),
            _ => (
                ReminderKind::Overdue,
                message::overdue(&summary, (fired_on - due).num_days()),
            ),
        };
        let recipients = d.lead_agencies.iter().chain(d.coordinating_agencies.iter());
        for recipient in recipients {
            notifications::insert(
                &mut tx,
                &NewNotification {
                    dedupe_key: format!("reminder:{}:{recipient}", job.id),
                    kind: kind.as_str().into(),
                    recipient: recipient.clone(),
                    task_id: Some(d.task_id),
                    directive_number: d.directive_number.clone(),
                    lead_agency: d.lead_agencies.first().cloned().unwrap_or_default(),
                    due_date: d.due_date,
                    key_task: d.key_task,
                    title: text.title.clone(),
                    body: text.body.clone(),
                    notified_at: self.clock.now(),
                },
            )
            .await?;
        }
        if kind == ReminderKind::Overdue
            && let Some(next) = self.policy.next_overdue(due, fired_on)
        {
            jobs::schedule(&mut tx, d.task_id, d.deadline_version, &[next]).await?;
        }
        jobs::finish(&mut tx, job.id, "DONE").await?;
        tx.commit().await.map_err(storage)?;
        Ok(())
    }

    async fn finish(&self, job: &ClaimedJob, state: &str) -> Result<(), Error> {
        let storage = dondoc_database::storage_error;
        let mut tx = self.pool.begin().await.map_err(storage)?;
        if jobs::still_mine(&mut tx, job).await? {
            jobs::finish(&mut tx, job.id, state).await?;
        }
        tx.commit().await.map_err(storage)
    }
}
