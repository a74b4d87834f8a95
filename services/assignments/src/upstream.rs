//! Following the directives service: an issued directive's items become
//! tasks, exactly once whatever is redelivered, retried or restarted (the
//! consumer cursor and the unique directive item make it so).

use chrono::NaiveDate;
use dondoc_contracts::assignments::v1::TaskEventKind;
use dondoc_contracts::directives::v1::directive_event::Payload;
use dondoc_contracts::directives::v1::{
    AgencyReorganized, Directive, DirectiveEvent, DirectiveItem, DirectiveItemsAmended, ItemState,
    ReorganizationKind, watch_events_response::Item,
};
use dondoc_errors::Error;
use dondoc_events::consumer::Apply;
use dondoc_events::{Cursor, Followed, Wake};
use dondoc_server::Actor;
use dondoc_server::convert::{
    agency_code, date_from_pb, recurrence_from_pb, recurrence_to_text, resource_id,
};
use sqlx::PgConnection;

use crate::domain::deadline::DeadlinePolicy;
use crate::domain::stage::{Stage, Transition, next};
use crate::grpc::task_to_pb;
use crate::publish;
use crate::storage::tasks::{self, NewTask, TaskRecord};

/// The consumer's name in `consumer_cursors`.
pub const SOURCE: &str = "directives";

/// Applies directive events.
pub struct DirectiveEvents {
    /// Wakes this service's own followers after a commit.
    pub wake: Wake,
    /// For the task view in events.
    pub policy: DeadlinePolicy,
}

/// Maps the stream's messages to the consumer's items.
pub fn to_followed(item: Item) -> Result<Followed<DirectiveEvent>, tonic::Status> {
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

fn title_of(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or(text).trim();
    if first_line.chars().count() <= 200 {
        first_line.to_string()
    } else {
        let mut title: String = first_line.chars().take(199).collect();
        title.push('…');
        title
    }
}

fn codes(names: &[String]) -> Result<Vec<String>, Error> {
    names
        .iter()
        .map(|n| agency_code(n, "agency").map_err(|v| Error::internal(v.description)))
        .collect()
}

fn item_id(item: &DirectiveItem) -> Result<i64, Error> {
    item.name
        .rsplit_once("/items/")
        .and_then(|(_, id)| id.parse::<i64>().ok())
        .ok_or_else(|| Error::internal(format!("malformed item name {}", item.name)))
}

fn event_view(
    record: &TaskRecord,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> dondoc_contracts::assignments::v1::Task {
    task_to_pb(record, dondoc_time::local_date(actor.at), policy)
}

/// Withdraws an open task (cancelled item, revoked directive).
async fn withdraw(
    conn: &mut PgConnection,
    task: &TaskRecord,
    reason: &str,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> Result<(), Error> {
    let from = task.stage()?;
    let Ok(to) = next(from, Transition::Withdraw) else {
        // Already completed or withdrawn: a redelivery or a closed task.
        return Ok(());
    };
    let updated = tasks::set_stage(conn, task.id, to, None, actor).await?;
    tasks::record_history(
        conn,
        task.id,
        Transition::Withdraw.action(),
        Some(from),
        to,
        updated.due_date,
        reason,
        actor,
    )
    .await?;
    let view = event_view(&updated, actor, policy);
    publish::task_event(conn, actor, TaskEventKind::Withdrawn, &view, reason).await
}

/// Applies an amendment: added items become tasks, changed items change
/// their open task (a new due date is a new deadline version), cancelled
/// items withdraw theirs. Each effect compares before it writes, so a
/// re-application changes nothing.
async fn amend(
    conn: &mut PgConnection,
    amended: &DirectiveItemsAmended,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> Result<(), Error> {
    let Some(directive) = &amended.directive else {
        return Ok(());
    };
    let by = if amended.amended_by_number.is_empty() {
        amended.amended_by.clone()
    } else {
        amended.amended_by_number.clone()
    };
    // Added items (and any active item still without its task).
    create_tasks(conn, directive, actor, policy).await?;
    for item in &directive.items {
        let Some(task) = tasks::by_item(conn, item_id(item)?).await? else {
            continue;
        };
        let stage = task.stage()?;
        if amended.cancelled_items.contains(&item.name) || item.state == ItemState::Cancelled as i32
        {
            let reason = format!("Nội dung bị hủy bỏ theo văn bản {by}");
            for occurrence in tasks::open_occurrences(conn, task.id).await? {
                withdraw(conn, &occurrence, &reason, actor, policy).await?;
            }
            withdraw(conn, &task, &reason, actor, policy).await?;
            continue;
        }
        if !amended.changed_items.contains(&item.name) || !stage.is_open() {
            continue;
        }
        let reason = format!("Điều chỉnh theo văn bản {by}");
        let due = date_from_pb(item.due_date.as_ref(), "due_date")
            .map_err(|v| Error::internal(v.description))?;
        let lead = codes(&item.lead_agencies)?;
        let coordinating = codes(&item.coordinating_agencies)?;
        let title = title_of(&item.text);
        let mut current = task.clone();
        let mut changed = false;
        if title != task.title
            || item.text != task.description
            || item.key_task != task.key_task
            || lead != task.lead_agencies
            || coordinating != task.coordinating_agencies
        {
            current = tasks::amend(
                conn,
                task.id,
                &title,
                &item.text,
                item.key_task,
                &lead,
                &coordinating,
                actor,
            )
            .await?;
            tasks::record_history(
                conn,
                task.id,
                "UPDATED",
                Some(stage),
                stage,
                None,
                &reason,
                actor,
            )
            .await?;
            changed = true;
        }
        if due != task.due_date {
            current = tasks::set_due_date(conn, task.id, due, false, actor).await?;
            tasks::record_history(
                conn,
                task.id,
                "DEADLINE_CHANGED",
                Some(stage),
                stage,
                due,
                &reason,
                actor,
            )
            .await?;
            changed = true;
        }
        if changed {
            let view = event_view(&current, actor, policy);
            publish::task_event(conn, actor, TaskEventKind::Updated, &view, &reason).await?;
        }
    }
    Ok(())
}

/// Replaces `sources` by `successor` in a list of agency codes, without
/// duplicates and without `exclude`.
fn replaced(
    codes: &[String],
    sources: &[String],
    successor: &str,
    exclude: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for code in codes {
        let code = if sources.contains(code) {
            successor
        } else {
            code.as_str()
        };
        if !out.iter().any(|c| c == code) && !exclude.iter().any(|c| c == code) {
            out.push(code.to_string());
        }
    }
    out
}

/// Applies a reorganisation: on a merge (or a split, to the first
/// successor) the open tasks led or coordinated by a source move to the
/// successor, stage unchanged; on a dissolution nothing moves and the
/// history notes it; a rename keeps codes and changes nothing here.
async fn reorganize(
    conn: &mut PgConnection,
    event: &AgencyReorganized,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> Result<(), Error> {
    let sources = codes(&event.sources)?;
    let successors = codes(&event.successors)?;
    let kind = ReorganizationKind::try_from(event.kind).unwrap_or(ReorganizationKind::Unspecified);
    let (successor, reason) = match (kind, successors.first()) {
        (ReorganizationKind::Merge, Some(s)) => (
            s.clone(),
            format!(
                "Chuyển giao do sáp nhập {} vào agencies/{s}",
                event.sources.join(", ")
            ),
        ),
        (ReorganizationKind::Split, Some(s)) => (
            s.clone(),
            format!(
                "Chuyển giao do chia tách {} thành {}; giao agencies/{s} (đơn vị kế thừa đầu tiên) cho đến khi giao lại",
                event.sources.join(", "),
                event.successors.join(", ")
            ),
        ),
        (ReorganizationKind::Dissolve, _) => {
            let reason = format!(
                "{} đã giải thể; nhiệm vụ chờ giao lại",
                event.sources.join(", ")
            );
            for task in tasks::open_tasks_of(conn, &sources).await? {
                if tasks::has_history(conn, task.id, "AGENCY_DISSOLVED", &reason).await? {
                    continue;
                }
                let stage = task.stage()?;
                tasks::record_history(
                    conn,
                    task.id,
                    "AGENCY_DISSOLVED",
                    Some(stage),
                    stage,
                    None,
                    &reason,
                    actor,
                )
                .await?;
            }
            return Ok(());
        }
        // A rename keeps the codes; nothing else concerns tasks.
        _ => return Ok(()),
    };
    // Once moved, a task no longer names a source: a re-application finds nothing.
    for task in tasks::open_tasks_of(conn, &sources).await? {
        let from = task.stage()?;
        let to: Stage = next(from, Transition::Transfer)?;
        let lead = replaced(&task.lead_agencies, &sources, &successor, &[]);
        let coordinating = replaced(&task.coordinating_agencies, &sources, &successor, &lead);
        let updated = tasks::set_agencies(conn, task.id, &lead, &coordinating, to, actor).await?;
        tasks::record_history(
            conn,
            task.id,
            Transition::Transfer.action(),
            Some(from),
            to,
            updated.due_date,
            &reason,
            actor,
        )
        .await?;
        let view = event_view(&updated, actor, policy);
        publish::task_event(conn, actor, TaskEventKind::Transferred, &view, &reason).await?;
    }
    Ok(())
}

async fn create_tasks(
    conn: &mut PgConnection,
    directive: &Directive,
    actor: &Actor,
    policy: &DeadlinePolicy,
) -> Result<(), Error> {
    let directive_id = resource_id(&directive.name, "directives", "name")
        .map_err(|v| Error::internal(v.description))?;
    let issuer =
        agency_code(&directive.issuer, "issuer").map_err(|v| Error::internal(v.description))?;
    let issue_date: Option<NaiveDate> = date_from_pb(directive.issue_date.as_ref(), "issue_date")
        .map_err(|v| Error::internal(v.description))?;
    let assign_date = issue_date.unwrap_or_else(|| dondoc_time::local_date(actor.at));
    for item in &directive.items {
        if item.state == ItemState::Cancelled as i32 {
            continue;
        }
        let item_id = item_id(item)?;
        let task = NewTask {
            title: title_of(&item.text),
            description: item.text.clone(),
            directive_id: Some(directive_id),
            directive_item_id: Some(item_id),
            directive_number: directive.number.clone(),
            reference: item.reference.clone(),
            lead_agencies: codes(&item.lead_agencies)?,
            coordinating_agencies: codes(&item.coordinating_agencies)?,
            assigner: issuer.clone(),
            assign_date,
            due_date: date_from_pb(item.due_date.as_ref(), "due_date")
                .map_err(|v| Error::internal(v.description))?,
            recurrence: recurrence_from_pb(item.recurrence.as_ref(), "recurrence")
                .map_err(|v| Error::internal(v.description))?
                .map(recurrence_to_text),
            priority: "NORMAL".into(),
            key_task: item.key_task,
        };
        // None: this item already has its task (a redelivery); nothing changes.
        if let Some(record) = tasks::insert(conn, &task, actor).await? {
            let today = dondoc_time::local_date(actor.at);
            let view = task_to_pb(&record, today, policy);
            publish::task_event(conn, actor, TaskEventKind::Assigned, &view, "").await?;
            crate::recurring::generate_for(conn, &record, today, actor, policy).await?;
        }
    }
    Ok(())
}

impl Apply<DirectiveEvent> for DirectiveEvents {
    fn origin(&self, event: &DirectiveEvent) -> dondoc_events::consumer::Origin {
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

    async fn apply(&self, tx: &mut PgConnection, event: DirectiveEvent) -> Result<(), Error> {
        let stamp = event.stamp.clone().unwrap_or_default();
        let at = event
            .occur_time
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(chrono::Utc::now);
        // Tasks are assigned by the directive's issuer, acting through whoever issued it.
        let actor = Actor {
            subject: stamp.actor,
            agency: stamp
                .actor_agency
                .strip_prefix("agencies/")
                .map(str::to_string),
            at,
        };
        match event.payload {
            Some(Payload::DirectiveIssued(issued)) => {
                if let Some(directive) = issued.directive {
                    create_tasks(tx, &directive, &actor, &self.policy).await?;
                }
                Ok(())
            }
            Some(Payload::DirectiveItemsAmended(amended)) => {
                amend(tx, &amended, &actor, &self.policy).await
            }
            Some(Payload::DirectiveRevoked(revoked)) => {
                if let Some(directive) = revoked.directive {
                    let id = resource_id(&directive.name, "directives", "name")
                        .map_err(|v| Error::internal(v.description))?;
                    let reason = format!("Văn bản {} bị thu hồi", directive.number);
                    for task in tasks::open_tasks_of_directive(tx, id).await? {
                        withdraw(tx, &task, &reason, &actor, &self.policy).await?;
                    }
                }
                Ok(())
            }
            Some(Payload::AgencyReorganized(reorganized)) => {
                reorganize(tx, &reorganized, &actor, &self.policy).await
            }
            // Agency registrations, edits and drafts do not concern tasks.
            _ => Ok(()),
        }
    }

    fn committed(&self) {
        self.wake.wake();
    }
}
