//! Statistics as SQL aggregates: one `COUNT(*) FILTER (WHERE …)` per
//! deadline state, with the predicates of `tasks::deadline_predicate` (the
//! SQL translation of `domain::deadline::classify`). Recurring duties are
//! not counted; their occurrences are.
//!
//! The province, one agency (led or coordinated) and one lead agency, with
//! or without `key_task`, are read from the counters of migration
//! `0104_task_tallies.sql` (kept by triggers in the writing transaction)
//! with the same predicates summed over counter rows; any other filter
//! counts the tasks themselves.

use chrono::NaiveDate;
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::tasks::{
    date_literal, deadline_predicate, long_overdue_predicate, nearly_overdue_predicate,
};
use crate::domain::deadline::{
    DeadlinePolicy, DeadlineState, long_overdue_before, nearly_overdue_until,
};
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

/// What a counts column adds up: task rows, or the `tasks` column of
/// counter rows.
#[derive(Debug, Clone, Copy)]
enum Tally {
    Rows,
    CounterRows,
}

/// The nine aggregate columns of [`Counts`], restricted by `only` (an SQL
/// predicate, e.g. `key_task`).
fn counts_columns(today: NaiveDate, policy: &DeadlinePolicy, only: &str, tally: Tally) -> String {
    let count = match tally {
        Tally::Rows => "COUNT(*)",
        Tally::CounterRows => "SUM(tasks)",
    };
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
        .map(|p| format!("COALESCE({count} FILTER (WHERE ({only}) AND ({p})), 0)::bigint"))
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

/// Computes the figures of a scope: from the counters when the scope has
/// them, else from the tasks.
pub async fn figures(
    conn: &mut PgConnection,
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Figures, Error> {
    match counter_scope(scope, today, policy) {
        Some(counted) => figures_from_counters(conn, &counted, today, policy).await,
        None => figures_from_tasks(conn, scope, today, policy).await,
    }
}

/// A scope that the counters hold: `''` (the province) or an agency (with
/// `leads`: only the tasks it leads), optionally key tasks only or not, and
/// the first due date read day by day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterScope {
    /// `''` or an agency code.
    pub scope: String,
    /// Only tasks the agency leads.
    pub leads: bool,
    /// Key tasks only (or not key tasks).
    pub key_task: Option<bool>,
    /// Counter rows due from this date on are read by due date; earlier ones
    /// stand at DATE '0001-01-01'.
    pub detail_from: NaiveDate,
}

/// The stand-in due date of `task_tally_totals` (migration 0104).
fn stand_in_due() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The counter scope of `scope` on `today`, if the counters hold it.
pub fn counter_scope(
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Option<CounterScope> {
    let Scope {
        lead,
        agency,
        directive: None,
        issuer: None,
        assign_from: None,
        assign_until: None,
        due_from: None,
        due_until: None,
        key_task,
        visible_to_agency,
    } = scope
    else {
        return None;
    };
    // Every agency condition must name the same agency; `''` is the
    // province's scope, never an agency's (codes are never empty, but an
    // empty one must not widen what a caller sees).
    let mut named = [lead, agency, visible_to_agency].into_iter().flatten();
    let counted = match named.next() {
        None => String::new(),
        Some(first) if !first.is_empty() && named.all(|other| other == first) => first.clone(),
        Some(_) => return None,
    };
    // Every bound of the predicates is at or after `detail_from`, and the
    // stand-in is before it: a task due earlier gets the same answer from
    // every predicate as the stand-in does.
    let detail_from = long_overdue_before(today, policy)
        .min(today)
        .min(nearly_overdue_until(today, policy));
    if detail_from <= stand_in_due() {
        return None;
    }
    Some(CounterScope {
        scope: counted,
        leads: lead.is_some(),
        key_task: *key_task,
        detail_from,
    })
}

/// Figures from `task_tally_totals` and, from `detail_from` on,
/// `task_tally_days`: rows of (stage, due_date, completion_date, tasks)
/// summed with the task predicates (see migration 0104).
pub async fn figures_from_counters(
    conn: &mut PgConnection,
    counted: &CounterScope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Figures, Error> {
    let condition = |sql: &mut QueryBuilder<Postgres>| {
        sql.push(" WHERE scope = ").push_bind(counted.scope.clone());
        if counted.leads {
            sql.push(" AND scope_leads");
        }
        if let Some(key) = counted.key_task {
            sql.push(" AND key_task = ").push_bind(key);
        }
    };
    let detail_from = date_literal(counted.detail_from);
    let stand_in = date_literal(stand_in_due());
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT lead_agency, {}, {} FROM (\
         SELECT lead_agency, key_task, stage, NULLIF(due_date, 'infinity') AS due_date, \
         NULLIF(completion_date, 'infinity') AS completion_date, tasks FROM task_tally_totals",
        counts_columns(today, policy, "true", Tally::CounterRows),
        counts_columns(today, policy, "key_task", Tally::CounterRows),
    ));
    condition(&mut sql);
    sql.push(
        " UNION ALL SELECT lead_agency, key_task, stage, due_date, NULL, tasks FROM task_tally_days",
    );
    condition(&mut sql);
    sql.push(format!(" AND due_date >= {detail_from}"));
    sql.push(format!(
        " UNION ALL SELECT lead_agency, key_task, stage, {stand_in}, NULL, -tasks FROM task_tally_days"
    ));
    condition(&mut sql);
    sql.push(format!(
        " AND due_date >= {detail_from}) AS tally GROUP BY lead_agency HAVING SUM(tasks) > 0"
    ));
    let rows = sql
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    let mut figures = Figures::default();
    for row in rows {
        let lead: String = row.try_get(0).map_err(storage_error)?;
        if lead.is_empty() {
            figures.all = read_counts(&row, 1)?;
            figures.key_tasks = read_counts(&row, 1 + COLUMNS_PER_COUNTS)?;
        } else {
            figures.by_agency.push((lead, read_counts(&row, 1)?));
        }
    }
    Ok(figures)
}

/// Figures counted over the tasks in scope.
pub async fn figures_from_tasks(
    conn: &mut PgConnection,
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Figures, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {}, {} FROM tasks",
        counts_columns(today, policy, "true", Tally::Rows),
        counts_columns(today, policy, "key_task", Tally::Rows)
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
        counts_columns(today, policy, "true", Tally::Rows),
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
        counts_columns(today, policy, "true", Tally::Rows),
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
