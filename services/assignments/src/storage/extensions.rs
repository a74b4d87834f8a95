//! Extension requests.

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::PgConnection;

use super::Actor;
use crate::domain::extension::ExtensionState;

/// A stored request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExtensionRecord {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Requested due date.
    pub requested_due_date: NaiveDate,
    /// Due date when asked.
    pub previous_due_date: Option<NaiveDate>,
    /// Why.
    pub reason: String,
    /// State (stored form).
    pub state: String,
    /// Decision note.
    pub decision_note: String,
    /// Requester.
    pub requested_by: String,
    /// Their agency.
    pub requested_agency: Option<String>,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// Decider.
    pub decided_by: Option<String>,
    /// Their agency.
    pub decided_agency: Option<String>,
    /// When decided.
    pub decided_at: Option<DateTime<Utc>>,
}

impl ExtensionRecord {
    /// The state, parsed.
    pub fn state(&self) -> Result<ExtensionState, Error> {
        ExtensionState::parse(&self.state)
            .ok_or_else(|| Error::internal(format!("unknown extension state {}", self.state)))
    }
}

const COLUMNS: &str = "id, task_id, requested_due_date, previous_due_date, reason, state, decision_note, \
    requested_by, requested_agency, requested_at, decided_by, decided_agency, decided_at";

/// Saves a pending request.
pub async fn insert(
    conn: &mut PgConnection,
    task_id: i64,
    requested: NaiveDate,
    previous: Option<NaiveDate>,
    reason: &str,
    actor: &Actor,
) -> Result<ExtensionRecord, Error> {
    sqlx::query_as::<_, ExtensionRecord>(&format!(
        "INSERT INTO extension_requests (task_id, requested_due_date, previous_due_date, reason, \
         requested_by, requested_agency, requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(task_id)
    .bind(requested)
    .bind(previous)
    .bind(reason)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// True when the task has a pending request.
pub async fn has_pending(conn: &mut PgConnection, task_id: i64) -> Result<bool, Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM extension_requests WHERE task_id = $1 AND state = 'PENDING')",
    )
    .bind(task_id)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// One request of a task, locked.
pub async fn get(
    conn: &mut PgConnection,
    task_id: i64,
    id: i64,
) -> Result<Option<ExtensionRecord>, Error> {
    sqlx::query_as::<_, ExtensionRecord>(&format!(
        "SELECT {COLUMNS} FROM extension_requests WHERE task_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(task_id)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Records the decision.
pub async fn decide(
    conn: &mut PgConnection,
    id: i64,
    state: ExtensionState,
    note: &str,
    actor: &Actor,
) -> Result<ExtensionRecord, Error> {
    sqlx::query_as::<_, ExtensionRecord>(&format!(
        "UPDATE extension_requests SET state = $2, decision_note = $3, decided_by = $4, \
         decided_agency = $5, decided_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(state.as_str())
    .bind(note)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// A task's requests, oldest first.
pub async fn list(conn: &mut PgConnection, task_id: i64) -> Result<Vec<ExtensionRecord>, Error> {
    sqlx::query_as::<_, ExtensionRecord>(&format!(
        "SELECT {COLUMNS} FROM extension_requests WHERE task_id = $1 ORDER BY id"
    ))
    .bind(task_id)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}
