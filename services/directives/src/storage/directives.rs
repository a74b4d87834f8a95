//! Directive documents and their items.

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::{is_unique_violation, storage_error};
use dondoc_errors::Error;
use dondoc_server::convert::recurrence_to_text;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;
use crate::domain::directive::Draft;

/// A directive as stored, with its items.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectiveRecord {
    /// Id.
    pub id: i64,
    /// Kind (stored form).
    pub kind: String,
    /// Number and symbol, empty when not yet numbered.
    pub number: String,
    /// Issuer code.
    pub issuer: String,
    /// Signer's name.
    pub signer_name: String,
    /// Signer's title.
    pub signer_title: String,
    /// Signing capacities.
    pub signer_capacities: Vec<String>,
    /// Place.
    pub place: String,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Meeting date.
    pub meeting_date: Option<NaiveDate>,
    /// Meeting chair.
    pub meeting_chair: Option<String>,
    /// State (stored form).
    pub state: String,
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
    /// Who issued it.
    pub issued_by: Option<String>,
    /// Their agency.
    pub issued_agency: Option<String>,
    /// When.
    pub issued_at: Option<DateTime<Utc>>,
    /// Items, in document order.
    #[sqlx(skip)]
    pub items: Vec<ItemRecord>,
}

/// An item as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRecord {
    /// Id.
    pub id: i64,
    /// Directive id.
    pub directive_id: i64,
    /// Position in the document.
    pub position: i32,
    /// The document's reference.
    pub reference: String,
    /// Text.
    pub text: String,
    /// Lead codes.
    pub lead_agencies: Vec<String>,
    /// Coordinating codes.
    pub coordinating_agencies: Vec<String>,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Recurrence (stored form).
    pub recurrence: Option<String>,
    /// Deadline phrase.
    pub deadline_text: String,
    /// Key task.
    pub key_task: bool,
    /// State.
    pub state: String,
}

const COLUMNS: &str = "id, kind, number, issuer, signer_name, signer_title, signer_capacities, place, \
    issue_date, subject, body, recipients, meeting_date, meeting_chair, state, version, created_by, \
    created_agency, created_at, updated_by, updated_agency, updated_at, issued_by, issued_agency, issued_at";

/// Inserts a draft with its items; returns its id.
pub async fn insert(conn: &mut PgConnection, draft: &Draft, actor: &Actor) -> Result<i64, Error> {
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO directives (kind, number, issue_year, issuer, signer_name, signer_title, \
         signer_capacities, place, issue_date, subject, body, recipients, meeting_date, meeting_chair, \
         created_by, created_agency, created_at, updated_by, updated_agency, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $15, $16, $17) \
         RETURNING id",
    )
    .bind(draft.kind.as_str())
    .bind(draft.number.as_ref().map(|n| n.as_str()).unwrap_or(""))
    .bind(draft.issue_year())
    .bind(draft.issuer.as_str())
    .bind(&draft.signer.full_name)
    .bind(&draft.signer.title)
    .bind(&draft.signer.capacities)
    .bind(&draft.place)
    .bind(draft.issue_date)
    .bind(&draft.subject)
    .bind(&draft.body)
    .bind(&draft.recipients)
    .bind(draft.meeting.as_ref().and_then(|m| m.0))
    .bind(draft.meeting.as_ref().map(|m| m.1.clone()))
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .fetch_one(&mut *conn)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e, "directives_number_unique") => {
            return Err(Error::invalid(
                "directive.number",
                format!(
                    "{} is already used by this issuer in {}",
                    draft
                        .number
                        .as_ref()
                        .map(|n| n.as_str())
                        .unwrap_or_default(),
                    draft
                        .issue_year()
                        .map(|y| y.to_string())
                        .unwrap_or_default()
                ),
            ));
        }
        Err(e) => return Err(storage_error(e)),
    };
    for (position, item) in draft.items.iter().enumerate() {
        let lead: Vec<&str> = item.lead.iter().map(|c| c.as_str()).collect();
        let coordinating: Vec<&str> = item.coordinating.iter().map(|c| c.as_str()).collect();
        sqlx::query(
            "INSERT INTO directive_items (directive_id, position, reference, text, lead_agencies, \
             coordinating_agencies, due_date, recurrence, deadline_text, key_task) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(position as i32)
        .bind(&item.reference)
        .bind(&item.text)
        .bind(&lead)
        .bind(&coordinating)
        .bind(item.due)
        .bind(item.recurrence.map(recurrence_to_text))
        .bind(&item.deadline_text)
        .bind(item.key_task)
        .execute(&mut *conn)
        .await
        .map_err(storage_error)?;
    }
    Ok(id)
}

/// Reads a directive with its items; `for_update` locks its row.
pub async fn get(
    conn: &mut PgConnection,
    id: i64,
    for_update: bool,
) -> Result<Option<DirectiveRecord>, Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let record = sqlx::query_as::<_, DirectiveRecord>(&format!(
        "SELECT {COLUMNS} FROM directives WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(storage_error)?;
    let Some(mut record) = record else {
        return Ok(None);
    };
    record.items = items_of(conn, &[id]).await?;
    Ok(Some(record))
}

async fn items_of(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<ItemRecord>, Error> {
    sqlx::query_as::<_, ItemRecord>(
        "SELECT id, directive_id, position, reference, text, lead_agencies, coordinating_agencies, \
         due_date, recurrence, deadline_text, key_task, state FROM directive_items \
         WHERE directive_id = ANY($1) ORDER BY directive_id, position",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Marks a draft issued.
pub async fn mark_issued(conn: &mut PgConnection, id: i64, actor: &Actor) -> Result<(), Error> {
    sqlx::query(
        "UPDATE directives SET state = 'ISSUED', version = version + 1, issued_by = $2, \
         issued_agency = $3, issued_at = $4, updated_by = $2, updated_agency = $3, updated_at = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Filter of a directive listing.
#[derive(Debug, Default, Clone)]
pub struct DirectiveQuery {
    /// Issuer code.
    pub issuer: Option<String>,
    /// Kind, stored form.
    pub kind: Option<String>,
    /// State, stored form.
    pub state: Option<String>,
    /// Issue dates from.
    pub issued_from: Option<NaiveDate>,
    /// Issue dates until.
    pub issued_until: Option<NaiveDate>,
    /// Directives with an item led or coordinated by this agency.
    pub agency: Option<String>,
    /// Only directives with a key task.
    pub key_tasks_only: bool,
    /// Visibility: only issued directives that involve this agency (agency users).
    pub visible_to_agency: Option<String>,
}

/// One page of directives, newest first, before `before_id`.
pub async fn list(
    conn: &mut PgConnection,
    query: &DirectiveQuery,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<DirectiveRecord>, Error> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM directives d WHERE true"));
    if let Some(issuer) = &query.issuer {
        sql.push(" AND issuer = ").push_bind(issuer.clone());
    }
    if let Some(kind) = &query.kind {
        sql.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(state) = &query.state {
        sql.push(" AND state = ").push_bind(state.clone());
    }
    if let Some(from) = query.issued_from {
        sql.push(" AND issue_date >= ").push_bind(from);
    }
    if let Some(until) = query.issued_until {
        sql.push(" AND issue_date <= ").push_bind(until);
    }
    if let Some(agency) = &query.agency {
        push_involves(&mut sql, agency);
    }
    if query.key_tasks_only {
        sql.push(" AND EXISTS (SELECT 1 FROM directive_items i WHERE i.directive_id = d.id AND i.key_task)");
    }
    if let Some(agency) = &query.visible_to_agency {
        sql.push(" AND state <> 'DRAFT'");
        push_involves_or_issuer(&mut sql, agency);
    }
    if let Some(before) = before_id {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let mut records = sql
        .build_query_as::<DirectiveRecord>()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    let mut by_directive: std::collections::HashMap<i64, Vec<ItemRecord>> = Default::default();
    for item in items_of(conn, &ids).await? {
        by_directive
            .entry(item.directive_id)
            .or_default()
            .push(item);
    }
    for record in &mut records {
        record.items = by_directive.remove(&record.id).unwrap_or_default();
    }
    Ok(records)
}

fn push_involves(sql: &mut QueryBuilder<Postgres>, agency: &str) {
    sql.push(" AND EXISTS (SELECT 1 FROM directive_items i WHERE i.directive_id = d.id AND (")
        .push_bind(agency.to_string())
        .push(" = ANY(i.lead_agencies) OR ")
        .push_bind(agency.to_string())
        .push(" = ANY(i.coordinating_agencies)))");
}

fn push_involves_or_issuer(sql: &mut QueryBuilder<Postgres>, agency: &str) {
    sql.push(" AND (issuer = ")
        .push_bind(agency.to_string())
        .push(" OR EXISTS (SELECT 1 FROM directive_items i WHERE i.directive_id = d.id AND (")
        .push_bind(agency.to_string())
        .push(" = ANY(i.lead_agencies) OR ")
        .push_bind(agency.to_string())
        .push(" = ANY(i.coordinating_agencies))))");
}
