//! Statistics as SQL aggregates: one `COUNT(*) FILTER (WHERE …)` per
//! deadline state, with the predicates of `tasks::deadline_predicate` (the
//! SQL translation of `domain::deadline::classify`). Recurring duties are
//! not counted; their occurrences are.
//!
//! The province, one agency (led or coordinated) and one lead agency, with
//! or without `key_task`, are read from the counters of migrations
//! `0104_task_tallies.sql`, `0105_tally_roll.sql` and `0106_tally_overdue.sql`
//! (kept by triggers in the writing transaction) with the same predicates
//! summed over counter rows;
//! any other filter counts the tasks themselves.

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
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
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
/// them (and the counters still tell its days apart), else from the tasks.
pub async fn figures(
    conn: &mut PgConnection,
    scope: &Scope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Figures, Error> {
    if let Some(counted) = counter_scope(scope, today, policy)
        && let Some(figures) = figures_from_counters(conn, &counted, today, policy).await?
    {
        return Ok(figures);
    }
    figures_from_tasks(conn, scope, today, policy).await
}

/// A scope that the counters hold: `''` (the province) or an agency (with
/// `leads`: only the tasks it leads), optionally key tasks only or not, and
/// the due dates read day by day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterScope {
    /// `''` or an agency code.
    pub scope: String,
    /// Only tasks the agency leads.
    pub leads: bool,
    /// Key tasks only (or not key tasks).
    pub key_task: Option<bool>,
    /// The boundaries of [`boundaries`]: tasks due before the first stand
    /// at DATE '0001-01-01', those due from the last on at a far-future
    /// date, the others at the boundary at or before their due date.
    pub boundaries: [NaiveDate; 3],
}

impl CounterScope {
    /// Tasks due from this date on are told apart by due date.
    pub fn detail_from(&self) -> NaiveDate {
        self.boundaries[0]
    }
}

/// The stand-in due date of `task_tally_totals` (migration 0104), and of the
/// day rows rolled by `task_tally_roll` (0105).
fn stand_in_due() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Where the statistics file a task whose state depends on today and whose
/// due date is after the detail: a date after any "today" + window, and not
/// `'infinity'` (which the counters use for "no due date").
fn far_future_due() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 30).unwrap_or(NaiveDate::MAX)
}

/// Day rows due before this date are rolled into the stand-in.
pub async fn rolled_before(conn: &mut PgConnection) -> Result<NaiveDate, Error> {
    sqlx::query_scalar("SELECT rolled_before FROM task_tally_watermark")
        .fetch_one(conn)
        .await
        .map_err(storage_error)
}

/// Due dates the roll moves per transaction: writers of tasks wait for each.
const ROLL_DAYS_PER_STEP: i32 = 31;

/// Rolls the day rows due before `until` into the stand-in (migration
/// 0105), a month of due dates per transaction (`conn` must not be in one).
/// Returns the watermark, which never moves back. Statistics stay exact
/// whatever it is; a watermark kept at the long-overdue boundary keeps the
/// rows they read few.
pub async fn roll_tallies(conn: &mut PgConnection, until: NaiveDate) -> Result<NaiveDate, Error> {
    loop {
        let rolled: NaiveDate = sqlx::query_scalar("SELECT task_tally_roll($1, $2)")
            .bind(until)
            .bind(ROLL_DAYS_PER_STEP)
            .fetch_one(&mut *conn)
            .await
            .map_err(storage_error)?;
        if rolled >= until {
            return Ok(rolled);
        }
    }
}

/// Counter rows folded per transaction: writers of tasks wait for each.
const FOLD_ROWS_PER_STEP: i32 = 20_000;

/// Folds the shards of every counter into one row (migration 0105), some
/// thousands of rows per transaction (`conn` must not be in one). Returns
/// how many rows it folded. Statistics are the same before and after; they
/// read fewer rows after.
pub async fn fold_tallies(conn: &mut PgConnection) -> Result<u64, Error> {
    let mut folded = 0;
    loop {
        let step: i32 = sqlx::query_scalar("SELECT task_tally_fold($1)")
            .bind(FOLD_ROWS_PER_STEP)
            .fetch_one(&mut *conn)
            .await
            .map_err(storage_error)?;
        folded += u64::try_from(step).unwrap_or_default();
        if step < FOLD_ROWS_PER_STEP {
            return Ok(folded);
        }
    }
}

/// Sums the day rows due before `until` (and from the roll's watermark on)
/// per counter (migration 0106), in one transaction (`conn` must not be in
/// one): the statistics of `until` read those sums instead of a month of
/// day rows. Returns the watermark, which never moves back. Called after
/// [`roll_tallies`] and [`fold_tallies`], with [`sum_overdue_until`].
pub async fn sum_overdue_tallies(
    conn: &mut PgConnection,
    until: NaiveDate,
) -> Result<NaiveDate, Error> {
    sqlx::query_scalar("SELECT task_tally_sum_overdue($1)")
        .bind(until)
        .fetch_one(conn)
        .await
        .map_err(storage_error)
}

/// How far [`roll_tallies`] may go on `today`: to the long-overdue boundary,
/// the earliest date the predicates tell apart (see [`counter_scope`]).
pub fn roll_until(today: NaiveDate, policy: &DeadlinePolicy) -> NaiveDate {
    boundaries(today, policy)[0]
}

/// How far [`sum_overdue_tallies`] goes on `today`: to the second boundary
/// (today), up to which every due date from the first gets the same answers.
pub fn sum_overdue_until(today: NaiveDate, policy: &DeadlinePolicy) -> NaiveDate {
    boundaries(today, policy)[1]
}

/// The due dates at which an answer of the predicates of `today` changes
/// (`due < long_overdue_before`, `due < today`, `today <= due`,
/// `due <= nearly_overdue_until`), in order: between two of them, before
/// the first and from the last on, every due date gets the same answers.
fn boundaries(today: NaiveDate, policy: &DeadlinePolicy) -> [NaiveDate; 3] {
    let nearly_overdue = nearly_overdue_until(today, policy);
    let mut dates = [
        long_overdue_before(today, policy),
        today,
        nearly_overdue.succ_opt().unwrap_or(nearly_overdue),
    ];
    dates.sort();
    dates
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
    // The stand-ins are outside the boundaries: a task due earlier (later)
    // gets the same answer from every predicate as the early (far-future)
    // stand-in does.
    let boundaries = boundaries(today, policy);
    if boundaries[0] <= stand_in_due() || boundaries[2] >= far_future_due() {
        return None;
    }
    Some(CounterScope {
        scope: counted,
        leads: lead.is_some(),
        key_task: *key_task,
        boundaries,
    })
}

/// Figures from the counters: `task_tally_totals` (every task, its due date
/// at the stand-in) with the tasks whose state depends on today moved to the
/// far-future stand-in, then moved back by the day rows of `task_tally_days`
/// due before the last boundary: each group's together out of the
/// far-future stand-in, and into the boundary at or before their due date
/// (or the stand-in, where rolled rows already stand). The days from the
/// first boundary to the second are read as their sums in
/// `task_tally_overdue` when the watermarks are at those boundaries (as the
/// service keeps them: [`sum_overdue_tallies`]), else day by day. The predicates are
/// those of the task lists (`tasks::deadline_predicate`), applied to a few
/// rows per lead agency.
///
/// `None` when a day from the first boundary on has been rolled into the
/// stand-in: the predicates of `today` tell apart what the counters no
/// longer do (a clock set back, a longer long-overdue threshold, or a roll
/// by a replica already in tomorrow), and only the tasks know.
pub async fn figures_from_counters(
    conn: &mut PgConnection,
    counted: &CounterScope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Result<Option<Figures>, Error> {
    let rows = counters_statement(counted, today, policy)
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    let mut figures = Figures::default();
    for row in rows {
        let Some(lead) = row.try_get::<Option<String>, _>(0).map_err(storage_error)? else {
            return Ok(None);
        };
        if lead.is_empty() {
            figures.all = read_counts(&row, 1)?;
            figures.key_tasks = read_counts(&row, 1 + COLUMNS_PER_COUNTS)?;
        } else {
            figures.by_agency.push((lead, read_counts(&row, 1)?));
        }
    }
    Ok(Some(figures))
}

/// The statement of [`figures_from_counters`] (public for the benchmark,
/// which times it and prints its plan): per lead agency (`''` for the
/// scope), the nine counts of [`Counts`] and, on the scope's row only,
/// those of its key tasks; or, when the day rows are rolled past the first
/// boundary, one row whose lead agency is `NULL`. The counters and the
/// watermarks are read in the statement's one snapshot: a roll committed
/// meanwhile cannot come between them.
pub fn counters_statement(
    counted: &CounterScope,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> QueryBuilder<'static, Postgres> {
    let condition = |sql: &mut QueryBuilder<Postgres>| {
        sql.push(" WHERE scope = ").push_bind(counted.scope.clone());
        if counted.leads {
            sql.push(" AND scope_leads");
        }
        if let Some(key) = counted.key_task {
            sql.push(" AND key_task = ").push_bind(key);
        }
    };
    let stand_in = date_literal(stand_in_due());
    let far_future = date_literal(far_future_due());
    let [first, second, last] = counted.boundaries.map(date_literal);
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT lead_agency, {}, {} FROM (\
         SELECT lead_agency, key_task, stage, \
         CASE WHEN due_date = 'infinity' THEN NULL \
         WHEN stage = 'OPEN' OR completion_date = 'infinity' THEN {far_future} \
         ELSE due_date END AS due_date, \
         NULLIF(completion_date, 'infinity') AS completion_date, tasks FROM task_tally_totals",
        counts_columns(today, policy, "true", Tally::CounterRows),
        // Key tasks are counted for the scope's total only (not per lead
        // agency, which `read_counts` never reads): most rows skip those
        // nine predicates.
        counts_columns(
            today,
            policy,
            "lead_agency = '' AND key_task",
            Tally::CounterRows
        ),
    ));
    condition(&mut sql);
    // The day rows (and the sums of those from the first boundary to the
    // second) move their tasks out of the far-future stand-in: each group's
    // together, and in, to the boundary at or before their due date. `INT`
    // like the totals' counts: the outer sums then add machine integers.
    sql.push(format!(
        " UNION ALL SELECT lead_agency, key_task, stage, COALESCE(day, {far_future}), NULL, \
         (CASE WHEN GROUPING(day) = 1 THEN -SUM(tasks) ELSE SUM(tasks) END)::int FROM ("
    ));
    let days = |sql: &mut QueryBuilder<Postgres>, due: &str| {
        sql.push(format!(
            "SELECT lead_agency, key_task, stage, tasks, CASE WHEN due_date < {first} THEN {stand_in} \
             WHEN due_date < {second} THEN {first} ELSE {second} END AS day FROM task_tally_days"
        ));
        condition(sql);
        sql.push(format!(" AND {due}"));
    };
    // Whether `task_tally_overdue` sums exactly the days from the first
    // boundary to the second (migration 0106), in the statement's own
    // snapshot: PostgreSQL reads it once and skips the branch it rules out.
    let summed = format!(
        "(SELECT rolled_before = {first} AND overdue_before = {second} FROM task_tally_watermark)"
    );
    days(&mut sql, &format!("due_date < {first}"));
    sql.push(" UNION ALL ");
    days(
        &mut sql,
        &format!("due_date >= {second} AND due_date < {last}"),
    );
    sql.push(" UNION ALL ");
    days(
        &mut sql,
        &format!("due_date >= {first} AND due_date < {second} AND NOT {summed}"),
    );
    sql.push(format!(
        " UNION ALL SELECT lead_agency, key_task, stage, tasks, {first} FROM task_tally_overdue"
    ));
    condition(&mut sql);
    sql.push(format!(
        " AND {summed}) AS days \
         GROUP BY GROUPING SETS ((lead_agency, key_task, stage, day), (lead_agency, key_task, stage))\
         ) AS tally GROUP BY lead_agency HAVING SUM(tasks) > 0 \
         UNION ALL SELECT NULL{} FROM task_tally_watermark WHERE rolled_before > {first}",
        ", NULL".repeat(2 * COLUMNS_PER_COUNTS)
    ));
    sql
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
