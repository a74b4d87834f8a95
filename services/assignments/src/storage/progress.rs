//! Progress reports.

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::PgConnection;

use super::Actor;

/// A stored report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgressRecord {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Reporting agency code.
    pub agency: String,
    /// What was done.
    pub text: String,
    /// 0 to 100.
    pub percent_complete: i32,
    /// Evidence documents.
    pub evidence: Vec<String>,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

const COLUMNS: &str = "id, task_id, agency, text, percent_complete, evidence, actor, at";

/// Saves a report.
pub async fn insert(
    conn: &mut PgConnection,
    task_id: i64,
    agency: &str,
    text: &str,
    percent: i32,
    evidence: &[String],
    actor: &Actor,
) -> Result<ProgressRecord, Error> {
    sqlx::query_as::<_, ProgressRecord>(&format!(
        "INSERT INTO progress_reports (task_id, agency, text, percent_complete, evidence, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(task_id)
    .bind(agency)
    .bind(text)
    .bind(percent)
    .bind(evidence)
    .bind(&actor.subject)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// A task's reports, newest first, before the id `before`.
pub async fn list(
    conn: &mut PgConnection,
    task_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ProgressRecord>, Error> {
    sqlx::query_as::<_, ProgressRecord>(&format!(
        "SELECT {COLUMNS} FROM progress_reports WHERE task_id = $1 AND id < $2 \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(task_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}
