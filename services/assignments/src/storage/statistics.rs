//! Statistics as SQL aggregates: one `COUNT(*) FILTER (WHERE …)` per
//! deadline state, with the predicates of `tasks::deadline_predicate` (the
//! SQL translation of `domain::deadline::classify`). Recurring duties are
//! not counted; their occurrences are.

use chrono::NaiveDate;
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::tasks::{deadline_predicate, long_overdue_predicate, nearly_overdue_predicate};
use crate::domain::deadline::{DeadlinePolicy, DeadlineState};
use crate::domain::statistics::Counts;

/// Scope and period of a statistic.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Led by.
    pub lead: Option<String>,
    /// Led or coordinated by.
    pub agency: Option<String>,
    /// From this directive.
    pub directive: Option<i64>,
    /// Assigned by (the issuer of the directive, or the office).
    pub issuer: Option<String>,
    /// Assigned from.
    pub assign_from: Option<NaiveDate>,
    /// Assigned until.
    pub assign_until: Option<NaiveDate>,
    /// Due from.
    pub due_from: Option<NaiveDate>,
    /// Due until.
    pub due_until: Option<NaiveDate>,
    /// Key tasks only (or not key tasks).
    pub key_task: Option<bool>,
    /// An agency user's visibility: led or coordinated by it.
    pub visible_to_agency: Option<String>,
}

const COLUMNS_PER_COUNTS: usize = 9;

/// The nine aggregate columns of [`Counts`], restricted by `only` (an SQL
/// predicate, e.g. `key_task`).
fn counts_columns(today: NaiveDate, policy: &DeadlinePolicy, only: &str) -> String {
    let state = |s| deadline_predicate(s, today);
    let predicates = [
        "stage <> 'WITHDRAWN'".to_string(),
        state(DeadlineState::CompletedOnTime),
        state(DeadlineState::CompletedLate),
        state(DeadlineState::InProgressOnTime),
        state(DeadlineState::InProgressOverdue),
        state(DeadlineState::NoDeadline),
        nearly_overdue_predicate(today, policy),
        long_overdue_predicate(today, policy),
        "stage = 'COMPLETED'".to_string(),
    ];
    predicates
        .iter()
        .map(|p| format!("COUNT(*) FILTER (WHERE ({only}) AND ({p}))"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_counts(row: &PgRow, start: usize) -> Result<Counts, Error> {
    let get = |i: usize| row.try_get::<i64, _>(start + i).map_err(storage_error);
    Ok(Counts {
        total: get(0)?,
        completed_on_time: get(1)?,
        completed_late: get(2)?,
        in_progress_on_time: get(3)?,
        in_progress_overdue: get(4)?,
        no_deadline: get(5)?,
        nearly_overdue: get(6)?,
        overdue_over_30_days: get(7)?,
        completed: get(8)?,
    })
}

fn push_scope(sql: &mut QueryBuilder<Postgres>, scope: &Scope) {
    sql.push(" WHERE recurrence IS NULL");
    for agency in [&scope.agency, &scope.visible_to_agency]
        .into_iter()
        .flatten()
    {
        sql.push(" AND (")
            // `@>` (not `= ANY`) so that the GIN indexes serve it.
            .push("lead_agencies @> ARRAY[")
            .push_bind(agency.clone())
            .push("::text] OR coordinating_agencies @> ARRAY[")
            .push_bind(agency.clone())
            .push("::text])");
    }
    if let Some(lead) = &scope.lead {
        sql.push(" AND lead_agencies @> ARRAY[")
            .push_bind(lead.clone())
            .push("::text]");
    }
    if let Some(directive) = scope.directive {
        sql.push(" AND directive_id = ").push_bind(directive);
    }
    if let Some(issuer) = &scope.issuer {
        sql.push(" AND assigner = ").push_bind(issuer.clone());
    }
    if let Some(from) = scope.assign_from {
        sql.push(" AND assign_date >= ").push_bind(from);
    }
    if let Some(until) = scope.assign_until {
        sql.push(" AND assign_date <= ").push_bind(until);
    }
    if let Some(from) = scope.due_from {
        sql.push(" AND due_date >= ").push_bind(from);
    }
    if let Some(until) = scope.due_until {
        sql.push(" AND due_date <= ").push_bind(until);
    }
    if let Some(key) = scope.key_task {
        sql.push(" AND key_task = ").push_bind(key);
    }
}

/// Figures for a scope on `today`: all tasks, key tasks, and per lead agency.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Every task in scope.
    pub all: Counts,
    /// Key tasks in scope.
    pub key_tasks: Counts,
    /// Per lead agency code, unsorted.
    pub by_agency: Vec<(String, Counts)>,
}

/// Computes the figures of a scope.
pub async fn figures(
    conn: &mut PgConnection,
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Figures, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {}, {} FROM tasks",
        counts_columns(today, policy, "true"),
        counts_columns(today, policy, "key_task")
    ));
    push_scope(&mut sql, scope);
    let row = sql
        .build()
        .fetch_one(&mut *conn)
        .await
        .map_err(storage_error)?;
    let all = read_counts(&row, 0)?;
    let key_tasks = read_counts(&row, COLUMNS_PER_COUNTS)?;

    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT lead.code, {} FROM tasks CROSS JOIN LATERAL unnest(lead_agencies) AS lead(code)",
        counts_columns(today, policy, "true"),
    ));
    push_scope(&mut sql, scope);
    sql.push(" GROUP BY lead.code");
    let rows = sql
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    let mut by_agency = Vec::with_capacity(rows.len());
    for row in rows {
        let code: String = row.try_get(0).map_err(storage_error)?;
        by_agency.push((code, read_counts(&row, 1)?));
    }
    Ok(Figures {
        all,
        key_tasks,
        by_agency,
    })
}

/// A directive's tasks taken together.
#[derive(Debug, Clone)]
pub struct Rollup {
    /// Directive id.
    pub directive_id: i64,
    /// Its number.
    pub directive_number: String,
    /// Counts of its tasks.
    pub counts: Counts,
    /// Every task completed or withdrawn.
    pub done: bool,
}

/// Per-directive roll-ups, ordered by directive id, after `after`.
pub async fn rollups(
    conn: &mut PgConnection,
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Rollup>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT directive_id, max(directive_number), \
         bool_and(stage IN ('COMPLETED', 'WITHDRAWN')), {} FROM tasks",
        counts_columns(today, policy, "true"),
    ));
    push_scope(&mut sql, scope);
    sql.push(" AND directive_id IS NOT NULL");
    if let Some(after) = after {
        sql.push(" AND directive_id > ").push_bind(after);
    }
    sql.push(" GROUP BY directive_id ORDER BY directive_id LIMIT ")
        .push_bind(limit);
    let rows = sql
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    rows.iter()
        .map(|row| {
            Ok(Rollup {
                directive_id: row.try_get(0).map_err(storage_error)?,
                directive_number: row
                    .try_get::<Option<String>, _>(1)
                    .map_err(storage_error)?
                    .unwrap_or_default(),
                done: row
                    .try_get::<Option<bool>, _>(2)
                    .map_err(storage_error)?
                    .unwrap_or(false),
                counts: read_counts(row, 3)?,
            })
        })
        .collect()
}
