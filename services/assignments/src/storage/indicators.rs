//! Indicators and their values.

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use dondoc_server::listing::Op;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;

/// An indicator with the actual of the same period a year earlier.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndicatorRecord {
    /// Id.
    pub id: i64,
    /// Agency code.
    pub agency: String,
    /// Stable code.
    pub code: String,
    /// Label.
    pub display_name: String,
    /// Unit.
    pub unit: String,
    /// MONTH, QUARTER or YEAR.
    pub period_kind: String,
    /// Year.
    pub year: i32,
    /// Month, quarter or 0.
    pub period: i32,
    /// Target.
    pub target: f64,
    /// Actual, when reported.
    pub actual: Option<f64>,
    /// The same indicator's actual a year earlier.
    pub previous_year_actual: Option<f64>,
    /// Last editor.
    pub updated_by: String,
    /// Their agency.
    pub updated_agency: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An indicator to create.
#[derive(Debug, Clone)]
pub struct NewIndicator {
    /// Agency code.
    pub agency: String,
    /// Stable code.
    pub code: String,
    /// Label.
    pub display_name: String,
    /// Unit.
    pub unit: String,
    /// Period kind, stored form.
    pub period_kind: &'static str,
    /// Year.
    pub year: i32,
    /// Period.
    pub period: i32,
    /// Target.
    pub target: f64,
    /// Actual, when known at creation.
    pub actual: Option<f64>,
}

const SELECT: &str = "SELECT i.id, i.agency, i.code, i.display_name, i.unit, i.period_kind, i.year, \
    i.period, i.target, i.actual, p.actual AS previous_year_actual, i.updated_by, i.updated_agency, \
    i.updated_at FROM indicators i LEFT JOIN indicators p ON p.code = i.code AND p.agency = i.agency \
    AND p.period_kind = i.period_kind AND p.period = i.period AND p.year = i.year - 1";

/// The SQL of percent of plan, the same rule as `domain::indicator::percent_of_plan`.
const PERCENT_OF_PLAN: &str =
    "(CASE WHEN i.target > 0 AND i.actual IS NOT NULL THEN i.actual / i.target * 100 END)";

/// Creates an indicator; `None` when the same code, agency and period exists.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewIndicator,
    actor: &Actor,
) -> Result<Option<i64>, Error> {
    sqlx::query_scalar(
        "INSERT INTO indicators (agency, code, display_name, unit, period_kind, year, period, target, \
         actual, updated_by, updated_agency, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (code, agency, period_kind, year, period) DO NOTHING RETURNING id",
    )
    .bind(&new.agency)
    .bind(&new.code)
    .bind(&new.display_name)
    .bind(&new.unit)
    .bind(new.period_kind)
    .bind(new.year)
    .bind(new.period)
    .bind(new.target)
    .bind(new.actual)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Reads one indicator; `for_update` locks it.
pub async fn get(
    conn: &mut PgConnection,
    id: i64,
    for_update: bool,
) -> Result<Option<IndicatorRecord>, Error> {
    let lock = if for_update { " FOR UPDATE OF i" } else { "" };
    sqlx::query_as::<_, IndicatorRecord>(&format!("{SELECT} WHERE i.id = $1{lock}"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(storage_error)
}

/// Sets the target or the actual value.
pub async fn set_value(
    conn: &mut PgConnection,
    id: i64,
    target: Option<f64>,
    actual: Option<f64>,
    actor: &Actor,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE indicators SET target = COALESCE($2, target), actual = COALESCE($3, actual), \
         updated_by = $4, updated_agency = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(target)
    .bind(actual)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Filter of an indicator listing.
#[derive(Debug, Default, Clone)]
pub struct IndicatorQuery {
    /// Agency code.
    pub agency: Option<String>,
    /// Indicator code.
    pub code: Option<String>,
    /// Period kind, stored form.
    pub period_kind: Option<&'static str>,
    /// Year comparisons.
    pub year: Vec<(Op, i32)>,
    /// Period comparisons.
    pub period: Vec<(Op, i32)>,
    /// Percent-of-plan comparisons (indicators without one never match).
    pub percent_of_plan: Vec<(Op, f64)>,
}

/// One page ordered by id, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    query: &IndicatorQuery,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<IndicatorRecord>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE true");
    if let Some(agency) = &query.agency {
        sql.push(" AND i.agency = ").push_bind(agency.clone());
    }
    if let Some(code) = &query.code {
        sql.push(" AND i.code = ").push_bind(code.clone());
    }
    if let Some(kind) = query.period_kind {
        sql.push(" AND i.period_kind = ").push_bind(kind);
    }
    for (op, year) in &query.year {
        sql.push(format!(" AND i.year {} ", op.sql()))
            .push_bind(*year);
    }
    for (op, period) in &query.period {
        sql.push(format!(" AND i.period {} ", op.sql()))
            .push_bind(*period);
    }
    for (op, value) in &query.percent_of_plan {
        sql.push(format!(" AND {PERCENT_OF_PLAN} {} ", op.sql()))
            .push_bind(*value);
    }
    if let Some(after) = after {
        sql.push(" AND i.id > ").push_bind(after);
    }
    sql.push(" ORDER BY i.id LIMIT ").push_bind(limit);
    sql.build_query_as::<IndicatorRecord>()
        .fetch_all(conn)
        .await
        .map_err(storage_error)
}
