//! The deadline projection, fed by task events.

use std::collections::HashMap;

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
    /// The directive, "directives/{id}", or empty.
    pub directive: String,
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
        "SELECT task_id, title, directive_number, directive, reference, lead_agencies, coordinating_agencies, assigner, \
         due_date, deadline_version, key_task, open FROM task_deadlines WHERE task_id = $1 FOR UPDATE",
    )
    .bind(task_id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Reads the projections of several tasks by id, locking them when `lock`.
pub async fn get_many(
    conn: &mut PgConnection,
    task_ids: &[i64],
    lock: bool,
) -> Result<HashMap<i64, Deadline>, Error> {
    let sql = format!(
        "SELECT task_id, title, directive_number, directive, reference, lead_agencies, coordinating_agencies, assigner, \
         due_date, deadline_version, key_task, open FROM task_deadlines WHERE task_id = ANY($1) \
         ORDER BY task_id{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let rows = sqlx::query_as::<_, Deadline>(&sql)
        .bind(task_ids)
        .fetch_all(conn)
        .await
        .map_err(storage_error)?;
    Ok(rows.into_iter().map(|d| (d.task_id, d)).collect())
}

/// Writes the projection of a task and returns the one it replaced, if
/// any, locked: one statement where a read and a write took two round
/// trips for every task event.
pub async fn upsert(conn: &mut PgConnection, d: &Deadline) -> Result<Option<Deadline>, Error> {
    // Both parts see the statement's snapshot: `previous` is the row as it
    // was, whatever `written` does to it.
    sqlx::query_as::<_, Deadline>(
        "WITH previous AS (SELECT task_id, title, directive_number, directive, reference, lead_agencies, \
           coordinating_agencies, assigner, due_date, deadline_version, key_task, open \
           FROM task_deadlines WHERE task_id = $1 FOR UPDATE), \
         written AS (INSERT INTO task_deadlines (task_id, title, directive_number, reference, lead_agencies, \
           coordinating_agencies, assigner, due_date, deadline_version, key_task, open, directive) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
           ON CONFLICT (task_id) DO UPDATE SET title = EXCLUDED.title, directive_number = EXCLUDED.directive_number, \
           directive = EXCLUDED.directive, \
           reference = EXCLUDED.reference, lead_agencies = EXCLUDED.lead_agencies, \
           coordinating_agencies = EXCLUDED.coordinating_agencies, assigner = EXCLUDED.assigner, \
           due_date = EXCLUDED.due_date, deadline_version = EXCLUDED.deadline_version, key_task = EXCLUDED.key_task, \
           open = EXCLUDED.open, updated_at = now()) \
         SELECT * FROM previous",
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
    .bind(&d.directive)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Open tasks an agency leads or coordinates that are overdue or due by
/// `until`, in due-date order, for the weekly digest.
pub async fn open_for_agency(
    conn: &mut PgConnection,
    agency: &str,
    until: NaiveDate,
) -> Result<Vec<Deadline>, Error> {
    sqlx::query_as::<_, Deadline>(
        "SELECT task_id, title, directive_number, directive, reference, lead_agencies, coordinating_agencies, \
         assigner, due_date, deadline_version, key_task, open FROM task_deadlines \
         WHERE open AND due_date IS NOT NULL AND due_date <= $2 \
         AND ($1 = ANY(lead_agencies) OR $1 = ANY(coordinating_agencies)) ORDER BY due_date, task_id",
    )
    .bind(agency)
    .bind(until)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Agencies that lead or coordinate an open task.
pub async fn agencies_with_open_tasks(conn: &mut PgConnection) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT a FROM task_deadlines, unnest(lead_agencies || coordinating_agencies) AS a WHERE open ORDER BY a",
    )
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}
