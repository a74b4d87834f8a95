//! The agency directory's tables.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::{is_unique_violation, storage_error};
use dondoc_errors::{Error, Violations};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;
use crate::domain::agency::{
    AgencyCode, AgencyLife, AgencyState, NameCandidate, NewAgency, Reorganization, Reorganize,
    folded_names,
};

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
         search_text, created_by, created_agency, created_at, updated_by, updated_agency, updated_at, folded_names) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9, $10, $11, $12) RETURNING {COLUMNS}"
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
    .bind(folded_names(
        &agency.display_name,
        &agency.short_name,
        &agency.aliases,
    ))
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

/// Reads one agency and locks it for the transaction.
pub async fn get_for_update(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<AgencyRecord>, Error> {
    sqlx::query_as::<_, AgencyRecord>(&format!(
        "SELECT {COLUMNS} FROM agencies WHERE code = $1 FOR UPDATE"
    ))
    .bind(code)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Reads several agencies, locking them in code order.
pub async fn lock_many(
    conn: &mut PgConnection,
    codes: &[&str],
) -> Result<HashMap<String, AgencyRecord>, Error> {
    let rows = sqlx::query_as::<_, AgencyRecord>(&format!(
        "SELECT {COLUMNS} FROM agencies WHERE code = ANY($1) ORDER BY code FOR UPDATE"
    ))
    .bind(codes)
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    Ok(rows.into_iter().map(|r| (r.code.clone(), r)).collect())
}

/// What the reorganisation rules need of an agency record.
pub fn life_of(record: &AgencyRecord) -> Option<AgencyLife> {
    Some(AgencyLife {
        state: AgencyState::parse(&record.state)?,
        effective_from: record.effective_from,
    })
}

/// Writes an agency's descriptive fields (checked) and bumps its version.
pub async fn update(
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
    sqlx::query_as::<_, AgencyRecord>(&format!(
        "UPDATE agencies SET display_name = $2, short_name = $3, aliases = $4, kind = $5, parent = $6, \
         search_text = $7, folded_names = $8, updated_by = $9, updated_agency = $10, updated_at = $11, \
         version = version + 1 WHERE code = $1 RETURNING {COLUMNS}"
    ))
    .bind(agency.code.as_str())
    .bind(&agency.display_name)
    .bind(&agency.short_name)
    .bind(&agency.aliases)
    .bind(agency.kind.as_str())
    .bind(agency.parent.as_ref().map(AgencyCode::as_str))
    .bind(agency.search_text())
    .bind(folded_names(
        &agency.display_name,
        &agency.short_name,
        &agency.aliases,
    ))
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// A former name as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NameRecord {
    /// Agency code.
    pub code: String,
    /// Full name.
    pub display_name: String,
    /// Short name.
    pub short_name: String,
    /// First day.
    pub valid_from: Option<NaiveDate>,
    /// Last day.
    pub valid_until: NaiveDate,
}

/// Former names of agencies, oldest first.
pub async fn name_history(
    conn: &mut PgConnection,
    codes: &[&str],
) -> Result<HashMap<String, Vec<NameRecord>>, Error> {
    let rows = sqlx::query_as::<_, NameRecord>(
        "SELECT code, display_name, short_name, valid_from, valid_until FROM agency_names \
         WHERE code = ANY($1) ORDER BY code, valid_until",
    )
    .bind(codes)
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    let mut out: HashMap<String, Vec<NameRecord>> = HashMap::new();
    for row in rows {
        out.entry(row.code.clone()).or_default().push(row);
    }
    Ok(out)
}

/// The first day of an agency's current name: the day after its last
/// rename, else its first day.
pub fn current_name_from(record: &AgencyRecord, history: &[NameRecord]) -> Option<NaiveDate> {
    history
        .iter()
        .map(|n| n.valid_until)
        .max()
        .and_then(|d| d.succ_opt())
        .or(record.effective_from)
}

/// Renames an agency from `effective_date`: the old name goes to history
/// (valid until the day before), the new one becomes current.
pub async fn rename(
    conn: &mut PgConnection,
    record: &AgencyRecord,
    display_name: &str,
    short_name: &str,
    effective_date: NaiveDate,
    actor: &Actor,
) -> Result<AgencyRecord, Error> {
    let history = name_history(conn, &[record.code.as_str()])
        .await?
        .remove(&record.code)
        .unwrap_or_default();
    let from = current_name_from(record, &history);
    if let Some(from) = from
        && effective_date <= from
    {
        return Err(Error::invalid(
            "effective_date",
            format!("{effective_date} is not after the current name's first day {from}"),
        ));
    }
    let until = effective_date.pred_opt().unwrap_or(effective_date);
    sqlx::query(
        "INSERT INTO agency_names (code, display_name, short_name, valid_from, valid_until, search_text, folded_names) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&record.code)
    .bind(&record.display_name)
    .bind(&record.short_name)
    .bind(from)
    .bind(until)
    .bind(folded_names(&record.display_name, &record.short_name, &[]).join(" | "))
    .bind(folded_names(&record.display_name, &record.short_name, &[]))
    .execute(&mut *conn)
    .await
    .map_err(storage_error)?;
    let code = AgencyCode::parse(&record.code).map_err(Error::internal)?;
    sqlx::query_as::<_, AgencyRecord>(&format!(
        "UPDATE agencies SET display_name = $2, short_name = $3, search_text = $4, folded_names = $5, \
         updated_by = $6, updated_agency = $7, updated_at = $8, version = version + 1 \
         WHERE code = $1 RETURNING {COLUMNS}"
    ))
    .bind(&record.code)
    .bind(display_name)
    .bind(short_name)
    .bind(crate::domain::agency::search_text(
        &code,
        display_name,
        short_name,
        &record.aliases,
    ))
    .bind(folded_names(display_name, short_name, &record.aliases))
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Applies a checked merge, split or dissolution: the sources end the day
/// before the effective date, with their successors; the reorganisation is
/// recorded.
pub async fn reorganize(
    conn: &mut PgConnection,
    reorg: &Reorganize,
    reason: &str,
    actor: &Actor,
) -> Result<(), Error> {
    let sources: Vec<&str> = reorg.sources.iter().map(AgencyCode::as_str).collect();
    let successors: Vec<&str> = reorg.successors.iter().map(AgencyCode::as_str).collect();
    if reorg.kind != Reorganization::Rename {
        sqlx::query(
            "UPDATE agencies SET state = $2, successors = $3, effective_until = $4, updated_by = $5, \
             updated_agency = $6, updated_at = $7, version = version + 1 WHERE code = ANY($1)",
        )
        .bind(&sources)
        .bind(reorg.kind.source_state().as_str())
        .bind(&successors)
        .bind(reorg.last_day())
        .bind(&actor.subject)
        .bind(&actor.agency)
        .bind(actor.at)
        .execute(&mut *conn)
        .await
        .map_err(storage_error)?;
    }
    sqlx::query(
        "INSERT INTO agency_reorganizations (kind, sources, successors, effective_date, reason, \
         created_by, created_agency, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(reorg.kind.as_str())
    .bind(&sources)
    .bind(&successors)
    .bind(reorg.effective_date)
    .bind(reason)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    code: String,
    state: String,
    effective_from: Option<NaiveDate>,
    effective_until: Option<NaiveDate>,
    name_from: Option<NaiveDate>,
    name_until: Option<NaiveDate>,
    folded_names: Vec<String>,
    display_name: String,
    short_name: String,
}

/// A way a name may designate an agency, with the name itself.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// For the resolution rules.
    pub rule: NameCandidate,
    /// The full name that matched period (current or former).
    pub display_name: String,
    /// Its short name.
    pub short_name: String,
}

/// Every agency that bears or bore one of the folded names (or whose code
/// is one of `codes`): current names, then former ones.
pub async fn candidates(
    conn: &mut PgConnection,
    folded: &[String],
    codes: &[String],
) -> Result<Vec<Candidate>, Error> {
    let rows = sqlx::query_as::<_, CandidateRow>(
        "SELECT a.code, a.state, a.effective_from, a.effective_until, \
           (SELECT MAX(n.valid_until) + 1 FROM agency_names n WHERE n.code = a.code) AS name_from, \
           NULL::date AS name_until, \
           CASE WHEN a.code = ANY($2) THEN a.folded_names || ARRAY['code:' || a.code] ELSE a.folded_names END AS folded_names, \
           a.display_name, a.short_name \
         FROM agencies a WHERE a.folded_names && $1 OR a.code = ANY($2) \
         UNION ALL \
         SELECT a.code, a.state, a.effective_from, a.effective_until, n.valid_from, n.valid_until, \
           n.folded_names, n.display_name, n.short_name \
         FROM agency_names n JOIN agencies a ON a.code = n.code WHERE n.folded_names && $1",
    )
    .bind(folded)
    .bind(codes)
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            rule: NameCandidate {
                state: AgencyState::parse(&r.state).unwrap_or(AgencyState::Active),
                code: r.code,
                effective_from: r.effective_from,
                effective_until: r.effective_until,
                name_from: r.name_from,
                name_until: r.name_until,
                folded: r.folded_names,
            },
            display_name: r.display_name,
            short_name: r.short_name,
        })
        .collect())
}

/// What an agency is now: its successors followed transitively to the
/// agencies that have none (itself when it was not reorganised; nothing
/// for a dissolved agency).
pub async fn current_of(conn: &mut PgConnection, code: &str) -> Result<Vec<AgencyRecord>, Error> {
    sqlx::query_as::<_, AgencyRecord>(&format!(
        "WITH RECURSIVE chain(code, depth) AS ( \
           SELECT code, 0 FROM agencies WHERE code = $1 \
           UNION \
           SELECT s.code, c.depth + 1 FROM chain c JOIN agencies a ON a.code = c.code \
             CROSS JOIN LATERAL unnest(a.successors) AS s(code) WHERE c.depth < 32 \
         ) \
         SELECT {COLUMNS} FROM agencies WHERE code IN (SELECT code FROM chain) \
           AND cardinality(successors) = 0 AND state <> 'DISSOLVED' ORDER BY code"
    ))
    .bind(code)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Code, names, aliases, search text and folded names of an agency.
type StoredNames = (String, String, String, Vec<String>, String, Vec<String>);
/// Code, last day, names, search text and folded names of a former name.
type StoredFormerNames = (String, NaiveDate, String, String, String, Vec<String>);

/// Recomputes every agency's folded names and search text (at start: the
/// fold is application code, so rows written before it changed are made
/// consistent). Returns how many rows changed.
pub async fn refold_all(conn: &mut PgConnection) -> Result<u64, Error> {
    let rows: Vec<StoredNames> = sqlx::query_as(
        "SELECT code, display_name, short_name, aliases, search_text, folded_names FROM agencies",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?;
    let mut changed = 0;
    for (code, display_name, short_name, aliases, search_text, folded) in rows {
        let Ok(parsed) = AgencyCode::parse(&code) else {
            continue;
        };
        let want_search =
            crate::domain::agency::search_text(&parsed, &display_name, &short_name, &aliases);
        let want_folded = folded_names(&display_name, &short_name, &aliases);
        if want_search != search_text || want_folded != folded {
            sqlx::query("UPDATE agencies SET search_text = $2, folded_names = $3 WHERE code = $1")
                .bind(&code)
                .bind(&want_search)
                .bind(&want_folded)
                .execute(&mut *conn)
                .await
                .map_err(storage_error)?;
            changed += 1;
        }
    }
    let names: Vec<StoredFormerNames> = sqlx::query_as(
        "SELECT code, valid_until, display_name, short_name, search_text, folded_names FROM agency_names",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?;
    for (code, until, display_name, short_name, search_text, folded) in names {
        let want_folded = folded_names(&display_name, &short_name, &[]);
        let want_search = want_folded.join(" | ");
        if want_search != search_text || want_folded != folded {
            sqlx::query(
                "UPDATE agency_names SET search_text = $3, folded_names = $4 WHERE code = $1 AND valid_until = $2",
            )
            .bind(&code)
            .bind(until)
            .bind(&want_search)
            .bind(&want_folded)
            .execute(&mut *conn)
            .await
            .map_err(storage_error)?;
            changed += 1;
        }
    }
    Ok(changed)
}
