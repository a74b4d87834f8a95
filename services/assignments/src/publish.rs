//! Writing task events into the outbox, in the caller's transaction.

use dondoc_contracts::assignments::v1::{ExtensionRequest, Task, TaskEvent, TaskEventKind};
use dondoc_errors::Error;
use dondoc_events::outbox;
use dondoc_server::Actor;
use dondoc_server::convert::timestamp;
use prost::Message;
use sqlx::PgConnection;

/// Appends a task event; followers are woken after the commit.
pub async fn task_event(
    conn: &mut PgConnection,
    actor: &Actor,
    kind: TaskEventKind,
    task: &Task,
    reason: &str,
) -> Result<(), Error> {
    extension_event(conn, actor, kind, task, reason, None).await
}

/// Appends a task event carrying an extension request.
pub async fn extension_event(
    conn: &mut PgConnection,
    actor: &Actor,
    kind: TaskEventKind,
    task: &Task,
    reason: &str,
    extension: Option<ExtensionRequest>,
) -> Result<(), Error> {
    let event = TaskEvent {
        extension,
        stamp: Some(actor.stamp()),
        occur_time: Some(timestamp(actor.at)),
        kind: kind as i32,
        task: Some(task.clone()),
        reason: reason.to_string(),
        traceparent: dondoc_server::observe::current_traceparent(),
        ..Default::default()
    };
    outbox::append(conn, kind.as_str_name(), &task.name, &event.encode_to_vec())
        .await
        .map_err(dondoc_database::storage_error)?;
    Ok(())
}
