//! Tasks and their history.

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;
use crate::domain::deadline::{
    DeadlinePolicy, DeadlineState, long_overdue_before, nearly_overdue_until,
};
use crate::domain::recurring::Occurrence;
use crate::domain::stage::Stage;

/// A task as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRecord {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Source directive.
    pub directive_id: Option<i64>,
    /// Source item.
    pub directive_item_id: Option<i64>,
    /// Directive number.
    pub directive_number: String,
    /// Item reference.
    pub reference: String,
    /// Lead codes.
    pub lead_agencies: Vec<String>,
    /// Coordinating codes.
    pub coordinating_agencies: Vec<String>,
    /// Assigner code.
    pub assigner: String,
    /// Assignment date.
    pub assign_date: NaiveDate,
    /// Current due date.
    pub due_date: Option<NaiveDate>,
    /// First due date.
    pub original_due_date: Option<NaiveDate>,
    /// Recurrence (stored form).
    pub recurrence: Option<String>,
    /// Parent duty of an occurrence.
    pub recurrence_parent: Option<i64>,
    /// Priority (stored form).
    pub priority: String,
    /// Key task.
    pub key_task: bool,
    /// Stage (stored form).
    pub stage: String,
    /// Completion date.
    pub completion_date: Option<NaiveDate>,
    /// Percent complete.
    pub percent_complete: i32,
    /// Approved extensions.
    pub extension_count: i32,
    /// Deadline version.
    pub deadline_version: i32,
    /// Concurrency version.
    pub version: i64,
    /// Creator.
    pub created_by: String,
    /// Creator's agency.
    pub created_agency: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last editor.
    pub updated_by: String,
    /// Their agency.
    pub updated_agency: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl TaskRecord {
    /// The stage, parsed.
    pub fn stage(&self) -> Result<Stage, Error> {
        Stage::parse(&self.stage)
            .ok_or_else(|| Error::internal(format!("unknown stored stage {}", self.stage)))
    }
}

const COLUMNS: &str = "id, title, description, directive_id, directive_item_id, directive_number, reference, \
    lead_agencies, coordinating_agencies, assigner, assign_date, due_date, original_due_date, recurrence, \
    recurrence_parent, priority, key_task, stage, completion_date, percent_complete, extension_count, \
    deadline_version, version, created_by, created_agency, created_at, updated_by, updated_agency, updated_at";

/// The columns of a history entry, in the order both writers bind them.
const HISTORY_COLUMNS: &str =
    "task_id, action, from_stage, to_stage, due_date, reason, actor, agency, at";

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Source directive.
    pub directive_id: Option<i64>,
    /// Source item: at most one task per item.
    pub directive_item_id: Option<i64>,
    /// Directive number.
    pub directive_number: String,
    /// Item reference.
    pub reference: String,
    /// Leads.
    pub lead_agencies: Vec<String>,
    /// Coordinators.
    pub coordinating_agencies: Vec<String>,
    /// Assigner code.
    pub assigner: String,
    /// Assignment date.
    pub assign_date: NaiveDate,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Recurrence, stored form.
    pub recurrence: Option<String>,
    /// Priority, stored form.
    pub priority: String,
    /// Key task.
    pub key_task: bool,
}

/// Inserts a task and its ASSIGNED history entry. For a directive item that
/// already has its task, returns `None` and changes nothing.
pub async fn insert(
    conn: &mut PgConnection,
    task: &NewTask,
    actor: &Actor,
) -> Result<Option<TaskRecord>, Error> {
    // The task and its first history entry in one statement: one round
    // trip where two would be.
    sqlx::query_as::<_, TaskRecord>(&format!(
        "WITH task AS (INSERT INTO tasks (title, description, directive_id, directive_item_id, directive_number, reference, \
         lead_agencies, coordinating_agencies, assigner, assign_date, due_date, original_due_date, recurrence, \
         priority, key_task, created_by, created_agency, created_at, updated_by, updated_agency, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16, $17, $15, $16, $17) \
         ON CONFLICT (directive_item_id) DO NOTHING RETURNING {COLUMNS}), \
         history AS (INSERT INTO task_history ({HISTORY_COLUMNS}) \
         SELECT id, 'ASSIGNED', NULL, $18, due_date, '', $15, $16, $17 FROM task) \
         SELECT {COLUMNS} FROM task"
    ))
    .bind(&task.title)
    .bind(&task.description)
    .bind(task.directive_id)
    .bind(task.directive_item_id)
    .bind(&task.directive_number)
    .bind(&task.reference)
    .bind(&task.lead_agencies)
    .bind(&task.coordinating_agencies)
    .bind(&task.assigner)
    .bind(task.assign_date)
    .bind(task.due_date)
    .bind(&task.recurrence)
    .bind(&task.priority)
    .bind(task.key_task)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .bind(Stage::Assigned.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(storage_error)
}

/// Appends a history entry.
#[allow(clippy::too_many_arguments)]
pub async fn record_history(
    conn: &mut PgConnection,
    task_id: i64,
    action: &str,
    from: Option<Stage>,
    to: Stage,
    due_date: Option<NaiveDate>,
    reason: &str,
    actor: &Actor,
) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO task_history ({HISTORY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(task_id)
    .bind(action)
    .bind(from.map(Stage::as_str))
    .bind(to.as_str())
    .bind(due_date)
    .bind(reason)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Reads one task; `for_update` locks it.
pub async fn get(
    conn: &mut PgConnection,
    id: i64,
    for_update: bool,
) -> Result<Option<TaskRecord>, Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as::<_, TaskRecord>(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(storage_error)
}

/// Moves a task to `to`, with its completion date when completing.
pub async fn set_stage(
    conn: &mut PgConnection,
    id: i64,
    to: Stage,
    completion_date: Option<NaiveDate>,
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET stage = $2, completion_date = $3, version = version + 1, \
         updated_by = $4, updated_agency = $5, updated_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(to.as_str())
    .bind(completion_date)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Replaces the agencies of a task (reassignment, transfer).
pub async fn set_agencies(
    conn: &mut PgConnection,
    id: i64,
    lead: &[String],
    coordinating: &[String],
    to: Stage,
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET lead_agencies = $2, coordinating_agencies = $3, stage = $4, version = version + 1, \
         updated_by = $5, updated_agency = $6, updated_at = $7 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(lead)
    .bind(coordinating)
    .bind(to.as_str())
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Filter of a task listing.
#[derive(Debug, Default, Clone)]
pub struct TaskQuery {
    /// Led or coordinated by.
    pub agency: Option<String>,
    /// Led by.
    pub lead: Option<String>,
    /// Stage.
    pub stage: Option<Stage>,
    /// Deadline state on `today`.
    pub deadline_state: Option<DeadlineState>,
    /// Due from.
    pub due_from: Option<NaiveDate>,
    /// Due until.
    pub due_until: Option<NaiveDate>,
    /// Key tasks only.
    pub key_task: Option<bool>,
    /// From this directive.
    pub directive: Option<i64>,
    /// Visibility of an agency user: led or coordinated by this agency.
    pub visible_to_agency: Option<String>,
}

/// The SQL predicate (over the `tasks` columns) selecting tasks in `state`
/// on `today` — the same rule as `domain::deadline::classify`, which the
/// storage tests check combination by combination. The date is written as
/// a literal from a parsed date, never from caller text.
pub fn deadline_predicate(state: DeadlineState, today: NaiveDate) -> String {
    let today = date_literal(today);
    match state {
        DeadlineState::Withdrawn => "stage = 'WITHDRAWN'".into(),
        DeadlineState::NoDeadline => "stage <> 'WITHDRAWN' AND due_date IS NULL".into(),
        DeadlineState::CompletedOnTime => format!(
            "stage = 'COMPLETED' AND due_date IS NOT NULL AND COALESCE(completion_date, {today}) <= due_date"
        ),
        DeadlineState::CompletedLate => format!(
            "stage = 'COMPLETED' AND due_date IS NOT NULL AND COALESCE(completion_date, {today}) > due_date"
        ),
        DeadlineState::InProgressOnTime => {
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date >= {today}")
        }
        DeadlineState::InProgressOverdue => {
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date < {today}")
        }
    }
}

/// The SQL predicate of the "nearly overdue" flag on `today`.
pub fn nearly_overdue_predicate(today: NaiveDate, policy: &DeadlinePolicy) -> String {
    format!(
        "stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date >= {} AND due_date <= {}",
        date_literal(today),
        date_literal(nearly_overdue_until(today, policy))
    )
}

/// The SQL predicate of the "overdue by more than 30 days" flag on `today`.
pub fn long_overdue_predicate(today: NaiveDate, policy: &DeadlinePolicy) -> String {
    format!(
        "stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date < {}",
        date_literal(long_overdue_before(today, policy))
    )
}

/// A date as an SQL literal.
pub fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{}'", date.format("%Y-%m-%d"))
}

/// Adds ` AND (predicate of state)` to a query.
pub fn deadline_condition(
    sql: &mut QueryBuilder<Postgres>,
    state: DeadlineState,
    today: NaiveDate,
) {
    sql.push(" AND (")
        .push(deadline_predicate(state, today))
        .push(")");
}

/// One page ordered by (due date, id) with tasks without a due date last,
/// after the key `after`.
///
/// A page filtered by agency (`lead`, `agency`, or an agency user's
/// visibility) is read from `task_agencies` in its list order, joined to its
/// tasks: the next `limit` index entries of the agency (of its stage, with a
/// stage filter) instead of every task of the agency sorted. Other filters
/// apply to the joined task rows (the side table's column names differ from
/// `tasks`' so that the task predicates apply unqualified).
pub async fn list(
    conn: &mut PgConnection,
    query: &TaskQuery,
    today: NaiveDate,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<TaskRecord>, Error> {
    let driving = driving_agency(query);
    let (due_key, id_key) = match driving {
        Some(_) => ("a.due_key", "a.task_id"),
        // Tasks without a due date sort as the far future.
        None => ("COALESCE(due_date, DATE '9999-12-31')", "id"),
    };
    let mut sql: QueryBuilder<Postgres> = match driving {
        Some(driving) => {
            let mut sql = QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM task_agencies a JOIN tasks ON tasks.id = a.task_id \
                 WHERE a.agency = "
            ));
            sql.push_bind(driving.agency.to_string());
            if driving.leads {
                sql.push(" AND a.leads");
            }
            if let Some(stage) = query.stage {
                sql.push(" AND a.task_stage = ").push_bind(stage.as_str());
            }
            sql
        }
        None => {
            let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM tasks WHERE true"));
            if let Some(stage) = query.stage {
                sql.push(" AND stage = ").push_bind(stage.as_str());
            }
            sql
        }
    };
    for agency in [&query.agency, &query.visible_to_agency]
        .into_iter()
        .flatten()
        .filter(|agency| driving.is_none_or(|d| d.agency != agency.as_str()))
    {
        sql.push(" AND (")
            // `@>` (not `= ANY`) so that the GIN indexes serve it.
            .push("lead_agencies @> ARRAY[")
            .push_bind(agency.clone())
            .push("::text] OR coordinating_agencies @> ARRAY[")
            .push_bind(agency.clone())
            .push("::text])");
    }
    if let Some(lead) = query
        .lead
        .as_ref()
        .filter(|lead| driving.is_none_or(|d| !d.leads || d.agency != lead.as_str()))
    {
        sql.push(" AND lead_agencies @> ARRAY[")
            .push_bind(lead.clone())
            .push("::text]");
    }
    if let Some(state) = query.deadline_state {
        deadline_condition(&mut sql, state, today);
    }
    if let Some(from) = query.due_from {
        sql.push(" AND due_date >= ").push_bind(from);
    }
    if let Some(until) = query.due_until {
        sql.push(" AND due_date <= ").push_bind(until);
    }
    if let Some(key) = query.key_task {
        sql.push(" AND key_task = ").push_bind(key);
    }
    if let Some(directive) = query.directive {
        sql.push(" AND directive_id = ").push_bind(directive);
    }
    if let Some((due, id)) = after {
        sql.push(format!(" AND ({due_key}, {id_key}) > ("))
            .push_bind(due)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    sql.push(format!(" ORDER BY {due_key}, {id_key} LIMIT "))
        .push_bind(limit);
    sql.build_query_as::<TaskRecord>()
        .fetch_all(conn)
        .await
        .map_err(storage_error)
}

/// The agency whose `task_agencies` entries drive a filtered read.
#[derive(Debug, Clone, Copy)]
struct DrivingAgency<'a> {
    agency: &'a str,
    /// Only the tasks it leads.
    leads: bool,
}

/// The most selective agency condition of a listing: `lead` (the tasks it
/// leads), else `agency`, else the caller's visibility.
fn driving_agency(query: &TaskQuery) -> Option<DrivingAgency<'_>> {
    query
        .lead
        .as_deref()
        .map(|agency| DrivingAgency {
            agency,
            leads: true,
        })
        .or_else(|| {
            query
                .agency
                .as_deref()
                .or(query.visible_to_agency.as_deref())
                .map(|agency| DrivingAgency {
                    agency,
                    leads: false,
                })
        })
}

/// The far-future stand-in for "no due date" in page keys.
pub fn sort_due(record: &TaskRecord) -> NaiveDate {
    record
        .due_date
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX))
}

/// Open tasks led by any of `agencies` (for a transfer after a merge).
pub async fn open_tasks_of(
    conn: &mut PgConnection,
    agencies: &[String],
) -> Result<Vec<TaskRecord>, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE stage NOT IN ('COMPLETED', 'WITHDRAWN') \
         AND (lead_agencies && $1 OR coordinating_agencies && $1) ORDER BY id FOR UPDATE"
    ))
    .bind(agencies)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Changes descriptive fields; `None` leaves a field as it is.
pub async fn update_fields(
    conn: &mut PgConnection,
    id: i64,
    title: Option<&str>,
    description: Option<&str>,
    priority: Option<&str>,
    key_task: Option<bool>,
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET title = COALESCE($2, title), description = COALESCE($3, description), \
         priority = COALESCE($4, priority), key_task = COALESCE($5, key_task), version = version + 1, \
         updated_by = $6, updated_agency = $7, updated_at = $8 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(title)
    .bind(description)
    .bind(priority)
    .bind(key_task)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Moves the due date: a new deadline version; an approved extension also
/// counts. The first due date ever given is kept as the original.
pub async fn set_due_date(
    conn: &mut PgConnection,
    id: i64,
    due: Option<NaiveDate>,
    extension: bool,
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET due_date = $2, original_due_date = COALESCE(original_due_date, $2), \
         deadline_version = deadline_version + 1, \
         extension_count = extension_count + CASE WHEN $3 THEN 1 ELSE 0 END, version = version + 1, \
         updated_by = $4, updated_agency = $5, updated_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(due)
    .bind(extension)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Records the latest percent complete.
pub async fn set_percent(
    conn: &mut PgConnection,
    id: i64,
    percent: i32,
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET percent_complete = $2, version = version + 1, \
         updated_by = $3, updated_agency = $4, updated_at = $5 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(percent)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Rewrites what an amended directive item says (text, key flag, agencies).
#[allow(clippy::too_many_arguments)]
pub async fn amend(
    conn: &mut PgConnection,
    id: i64,
    title: &str,
    description: &str,
    key_task: bool,
    lead: &[String],
    coordinating: &[String],
    actor: &Actor,
) -> Result<TaskRecord, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "UPDATE tasks SET title = $2, description = $3, key_task = $4, lead_agencies = $5, \
         coordinating_agencies = $6, version = version + 1, \
         updated_by = $7, updated_agency = $8, updated_at = $9 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(title)
    .bind(description)
    .bind(key_task)
    .bind(lead)
    .bind(coordinating)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// The task of a directive item, locked.
pub async fn by_item(conn: &mut PgConnection, item_id: i64) -> Result<Option<TaskRecord>, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE directive_item_id = $1 FOR UPDATE"
    ))
    .bind(item_id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Open tasks of a directive (occurrences of its duties included), locked.
pub async fn open_tasks_of_directive(
    conn: &mut PgConnection,
    directive_id: i64,
) -> Result<Vec<TaskRecord>, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE directive_id = $1 \
         AND stage NOT IN ('COMPLETED', 'WITHDRAWN') ORDER BY id FOR UPDATE"
    ))
    .bind(directive_id)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Open occurrences of a duty, locked.
pub async fn open_occurrences(
    conn: &mut PgConnection,
    duty: i64,
) -> Result<Vec<TaskRecord>, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE recurrence_parent = $1 \
         AND stage NOT IN ('COMPLETED', 'WITHDRAWN') ORDER BY id FOR UPDATE"
    ))
    .bind(duty)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Open recurring duties (not occurrences).
pub async fn open_duties(conn: &mut PgConnection) -> Result<Vec<TaskRecord>, Error> {
    sqlx::query_as::<_, TaskRecord>(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE recurrence IS NOT NULL AND recurrence_parent IS NULL \
         AND stage NOT IN ('COMPLETED', 'WITHDRAWN') ORDER BY id"
    ))
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Inserts an occurrence of `duty` with its ASSIGNED history entry; `None`
/// when it already exists.
pub async fn insert_occurrence(
    conn: &mut PgConnection,
    duty: &TaskRecord,
    occurrence: Occurrence,
    actor: &Actor,
) -> Result<Option<TaskRecord>, Error> {
    let record = sqlx::query_as::<_, TaskRecord>(&format!(
        "INSERT INTO tasks (title, description, directive_id, directive_number, reference, \
         lead_agencies, coordinating_agencies, assigner, assign_date, due_date, original_due_date, \
         recurrence_parent, priority, key_task, created_by, created_agency, created_at, \
         updated_by, updated_agency, updated_at) \
         SELECT title, description, directive_id, directive_number, reference, lead_agencies, \
         coordinating_agencies, assigner, $2, $3, $3, id, priority, key_task, $4, $5, $6, $4, $5, $6 \
         FROM tasks WHERE id = $1 \
         ON CONFLICT (recurrence_parent, due_date) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(duty.id)
    .bind(occurrence.assign_date)
    .bind(occurrence.due_date)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_optional(&mut *conn)
    .await
    .map_err(storage_error)?;
    if let Some(record) = &record {
        record_history(
            conn,
            record.id,
            "ASSIGNED",
            None,
            Stage::Assigned,
            record.due_date,
            &format!("kỳ của nhiệm vụ định kỳ tasks/{}", duty.id),
            actor,
        )
        .await?;
    }
    Ok(record)
}

/// True when the task's history already has this action with this reason
/// (to keep notes idempotent under redelivery).
pub async fn has_history(
    conn: &mut PgConnection,
    task_id: i64,
    action: &str,
    reason: &str,
) -> Result<bool, Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM task_history WHERE task_id = $1 AND action = $2 AND reason = $3)",
    )
    .bind(task_id)
    .bind(action)
    .bind(reason)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// One history entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRecord {
    /// What happened.
    pub action: String,
    /// Stage before.
    pub from_stage: Option<String>,
    /// Stage after.
    pub to_stage: String,
    /// Due date after.
    pub due_date: Option<NaiveDate>,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// For which agency.
    pub agency: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A task's history, oldest first.
pub async fn history(conn: &mut PgConnection, task_id: i64) -> Result<Vec<HistoryRecord>, Error> {
    sqlx::query_as::<_, HistoryRecord>(
        "SELECT action, from_stage, to_stage, due_date, reason, actor, agency, at \
         FROM task_history WHERE task_id = $1 ORDER BY id",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}
