//! Following the directives service: an issued directive's items become
//! tasks, exactly once whatever is redelivered, retried or restarted (the
//! consumer cursor and the unique directive item make it so).

use chrono::NaiveDate;
use dondoc_contracts::assignments::v1::TaskEventKind;
use dondoc_contracts::directives::v1::directive_event::Payload;
use dondoc_contracts::directives::v1::{
    Directive, DirectiveEvent, ItemState, watch_events_response::Item,
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
use crate::grpc::task_to_pb;
use crate::publish;
use crate::storage::tasks::{self, NewTask};

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
        let item_id = item
            .name
            .rsplit_once("/items/")
            .and_then(|(_, id)| id.parse::<i64>().ok())
            .ok_or_else(|| Error::internal(format!("malformed item name {}", item.name)))?;
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
            let view = task_to_pb(&record, dondoc_time::local_date(actor.at), policy);
            publish::task_event(conn, actor, TaskEventKind::Assigned, &view, "").await?;
        }
    }
    Ok(())
}

impl Apply<DirectiveEvent> for DirectiveEvents {
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
            // Other events do not concern tasks in this release.
            _ => Ok(()),
        }
    }

    fn committed(&self) {
        self.wake.wake();
    }
}
