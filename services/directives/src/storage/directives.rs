//! Directive documents and their items.

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::{is_unique_violation, storage_error};
use dondoc_errors::Error;
use dondoc_server::convert::recurrence_to_text;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Actor;
use crate::domain::directive::{AmendmentChange, Draft, DraftItem};
use crate::domain::text::search_words;

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
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Their agency.
    pub revoked_agency: Option<String>,
    /// When.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why.
    pub revoke_reason: Option<String>,
    /// Items, in document order.
    #[sqlx(skip)]
    pub items: Vec<ItemRecord>,
    /// Links, in the order given.
    #[sqlx(skip)]
    pub links: Vec<LinkRecord>,
    /// Amendments, in the order given.
    #[sqlx(skip)]
    pub amendments: Vec<AmendmentRecord>,
}

/// A link as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRecord {
    /// The linking directive.
    pub directive_id: i64,
    /// Kind (stored form).
    pub kind: String,
    /// Target id.
    pub target_id: i64,
}

/// An amendment as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AmendmentRecord {
    /// The amending directive.
    pub directive_id: i64,
    /// Position.
    pub position: i32,
    /// ADD, CHANGE or CANCEL.
    pub kind: String,
    /// Target directive.
    pub target_id: i64,
    /// Target item (change, cancel).
    pub target_item_id: Option<i64>,
    /// Fields a change sets.
    pub mask: Vec<String>,
    /// Reference (add).
    pub reference: String,
    /// Text.
    pub text: String,
    /// Leads.
    pub lead_agencies: Vec<String>,
    /// Coordinators.
    pub coordinating_agencies: Vec<String>,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Recurrence (stored form).
    pub recurrence: Option<String>,
    /// Deadline phrase.
    pub deadline_text: String,
    /// Key task.
    pub key_task: bool,
    /// Why (cancel).
    pub reason: String,
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
    created_agency, created_at, updated_by, updated_agency, updated_at, issued_by, issued_agency, issued_at, \
    revoked_by, revoked_agency, revoked_at, revoke_reason";

fn number_taken(draft: &Draft) -> Error {
    Error::invalid(
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
                .unwrap_or_else(|| "an undated draft".into())
        ),
    )
}

/// Inserts a draft with its items, links and amendments; returns its id.
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
            return Err(number_taken(draft));
        }
        Err(e) => return Err(storage_error(e)),
    };
    write_children(conn, id, draft).await?;
    refresh_search(conn, id).await?;
    Ok(id)
}

/// Replaces every field of a draft (items, links and amendments included)
/// and bumps its version.
pub async fn replace_draft(
    conn: &mut PgConnection,
    id: i64,
    draft: &Draft,
    actor: &Actor,
) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE directives SET kind = $2, number = $3, issue_year = $4, issuer = $5, signer_name = $6, \
         signer_title = $7, signer_capacities = $8, place = $9, issue_date = $10, subject = $11, body = $12, \
         recipients = $13, meeting_date = $14, meeting_chair = $15, updated_by = $16, updated_agency = $17, \
         updated_at = $18, version = version + 1 WHERE id = $1",
    )
    .bind(id)
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
    .execute(&mut *conn)
    .await;
    match updated {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e, "directives_number_unique") => {
            return Err(number_taken(draft));
        }
        Err(e) => return Err(storage_error(e)),
    }
    for table in ["directive_amendments", "directive_links", "directive_items"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE directive_id = $1"))
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(storage_error)?;
    }
    write_children(conn, id, draft).await?;
    refresh_search(conn, id).await
}

fn codes(list: &[crate::domain::agency::AgencyCode]) -> Vec<&str> {
    list.iter().map(|c| c.as_str()).collect()
}

/// Appends an item at the end of a directive; returns its id.
pub async fn insert_item(
    conn: &mut PgConnection,
    directive_id: i64,
    position: Option<i32>,
    item: &DraftItem,
) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>(
        "INSERT INTO directive_items (directive_id, position, reference, text, lead_agencies, \
         coordinating_agencies, due_date, recurrence, deadline_text, key_task) \
         VALUES ($1, COALESCE($2, (SELECT COALESCE(MAX(position) + 1, 0) FROM directive_items WHERE directive_id = $1)), \
         $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(directive_id)
    .bind(position)
    .bind(&item.reference)
    .bind(&item.text)
    .bind(codes(&item.lead))
    .bind(codes(&item.coordinating))
    .bind(item.due)
    .bind(item.recurrence.map(recurrence_to_text))
    .bind(&item.deadline_text)
    .bind(item.key_task)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// Writes new values of an item (an amendment's change).
pub async fn update_item(
    conn: &mut PgConnection,
    item_id: i64,
    item: &DraftItem,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE directive_items SET text = $2, lead_agencies = $3, coordinating_agencies = $4, \
         due_date = $5, recurrence = $6, deadline_text = $7, key_task = $8 WHERE id = $1",
    )
    .bind(item_id)
    .bind(&item.text)
    .bind(codes(&item.lead))
    .bind(codes(&item.coordinating))
    .bind(item.due)
    .bind(item.recurrence.map(recurrence_to_text))
    .bind(&item.deadline_text)
    .bind(item.key_task)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Marks an item cancelled.
pub async fn cancel_item(conn: &mut PgConnection, item_id: i64) -> Result<(), Error> {
    sqlx::query("UPDATE directive_items SET state = 'CANCELLED' WHERE id = $1")
        .bind(item_id)
        .execute(conn)
        .await
        .map_err(storage_error)?;
    Ok(())
}

/// Refreshes a directive's search vector (after a state change).
pub async fn touch_search(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    refresh_search(conn, id).await
}

/// Records a change made to a directive by someone (version and stamp).
pub async fn touch(conn: &mut PgConnection, id: i64, actor: &Actor) -> Result<(), Error> {
    sqlx::query(
        "UPDATE directives SET version = version + 1, updated_by = $2, updated_agency = $3, \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .execute(&mut *conn)
    .await
    .map_err(storage_error)?;
    refresh_search(conn, id).await
}

async fn write_children(conn: &mut PgConnection, id: i64, draft: &Draft) -> Result<(), Error> {
    for (position, item) in draft.items.iter().enumerate() {
        insert_item(conn, id, Some(position as i32), item).await?;
    }
    for (position, link) in draft.links.iter().enumerate() {
        sqlx::query(
            "INSERT INTO directive_links (directive_id, kind, target_id, position) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(link.kind.as_str())
        .bind(link.target)
        .bind(position as i32)
        .execute(&mut *conn)
        .await
        .map_err(storage_error)?;
    }
    for (position, amendment) in draft.amendments.iter().enumerate() {
        let empty = DraftItem {
            reference: String::new(),
            text: String::new(),
            lead: Vec::new(),
            coordinating: Vec::new(),
            due: None,
            recurrence: None,
            deadline_text: String::new(),
            key_task: false,
        };
        let (values, mask, reason): (DraftItem, Vec<&str>, &str) = match &amendment.change {
            AmendmentChange::Add(item) => (item.clone(), Vec::new(), ""),
            AmendmentChange::Change(patch) => (
                DraftItem {
                    text: patch.text.clone().unwrap_or_default(),
                    lead: patch.lead.clone().unwrap_or_default(),
                    coordinating: patch.coordinating.clone().unwrap_or_default(),
                    due: patch.due.flatten(),
                    recurrence: patch.recurrence.flatten(),
                    deadline_text: patch.deadline_text.clone().unwrap_or_default(),
                    key_task: patch.key_task.unwrap_or(false),
                    ..empty
                },
                patch.mask(),
                "",
            ),
            AmendmentChange::Cancel { reason } => (empty, Vec::new(), reason.as_str()),
        };
        sqlx::query(
            "INSERT INTO directive_amendments (directive_id, position, kind, target_id, target_item_id, \
             mask, reference, text, lead_agencies, coordinating_agencies, due_date, recurrence, \
             deadline_text, key_task, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(id)
        .bind(position as i32)
        .bind(amendment.kind())
        .bind(amendment.directive)
        .bind(amendment.item)
        .bind(&mask)
        .bind(&values.reference)
        .bind(&values.text)
        .bind(codes(&values.lead))
        .bind(codes(&values.coordinating))
        .bind(values.due)
        .bind(values.recurrence.map(recurrence_to_text))
        .bind(&values.deadline_text)
        .bind(values.key_task)
        .bind(reason)
        .execute(&mut *conn)
        .await
        .map_err(storage_error)?;
    }
    Ok(())
}

/// Recomputes a directive's full-text vector from its subject (weight A),
/// its items (B) and its body (C), folded without diacritics.
pub async fn refresh_search(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT subject, body FROM directives WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(storage_error)?;
    let Some((subject, body)) = row else {
        return Ok(());
    };
    let items: Vec<(String, String)> = sqlx::query_as(
        "SELECT reference, text FROM directive_items WHERE directive_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?;
    let items_text = items
        .iter()
        .map(|(r, t)| format!("{r} {t}"))
        .collect::<Vec<_>>()
        .join(" ");
    sqlx::query(
        "UPDATE directives SET search_vector = \
         setweight(to_tsvector('simple', $2), 'A') || setweight(to_tsvector('simple', $3), 'B') \
         || setweight(to_tsvector('simple', $4), 'C') WHERE id = $1",
    )
    .bind(id)
    .bind(search_words(&subject))
    .bind(search_words(&items_text))
    .bind(search_words(&body))
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Computes the search vector of directives written before there was one
/// (at start, after migration 0101). Returns how many were refreshed.
pub async fn refresh_all_search(conn: &mut PgConnection) -> Result<u64, Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM directives WHERE search_vector = ''::tsvector ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?;
    for id in &ids {
        refresh_search(conn, *id).await?;
    }
    Ok(ids.len() as u64)
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
    let Some(record) = record else {
        return Ok(None);
    };
    let mut records = vec![record];
    attach_children(conn, &mut records).await?;
    Ok(records.pop())
}

async fn attach_children(
    conn: &mut PgConnection,
    records: &mut [DirectiveRecord],
) -> Result<(), Error> {
    use std::collections::HashMap;
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    let mut items: HashMap<i64, Vec<ItemRecord>> = HashMap::new();
    for item in items_of(conn, &ids).await? {
        items.entry(item.directive_id).or_default().push(item);
    }
    let mut links: HashMap<i64, Vec<LinkRecord>> = HashMap::new();
    for link in sqlx::query_as::<_, LinkRecord>(
        "SELECT directive_id, kind, target_id FROM directive_links WHERE directive_id = ANY($1) \
         ORDER BY directive_id, position, target_id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?
    {
        links.entry(link.directive_id).or_default().push(link);
    }
    let mut amendments: HashMap<i64, Vec<AmendmentRecord>> = HashMap::new();
    for amendment in sqlx::query_as::<_, AmendmentRecord>(
        "SELECT directive_id, position, kind, target_id, target_item_id, mask, reference, text, \
         lead_agencies, coordinating_agencies, due_date, recurrence, deadline_text, key_task, reason \
         FROM directive_amendments WHERE directive_id = ANY($1) ORDER BY directive_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?
    {
        amendments
            .entry(amendment.directive_id)
            .or_default()
            .push(amendment);
    }
    for record in records {
        record.items = items.remove(&record.id).unwrap_or_default();
        record.links = links.remove(&record.id).unwrap_or_default();
        record.amendments = amendments.remove(&record.id).unwrap_or_default();
    }
    Ok(())
}

/// What an amendment or link needs to know of its target directives.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TargetRecord {
    /// Id.
    pub id: i64,
    /// State (stored form).
    pub state: String,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
}

/// The directives among `ids` that exist.
pub async fn targets(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<TargetRecord>, Error> {
    sqlx::query_as::<_, TargetRecord>(
        "SELECT id, state, issue_date FROM directives WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// The items among `ids` that exist.
pub async fn items_by_id(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<ItemRecord>, Error> {
    sqlx::query_as::<_, ItemRecord>(
        "SELECT id, directive_id, position, reference, text, lead_agencies, coordinating_agencies, \
         due_date, recurrence, deadline_text, key_task, state FROM directive_items WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Locks directives (in id order, so that concurrent amendments never deadlock).
pub async fn lock(conn: &mut PgConnection, ids: &[i64]) -> Result<(), Error> {
    sqlx::query("SELECT id FROM directives WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(ids)
        .fetch_all(conn)
        .await
        .map_err(storage_error)?;
    Ok(())
}

/// Marks an issued directive revoked.
pub async fn mark_revoked(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    actor: &Actor,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE directives SET state = 'REVOKED', version = version + 1, revoked_by = $2, \
         revoked_agency = $3, revoked_at = $4, revoke_reason = $5, updated_by = $2, \
         updated_agency = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(&actor.subject)
    .bind(&actor.agency)
    .bind(actor.at)
    .bind(reason)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The directive.
    pub record: DirectiveRecord,
    /// `ts_rank`.
    pub rank: f32,
}

/// Full-text search: directives whose folded words contain every word of
/// `words` (already folded), best rank first, then newest; keyset after
/// `(rank, id)`. `visible_to_agency` limits an agency user to the issued
/// or revoked directives its agency issued, leads or coordinates.
pub async fn search(
    conn: &mut PgConnection,
    words: &str,
    visible_to_agency: Option<&str>,
    after: Option<(f32, i64)>,
    limit: i64,
) -> Result<Vec<SearchHit>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT * FROM (SELECT d.id, ts_rank(d.search_vector, q) AS rank FROM directives d, \
         plainto_tsquery('simple', ",
    );
    sql.push_bind(words.to_string())
        .push(") q WHERE d.search_vector @@ q");
    if let Some(agency) = visible_to_agency {
        sql.push(" AND d.state <> 'DRAFT'");
        push_involves_or_issuer(&mut sql, agency);
    }
    sql.push(") hits WHERE true");
    if let Some((rank, id)) = after {
        sql.push(" AND (rank < ")
            .push_bind(rank)
            .push(" OR (rank = ")
            .push_bind(rank)
            .push(" AND id < ")
            .push_bind(id)
            .push("))");
    }
    sql.push(" ORDER BY rank DESC, id DESC LIMIT ")
        .push_bind(limit);
    let hits: Vec<(i64, f32)> = sql
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(storage_error)?;
    let ids: Vec<i64> = hits.iter().map(|(id, _)| *id).collect();
    let mut records = sqlx::query_as::<_, DirectiveRecord>(&format!(
        "SELECT {COLUMNS} FROM directives WHERE id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(storage_error)?;
    attach_children(conn, &mut records).await?;
    let mut by_id: std::collections::HashMap<i64, DirectiveRecord> =
        records.into_iter().map(|r| (r.id, r)).collect();
    Ok(hits
        .into_iter()
        .filter_map(|(id, rank)| by_id.remove(&id).map(|record| SearchHit { record, rank }))
        .collect())
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
    attach_children(conn, &mut records).await?;
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
