//! The deadline projection, fed by task events.

use chrono::NaiveDate;
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::PgConnection;

/// A task's deadline as projected.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Deadline {
    /// Task id.
    pub task_id: i64,
    /// Title.
    pub title: String,
    /// Directive number.
    pub directive_number: String,
    /// Reference.
    pub reference: String,
    /// Lead codes.
    pub lead_agencies: Vec<String>,
    /// Coordinating codes.
    pub coordinating_agencies: Vec<String>,
    /// Assigner code.
    pub assigner: String,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Version of the due date.
    pub deadline_version: i32,
    /// Key task.
    pub key_task: bool,
    /// Still needs work.
    pub open: bool,
}

/// Reads the projection of a task, locking it.
pub async fn get(conn: &mut PgConnection, task_id: i64) -> Result<Option<Deadline>, Error> {
    sqlx::query_as::<_, Deadline>(
        "SELECT task_id, title, directive_number, reference, lead_agencies, coordinating_agencies, assigner, \
         due_date, deadline_version, key_task, open FROM task_deadlines WHERE task_id = $1 FOR UPDATE",
    )
    .bind(task_id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Writes the projection of a task.
pub async fn upsert(conn: &mut PgConnection, d: &Deadline) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO task_deadlines (task_id, title, directive_number, reference, lead_agencies, coordinating_agencies, \
         assigner, due_date, deadline_version, key_task, open) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (task_id) DO UPDATE SET title = EXCLUDED.title, directive_number = EXCLUDED.directive_number, \
         reference = EXCLUDED.reference, lead_agencies = EXCLUDED.lead_agencies, \
         coordinating_agencies = EXCLUDED.coordinating_agencies, assigner = EXCLUDED.assigner, \
         due_date = EXCLUDED.due_date, deadline_version = EXCLUDED.deadline_version, key_task = EXCLUDED.key_task, \
         open = EXCLUDED.open, updated_at = now()",
    )
    .bind(d.task_id)
    .bind(&d.title)
    .bind(&d.directive_number)
    .bind(&d.reference)
    .bind(&d.lead_agencies)
    .bind(&d.coordinating_agencies)
    .bind(&d.assigner)
    .bind(d.due_date)
    .bind(d.deadline_version)
    .bind(d.key_task)
    .bind(d.open)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}
