//! Following the assignments service: task events update the deadline
//! projection, (re)schedule or cancel reminders, and notify the agencies a
//! workflow change concerns — all in the consumer's transaction, so each
//! event takes effect exactly once.

use dondoc_contracts::assignments::v1::{
    Task, TaskEvent, TaskEventKind, TaskStage, watch_events_response::Item,
};
use dondoc_errors::Error;
use dondoc_events::consumer::Apply;
use dondoc_events::{Cursor, Followed, Wake};
use dondoc_server::convert::{agency_code, date_from_pb, resource_id};
use dondoc_time::Clock;
use sqlx::PgConnection;

use crate::domain::message::{self, TaskSummary};
use crate::domain::policy::ReminderPolicy;
use crate::names::AgencyNames;
use crate::storage::deadlines::{self, Deadline};
use crate::storage::jobs;
use crate::storage::notifications::{self, NewNotification};

/// The consumer's name in `consumer_cursors`.
pub const SOURCE: &str = "assignments";

/// Maps the stream's messages to the consumer's items.
pub fn to_followed(item: Item) -> Result<Followed<TaskEvent>, tonic::Status> {
    let parse = |text: &str| {
        Cursor::parse(text).ok_or_else(|| {
            tonic::Status::data_loss(format!("upstream sent a malformed cursor {text:?}"))
        })
    };
    match item {
        Item::Event(event) => Ok(Followed::Item(parse(&event.cursor)?, event)),
        Item::Checkpoint(checkpoint) => Ok(Followed::Checkpoint(parse(&checkpoint.cursor)?)),
    }
}

/// Applies task events.
pub struct TaskEvents {
    /// The reminder policy.
    pub policy: ReminderPolicy,
    /// The injected clock: reminders already past when a task is assigned are skipped.
    pub clock: Clock,
    /// Wakes notification streams after a commit.
    pub notifications: Wake,
    /// Wakes the scheduler when jobs were added.
    pub jobs: Wake,
    /// Agency names for bodies.
    pub names: AgencyNames,
}

fn codes(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| agency_code(n, "agency").ok())
        .collect()
}

fn projection(task: &Task) -> Result<Deadline, Error> {
    let internal = |v: dondoc_errors::FieldViolation| Error::internal(v.description);
    let stage = TaskStage::try_from(task.stage).unwrap_or(TaskStage::Unspecified);
    Ok(Deadline {
        task_id: resource_id(&task.name, "tasks", "name").map_err(internal)?,
        title: task.title.clone(),
        directive_number: task.directive_number.clone(),
        directive: task.directive.clone(),
        reference: task.reference.clone(),
        lead_agencies: codes(&task.lead_agencies),
        coordinating_agencies: codes(&task.coordinating_agencies),
        assigner: agency_code(&task.assigner, "assigner").unwrap_or_default(),
        due_date: date_from_pb(task.due_date.as_ref(), "due_date").map_err(internal)?,
        deadline_version: task.deadline_version,
        key_task: task.key_task,
        open: !matches!(stage, TaskStage::Completed | TaskStage::Withdrawn),
    })
}

impl TaskEvents {
    async fn summary(&self, d: &Deadline) -> TaskSummary {
        TaskSummary {
            name: format!("tasks/{}", d.task_id),
            title: d.title.clone(),
            directive_number: d.directive_number.clone(),
            reference: d.reference.clone(),
            lead: self.names.names(&d.lead_agencies).await,
            due: d.due_date,
            key_task: d.key_task,
        }
    }

    /// The notification of `event` to `recipient`.
    fn notification(
        &self,
        event: &TaskEvent,
        d: &Deadline,
        kind: &str,
        recipient: &str,
        text: message::Message,
    ) -> NewNotification {
        NewNotification::about_task(
            d,
            format!("event:{}:{recipient}", event.event_id),
            kind,
            recipient,
            text,
            self.clock.now(),
        )
    }
}

impl Apply<TaskEvent> for TaskEvents {
    fn origin(&self, event: &TaskEvent) -> dondoc_events::consumer::Origin {
        dondoc_events::consumer::Origin {
            traceparent: event.traceparent.clone(),
            committed_at: event.occur_time.and_then(|t| {
                std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(
                    u64::try_from(t.seconds).ok()?,
                    u32::try_from(t.nanos).ok()?,
                ))
            }),
        }
    }

    async fn apply(&self, tx: &mut PgConnection, event: TaskEvent) -> Result<(), Error> {
        let Some(task) = event.task.as_ref() else {
            return Ok(());
        };
        let deadline = projection(task)?;
        let previous = deadlines::upsert(tx, &deadline).await?;
        // Reminders: cancel what no longer applies, schedule what is ahead.
        match (deadline.open, deadline.due_date) {
            (true, Some(due)) => {
                jobs::cancel_pending(tx, deadline.task_id, Some(deadline.deadline_version)).await?;
                let now = self.clock.now();
                let ahead: Vec<_> = self
                    .policy
                    .schedule(due, deadline.key_task)
                    .into_iter()
                    .filter(|r| r.fire_at > now)
                    .collect();
                let unchanged = previous.as_ref().is_some_and(|p| {
                    p.deadline_version == deadline.deadline_version
                        && p.due_date == deadline.due_date
                        && p.open
                });
                if !unchanged {
                    jobs::schedule(tx, deadline.task_id, deadline.deadline_version, &ahead).await?;
                }
            }
            _ => {
                jobs::cancel_pending(tx, deadline.task_id, None).await?;
            }
        }
        // Workflow notifications, written in one statement.
        let kind = TaskEventKind::try_from(event.kind).unwrap_or(TaskEventKind::Unspecified);
        let summary = self.summary(&deadline).await;
        let reason = event.reason.as_str();
        let to = |what: &str, recipient: &str, text: message::Message| {
            self.notification(&event, &deadline, what, recipient, text)
        };
        let workflow: Vec<NewNotification> = match kind {
            TaskEventKind::Assigned | TaskEventKind::Reassigned | TaskEventKind::Transferred => {
                let what = if kind == TaskEventKind::Transferred {
                    "TASK_TRANSFERRED"
                } else {
                    "TASK_ASSIGNED"
                };
                let lead = deadline
                    .lead_agencies
                    .iter()
                    .map(|code| to(what, code, message::assigned(&summary, true)));
                let coordinating = deadline
                    .coordinating_agencies
                    .iter()
                    .map(|code| to(what, code, message::assigned(&summary, false)));
                lead.chain(coordinating).collect()
            }
            TaskEventKind::Submitted => vec![to(
                "SUBMISSION_PENDING",
                &deadline.assigner,
                message::workflow(&summary, "Báo cáo hoàn thành chờ xác nhận", reason),
            )],
            TaskEventKind::Refused => vec![to(
                "TASK_REFUSED",
                &deadline.assigner,
                message::workflow(&summary, "Đơn vị từ chối nhiệm vụ", reason),
            )],
            TaskEventKind::ExtensionRequested => vec![to(
                "EXTENSION_REQUESTED",
                &deadline.assigner,
                message::workflow(&summary, "Đề nghị gia hạn", reason),
            )],
            TaskEventKind::Returned
            | TaskEventKind::Completed
            | TaskEventKind::ExtensionDecided => {
                let (what, text) = match kind {
                    TaskEventKind::Returned => ("TASK_RETURNED", "Nhiệm vụ bị trả lại"),
                    TaskEventKind::Completed => {
                        ("TASK_COMPLETED", "Nhiệm vụ đã được xác nhận hoàn thành")
                    }
                    _ => ("EXTENSION_DECIDED", "Đề nghị gia hạn đã được xem xét"),
                };
                deadline
                    .lead_agencies
                    .iter()
                    .map(|code| to(what, code, message::workflow(&summary, text, reason)))
                    .collect()
            }
            _ => Vec::new(),
        };
        notifications::insert_many(tx, &workflow).await?;
        Ok(())
    }

    fn committed(&self) {
        self.notifications.wake();
        self.jobs.wake();
    }
}
