//! The reminder worker. Any number of replicas run it: each claims due jobs
//! with `FOR UPDATE SKIP LOCKED` under a lease, and handles each in one
//! transaction (re-check the task, write the notifications, mark the job
//! done). A replica that dies leaves leases that expire and are rescued; its
//! fencing token keeps a late replica from finishing a job twice. The
//! notifications' dedupe keys make a doubled write impossible regardless.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dondoc_errors::Error;
use dondoc_events::Wake;
use dondoc_time::{Clock, local_date};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::delivery::{DeliverySettings, SmtpSettings};
use crate::domain::digest::{self, DigestTask};
use crate::domain::message::{self, TaskSummary};
use crate::domain::policy::{Reminder, ReminderKind, ReminderPolicy};
use crate::domain::webhook::{AllowList, RetrySchedule};
use crate::names::AgencyNames;
use crate::storage::jobs::{self, ClaimedJob};
use crate::storage::notifications::{self, NewNotification};
use crate::storage::{deadlines, digests, retention};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Jobs per claim.
    pub batch: i64,
    /// How long a claim holds a job before another replica may rescue it.
    pub lease: Duration,
    /// Check for due jobs at least this often.
    pub poll_interval: Duration,
    /// Notifications, the outbox and finished work are kept this long.
    pub retention: Duration,
    /// Send the weekly digests.
    pub weekly_digest: bool,
    /// Webhook and e-mail deliveries.
    pub delivery: DeliverySettings,
}

impl SchedulerSettings {
    /// The built-in defaults, without looking at the environment.
    pub fn builtin() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(90 * 24 * 3600),
            weekly_digest: true,
            delivery: DeliverySettings::default(),
        }
    }

    /// The defaults with the environment's settings (see the service's
    /// README): `DONDOC_WEBHOOK_ALLOWLIST`, `DONDOC_WEBHOOK_RETRY_SCHEDULE`,
    /// `DONDOC_WEBHOOK_TIMEOUT_SECS`, `DONDOC_WEBHOOK_DISABLE_AFTER_DEAD_LETTERS`,
    /// `DONDOC_WEBHOOK_DISABLE_AFTER_FAILING_HOURS`, `DONDOC_WEBHOOK_SECRET_OVERLAP_HOURS`,
    /// `DONDOC_SMTP_URL`, `DONDOC_SMTP_FROM`, `DONDOC_JOB_LEASE_SECS`,
    /// `DONDOC_JOB_POLL_MS`, `DONDOC_RETENTION_DAYS`, `DONDOC_WEEKLY_DIGEST`.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`SchedulerSettings::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        fn num<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
        ) -> Result<Option<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<T>()
                        .map_err(|e| format!("{name}={v:?}: {e}"))
                })
                .transpose()
        }
        let mut s = Self::builtin();
        if let Some(list) = var("DONDOC_WEBHOOK_ALLOWLIST") {
            s.delivery.allow_list = AllowList::parse(&list);
        }
        if let Some(schedule) = var("DONDOC_WEBHOOK_RETRY_SCHEDULE") {
            let delays = schedule
                .split(',')
                .map(|d| d.trim().parse::<u64>().map(Duration::from_secs))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("DONDOC_WEBHOOK_RETRY_SCHEDULE={schedule:?}: {e}"))?;
            if delays.is_empty() {
                return Err("DONDOC_WEBHOOK_RETRY_SCHEDULE needs at least one delay".into());
            }
            s.delivery.retry = RetrySchedule(delays);
        }
        if let Some(secs) = num::<u64>(&var, "DONDOC_WEBHOOK_TIMEOUT_SECS")? {
            s.delivery.timeout = Duration::from_secs(secs);
        }
        if let Some(n) = num::<i32>(&var, "DONDOC_WEBHOOK_DISABLE_AFTER_DEAD_LETTERS")? {
            s.delivery.disable_after_dead_letters = n;
        }
        if let Some(h) = num::<u64>(&var, "DONDOC_WEBHOOK_DISABLE_AFTER_FAILING_HOURS")? {
            s.delivery.disable_after_failing = Duration::from_secs(h * 3600);
        }
        if let Some(h) = num::<u64>(&var, "DONDOC_WEBHOOK_SECRET_OVERLAP_HOURS")? {
            s.delivery.secret_overlap = Duration::from_secs(h * 3600);
        }
        if let Some(url) = var("DONDOC_SMTP_URL") {
            let from = var("DONDOC_SMTP_FROM")
                .ok_or("DONDOC_SMTP_FROM must be set with DONDOC_SMTP_URL")?;
            s.delivery.smtp = Some(SmtpSettings { url, from });
        }
        if let Some(secs) = num::<u64>(&var, "DONDOC_JOB_LEASE_SECS")? {
            s.lease = Duration::from_secs(secs);
            s.delivery.lease = Duration::from_secs(secs);
            s.delivery.timeout = s.delivery.timeout.min(Duration::from_secs(secs.max(2) / 2));
        }
        if let Some(ms) = num::<u64>(&var, "DONDOC_JOB_POLL_MS")? {
            s.poll_interval = Duration::from_millis(ms);
            s.delivery.poll_interval = Duration::from_millis(ms);
        }
        if let Some(days) = num::<u64>(&var, "DONDOC_RETENTION_DAYS")? {
            s.retention = Duration::from_secs(days * 24 * 3600);
        }
        if let Some(on) = num::<bool>(&var, "DONDOC_WEEKLY_DIGEST")? {
            s.weekly_digest = on;
        }
        Ok(s)
    }
}

impl Default for SchedulerSettings {
    /// The built-in defaults; [`SchedulerSettings::from_env`] applies the
    /// environment on top (as `dondoc serve notifications` and `dondoc up` do).
    fn default() -> Self {
        Self::builtin()
    }
}

/// Claimed reminders handled at once (each in its own transaction).
const HANDLERS_PER_BATCH: usize = 8;

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
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            if pruned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
                pruned_at = Some(std::time::Instant::now());
                self.prune().await;
            }
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

    /// Deletes what is older than the retention period.
    pub async fn prune(&self) {
        let Ok(retention) = chrono::Duration::from_std(self.settings.retention) else {
            return;
        };
        match retention::prune(&self.pool, self.clock.now() - retention).await {
            Ok(pruned) => tracing::info!(?pruned, "retention applied"),
            Err(error) => tracing::warn!(%error, "retention failed; retrying later"),
        }
    }

    /// Claims and handles one batch of due jobs (digests, then reminders);
    /// returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, Error> {
        // One instant for the whole tick, so that its phases agree on what
        // is due: a clock read per phase could claim a reminder of a later
        // instant than the digest phase saw, and the digest due before it
        // would come after it.
        let now = self.clock.now();
        // The digest first: on a Monday morning it reads before the day's reminders.
        let digests = if self.settings.weekly_digest {
            self.plan_digests(now).await?;
            self.tick_digests(now).await?
        } else {
            0
        };
        let reminders = self.tick_reminders(now).await?;
        Ok(reminders + digests)
    }

    /// Plans the digest of the week after `now` of every agency with open tasks.
    pub async fn plan_digests(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let storage = dondoc_database::storage_error;
        let (week, fire_at) = digest::upcoming(&self.policy.calendar, self.policy.send_at, now);
        let mut conn = self.pool.acquire().await.map_err(storage)?;
        let agencies = deadlines::agencies_with_open_tasks(&mut conn).await?;
        digests::plan(&mut conn, &agencies, week, fire_at).await
    }

    /// Claims and writes the weekly digests due at `now`; returns how many
    /// were claimed.
    pub async fn tick_digests(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let claimed =
            digests::claim(&self.pool, now, self.settings.batch, self.settings.lease).await?;
        let count = claimed.len();
        for job in claimed {
            if let Err(error) = self.handle_digest(&job, now).await {
                tracing::warn!(job = job.id, %error, "digest failed; it will be retried");
            }
        }
        if count > 0 {
            self.notifications.wake();
        }
        Ok(count)
    }

    /// Writes one agency's weekly digest, as of `now`, in one transaction.
    pub async fn handle_digest(
        &self,
        job: &digests::ClaimedDigest,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let storage = dondoc_database::storage_error;
        let name = self.names.name(&job.agency).await;
        let today = local_date(now).max(job.week);
        let mut tx = self.pool.begin().await.map_err(storage)?;
        if !digests::still_mine(&mut tx, job).await? {
            return Ok(());
        }
        let horizon = today + chrono::Duration::days(digest::HORIZON_DAYS);
        let open = deadlines::open_for_agency(&mut tx, &job.agency, horizon).await?;
        let (mut due_soon, mut overdue) = (Vec::new(), Vec::new());
        for d in open {
            let Some(due) = d.due_date else { continue };
            let task = DigestTask {
                title: d.title.clone(),
                directive_number: d.directive_number.clone(),
                due,
                key_task: d.key_task,
                as_lead: d.lead_agencies.contains(&job.agency),
            };
            if due < today {
                overdue.push(task);
            } else {
                due_soon.push(task);
            }
        }
        let Some(text) = digest::weekly(&name, today, &due_soon, &overdue) else {
            digests::finish(&mut tx, job.id, "EMPTY").await?;
            return tx.commit().await.map_err(storage);
        };
        notifications::insert(
            &mut tx,
            &NewNotification {
                dedupe_key: format!("digest:{}:{}", job.agency, job.week),
                kind: "WEEKLY_DIGEST".into(),
                recipient: job.agency.clone(),
                task_id: None,
                directive_number: String::new(),
                directive: String::new(),
                lead_agency: String::new(),
                due_date: None,
                key_task: false,
                title: text.title,
                body: text.body,
                notified_at: self.clock.now(),
            },
        )
        .await?;
        digests::finish(&mut tx, job.id, "DONE").await?;
        tx.commit().await.map_err(storage)
    }

    /// Claims and handles one batch of the reminders due at `now`; returns
    /// how many were claimed.
    pub async fn tick_reminders(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let claimed =
            jobs::claim(&self.pool, now, self.settings.batch, self.settings.lease).await?;
        let count = claimed.len();
        if count == 0 {
            return Ok(0);
        }
        // The whole batch in one transaction: a handful of statements and
        // one commit instead of several round trips and a commit per job.
        if let Err(error) = self.handle_batch(&claimed).await {
            // One job that cannot be handled must not hold back the others:
            // retry them one by one; a job that fails again keeps its lease,
            // which expires, and is claimed again later.
            tracing::warn!(%error, jobs = count, "reminder batch failed; handling its jobs one by one");
            futures::stream::iter(&claimed)
                .for_each_concurrent(HANDLERS_PER_BATCH, |job| async move {
                    if let Err(error) = self.handle(job).await {
                        tracing::warn!(job = job.id, %error, "reminder failed; it will be retried");
                    }
                })
                .await;
        }
        self.notifications.wake();
        Ok(count)
    }

    /// Handles one claimed job in one transaction.
    pub async fn handle(&self, job: &ClaimedJob) -> Result<(), Error> {
        self.handle_batch(std::slice::from_ref(job)).await
    }

    /// Handles claimed jobs in one transaction: those this claim still
    /// holds (fenced by their lease tokens) are re-checked against their
    /// task's deadline, their notifications written (once per dedupe key),
    /// the next weekly overdue reminder scheduled, and the jobs finished.
    pub async fn handle_batch(&self, claimed: &[ClaimedJob]) -> Result<(), Error> {
        let storage = dondoc_database::storage_error;
        let task_ids: Vec<i64> = claimed.iter().map(|job| job.task_id).collect();
        // Names are looked up before the transaction, so it stays short.
        let mut conn = self.pool.acquire().await.map_err(storage)?;
        let peeked = deadlines::get_many(&mut conn, &task_ids, false).await?;
        drop(conn);
        // Many tasks of a batch share their lead agencies: one lookup each.
        let mut by_leads: std::collections::HashMap<&[String], String> =
            std::collections::HashMap::new();
        let mut lead_names = std::collections::HashMap::new();
        for d in peeked.values() {
            let name = match by_leads.get(d.lead_agencies.as_slice()) {
                Some(name) => name.clone(),
                None => {
                    let name = self.names.names(&d.lead_agencies).await;
                    by_leads.insert(&d.lead_agencies, name.clone());
                    name
                }
            };
            lead_names.insert(d.task_id, name);
        }

        let mut tx = self.pool.begin().await.map_err(storage)?;
        let mine = jobs::still_mine_many(&mut tx, claimed).await?;
        let deadlines = deadlines::get_many(&mut tx, &task_ids, true).await?;
        let (mut done, mut cancelled) = (Vec::new(), Vec::new());
        let mut written = Vec::new();
        for job in claimed.iter().filter(|job| mine.contains(&job.id)) {
            let live = deadlines.get(&job.task_id).filter(|d| {
                d.open && d.deadline_version == job.deadline_version && d.due_date.is_some()
            });
            let Some(d) = live else {
                // Completed, withdrawn or rescheduled since: nothing to say.
                cancelled.push(job.id);
                continue;
            };
            let lead = match lead_names.get(&d.task_id) {
                Some(name) => name.clone(),
                // The task appeared between the peek and the lock.
                None => self.names.names(&d.lead_agencies).await,
            };
            if let Some(next) = self.reminder(job, d, lead, &mut written) {
                jobs::schedule(&mut tx, d.task_id, d.deadline_version, &[next]).await?;
            }
            done.push(job.id);
        }
        notifications::insert_many(&mut tx, &written).await?;
        jobs::finish_many(&mut tx, &done, "DONE").await?;
        jobs::finish_many(&mut tx, &cancelled, "CANCELLED").await?;
        tx.commit().await.map_err(storage)
    }

    /// The notifications of one live reminder (one per lead and
    /// coordinating agency), appended to `out`, and the next weekly overdue
    /// reminder to schedule, if any.
    fn reminder(
        &self,
        job: &ClaimedJob,
        d: &deadlines::Deadline,
        lead: String,
        out: &mut Vec<NewNotification>,
    ) -> Option<Reminder> {
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
            out.push(NewNotification::about_task(
                d,
                format!("reminder:{}:{recipient}", job.id),
                kind.as_str(),
                recipient,
                text.clone(),
                self.clock.now(),
            ));
        }
        (kind == ReminderKind::Overdue)
            .then(|| self.policy.next_overdue(due, fired_on))
            .flatten()
    }
}
