//! The agency directory's tables.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::{is_unique_violation, storage_error};
use dondoc_errors::{Error, Violations};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;
use crate::domain::agency::{AgencyCode, AgencyState, NewAgency};

/// An agency as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgencyRecord {
    /// Code.
    pub code: String,
    /// Full name.
    pub display_name: String,
    /// Short name.
    pub short_name: String,
    /// Other names.
    pub aliases: Vec<String>,
    /// Kind (stored form).
    pub kind: String,
    /// Parent code.
    pub parent: Option<String>,
    /// First day.
    pub effective_from: Option<NaiveDate>,
    /// Last day.
    pub effective_until: Option<NaiveDate>,
    /// State (stored form).
    pub state: String,
    /// Successor codes.
    pub successors: Vec<String>,
    /// Optimistic concurrency version.
    pub version: i64,
    /// Creator.
    pub created_by: String,
    /// Creator's agency.
    pub created_agency: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last editor.
    pub updated_by: String,
    /// Last editor's agency.
    pub updated_agency: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "code, display_name, short_name, aliases, kind, parent, effective_from, \
    effective_until, state, successors, version, created_by, created_agency, created_at, \
    updated_by, updated_agency, updated_at";

/// Inserts a new agency; its parent must exist.
pub async fn insert(
    conn: &mut PgConnection,
    agency: &NewAgency,
    actor: &Actor,
) -> Result<AgencyRecord, Error> {
    if let Some(parent) = &agency.parent
        && get(conn, parent.as_str()).await?.is_none()
    {
        return Err(Error::invalid(
            "agency.parent",
            format!("{} does not exist", parent.name()),
        ));
    }
    let result = sqlx::query_as::<_, AgencyRecord>(&format!(
        "INSERT INTO agencies (code, display_name, short_name, aliases, kind, parent, effective_from, \
         search_text, created_by, created_agency, created_at, updated_by, updated_agency, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(agency.code.as_str())
    .bind(&agency.display_name)
    .bind(&agency.short_name)
    .bind(&agency.aliases)
    .bind(agency.kind.as_str())
    .bind(agency.parent.as_ref().map(AgencyCode::as_str))
    .bind(agency.effective_from)
    .bind(agency.search_text())
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await;
    match result {
        Ok(record) => Ok(record),
        Err(e) if is_unique_violation(&e, "agencies_pkey") => Err(Error::AlreadyExists {
            resource: "agency",
            name: agency.code.name(),
        }),
        Err(e) => Err(storage_error(e)),
    }
}

/// Reads one agency.
pub async fn get(conn: &mut PgConnection, code: &str) -> Result<Option<AgencyRecord>, Error> {
    sqlx::query_as::<_, AgencyRecord>(&format!("SELECT {COLUMNS} FROM agencies WHERE code = $1"))
        .bind(code)
        .fetch_optional(conn)
        .await
        .map_err(storage_error)
}

/// Checks that every referenced agency exists and is active, reporting each
/// offending reference under its field path.
pub async fn check_assignable(
    conn: &mut PgConnection,
    references: &[(String, &AgencyCode)],
    violations: &mut Violations,
) -> Result<(), Error> {
    let codes: Vec<&str> = references.iter().map(|(_, c)| c.as_str()).collect();
    let rows: Vec<(String, String, Vec<String>)> =
        sqlx::query_as("SELECT code, state, successors FROM agencies WHERE code = ANY($1)")
            .bind(&codes)
            .fetch_all(conn)
            .await
            .map_err(storage_error)?;
    let known: HashMap<String, (String, Vec<String>)> = rows
        .into_iter()
        .map(|(code, state, succ)| (code, (state, succ)))
        .collect();
    for (field, code) in references {
        match known.get(code.as_str()) {
            None => violations.add(
                field.clone(),
                format!("{} is not in the agency directory", code.name()),
            ),
            Some((state, successors)) if state != AgencyState::Active.as_str() => {
                let hint = if successors.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; its work passed to {}",
                        successors
                            .iter()
                            .map(|s| format!("agencies/{s}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                violations.add(
                    field.clone(),
                    format!(
                        "{} no longer exists ({}){hint}",
                        code.name(),
                        state.to_lowercase()
                    ),
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Filter of an agency listing.
#[derive(Debug, Default, Clone)]
pub struct AgencyQuery {
    /// Kind, stored form.
    pub kind: Option<String>,
    /// State, stored form.
    pub state: Option<String>,
    /// Parent code.
    pub parent: Option<String>,
    /// Folded words that must all appear in some name.
    pub search: Option<String>,
}

/// One page of agencies ordered by code, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    query: &AgencyQuery,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AgencyRecord>, Error> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM agencies WHERE true"));
    if let Some(kind) = &query.kind {
        sql.push(" AND kind = ").push_bind(kind);
    }
    if let Some(state) = &query.state {
        sql.push(" AND state = ").push_bind(state);
    }
    if let Some(parent) = &query.parent {
        sql.push(" AND parent = ").push_bind(parent);
    }
    if let Some(search) = &query.search {
        for word in search.split_whitespace() {
            sql.push(" AND (search_text LIKE ")
                .push_bind(format!("%{}%", word.replace(['%', '_'], "")))
                .push(" OR EXISTS (SELECT 1 FROM agency_names n WHERE n.code = agencies.code AND n.search_text LIKE ")
                .push_bind(format!("%{}%", word.replace(['%', '_'], "")))
                .push("))");
        }
    }
    if let Some(after) = after {
        sql.push(" AND code > ").push_bind(after.to_string());
    }
    sql.push(" ORDER BY code LIMIT ").push_bind(limit);
    sql.build_query_as::<AgencyRecord>()
        .fetch_all(conn)
        .await
        .map_err(storage_error)
}
