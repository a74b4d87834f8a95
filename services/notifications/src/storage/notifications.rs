//! Notifications: written once per dedupe key, read as a gap-free log per
//! recipient.

use chrono::{DateTime, NaiveDate, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use dondoc_events::cursor::{Cursor, WINDOW_CONDITION, Window};
use dondoc_events::follow::Page;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::message::Message;
use crate::storage::deadlines::Deadline;

/// The stream name of the notifications log's horizon.
pub const STREAM: &str = "notifications";

/// A notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Never written twice.
    pub dedupe_key: String,
    /// Kind name, e.g. "DUE_SOON".
    pub kind: String,
    /// Agency code.
    pub recipient: String,
    /// Task id.
    pub task_id: Option<i64>,
    /// Directive number.
    pub directive_number: String,
    /// The directive, "directives/{id}", or empty.
    pub directive: String,
    /// Lead agency code.
    pub lead_agency: String,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Key task.
    pub key_task: bool,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// When, by the injected clock.
    pub notified_at: DateTime<Utc>,
}

impl NewNotification {
    /// A notification about a task, to `recipient`, with the task's
    /// directive, lead agency, due date and key flag as projected.
    pub fn about_task(
        task: &Deadline,
        dedupe_key: String,
        kind: &str,
        recipient: &str,
        text: Message,
        notified_at: DateTime<Utc>,
    ) -> NewNotification {
        NewNotification {
            dedupe_key,
            kind: kind.into(),
            recipient: recipient.into(),
            task_id: Some(task.task_id),
            directive_number: task.directive_number.clone(),
            directive: task.directive.clone(),
            lead_agency: task.lead_agencies.first().cloned().unwrap_or_default(),
            due_date: task.due_date,
            key_task: task.key_task,
            title: text.title,
            body: text.body,
            notified_at,
        }
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotification {
    /// Position in the log.
    pub cursor: Cursor,
    /// Row id.
    pub id: i64,
    /// Stable id.
    pub notification_id: Uuid,
    /// Kind name.
    pub kind: String,
    /// Agency code.
    pub recipient: String,
    /// Task id.
    pub task_id: Option<i64>,
    /// Directive number.
    pub directive_number: String,
    /// The directive, "directives/{id}", or empty.
    pub directive: String,
    /// Lead agency code.
    pub lead_agency: String,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Key task.
    pub key_task: bool,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// When.
    pub notified_at: DateTime<Utc>,
    /// Read by the recipient.
    pub read: bool,
}

/// Writes a notification unless its dedupe key was written before, and in
/// the same transaction queues its delivery to every webhook and e-mail
/// subscription that wants it. Returns true when written.
pub async fn insert(conn: &mut PgConnection, n: &NewNotification) -> Result<bool, Error> {
    Ok(insert_many(conn, std::slice::from_ref(n)).await? == 1)
}

/// Writes notifications in one statement, in the order given, skipping
/// those whose dedupe key was written before, and queues the delivery of
/// those written to every webhook and e-mail subscription whose scope and
/// filter select them (first attempt at once; one delivery per
/// subscription and notification). Returns how many were written.
pub async fn insert_many(conn: &mut PgConnection, items: &[NewNotification]) -> Result<u64, Error> {
    if items.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let column = |f: fn(&NewNotification) -> &String| -> Vec<&str> {
        items.iter().map(|n| f(n).as_str()).collect()
    };
    // The deliveries in the same statement: one round trip, and a plan
    // that joins the rows just written (a separate statement took their
    // ids as an array, which PostgreSQL planned anew at every call).
    let written: i64 = sqlx::query_scalar(
        "WITH written AS (INSERT INTO notifications (notification_id, dedupe_key, kind, recipient, task_id, \
           directive_number, directive, lead_agency, due_date, key_task, title, body, notified_at) \
         SELECT notification_id, dedupe_key, kind, recipient, task_id, directive_number, directive, lead_agency, \
           due_date, key_task, title, body, notified_at \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], \
           $8::text[], $9::date[], $10::bool[], $11::text[], $12::text[], $13::timestamptz[]) WITH ORDINALITY \
           AS t(notification_id, dedupe_key, kind, recipient, task_id, directive_number, directive, lead_agency, \
             due_date, key_task, title, body, notified_at, position) \
         ORDER BY position ON CONFLICT (dedupe_key) DO NOTHING \
         RETURNING notification_id, kind, recipient, directive, key_task, notified_at), \
         queued AS (INSERT INTO deliveries (subscription_id, notification_id, next_attempt_at, updated_at) \
           SELECT s.id, n.notification_id, n.notified_at, n.notified_at FROM written n JOIN subscriptions s \
             ON NOT s.deleted AND NOT s.disabled AND s.channel <> 'STREAM' \
           WHERE (s.scope_all OR n.recipient = s.subscriber) \
             AND (cardinality(s.agencies) = 0 OR n.recipient = ANY(s.agencies)) \
             AND (cardinality(s.kinds) = 0 OR n.kind = ANY(s.kinds)) \
             AND (NOT s.key_tasks_only OR n.key_task) \
             AND (s.directive = '' OR n.directive = s.directive) \
           ON CONFLICT (subscription_id, notification_id) DO NOTHING) \
         SELECT count(*) FROM written",
    )
    .bind(&ids)
    .bind(column(|n| &n.dedupe_key))
    .bind(column(|n| &n.kind))
    .bind(column(|n| &n.recipient))
    .bind(items.iter().map(|n| n.task_id).collect::<Vec<_>>())
    .bind(column(|n| &n.directive_number))
    .bind(column(|n| &n.directive))
    .bind(column(|n| &n.lead_agency))
    .bind(items.iter().map(|n| n.due_date).collect::<Vec<_>>())
    .bind(items.iter().map(|n| n.key_task).collect::<Vec<_>>())
    .bind(column(|n| &n.title))
    .bind(column(|n| &n.body))
    .bind(items.iter().map(|n| n.notified_at).collect::<Vec<_>>())
    .fetch_one(conn)
    .await
    .map_err(storage_error)?;
    Ok(written as u64)
}

/// Columns of a stored notification, for other storage modules.
pub const COLUMNS: &str = "tx_id::text AS tx, id, notification_id, kind, recipient, task_id, directive_number, \
    directive, lead_agency, due_date, key_task, title, body, notified_at, read_at IS NOT NULL AS read";

/// A stored notification from a row of [`COLUMNS`].
pub fn from_row(row: &sqlx::postgres::PgRow) -> Result<StoredNotification, sqlx::Error> {
    let tx: String = row.try_get("tx")?;
    let id: i64 = row.try_get("id")?;
    Ok(StoredNotification {
        cursor: Cursor {
            tx: tx.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            id,
        },
        id,
        notification_id: row.try_get("notification_id")?,
        kind: row.try_get("kind")?,
        recipient: row.try_get("recipient")?,
        task_id: row.try_get("task_id")?,
        directive_number: row.try_get("directive_number")?,
        directive: row.try_get("directive")?,
        lead_agency: row.try_get("lead_agency")?,
        due_date: row.try_get("due_date")?,
        key_task: row.try_get("key_task")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        notified_at: row.try_get("notified_at")?,
        read: row.try_get("read")?,
    })
}

/// Which notifications a stream serves.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    /// Recipient agency codes; `None` for every agency.
    pub recipients: Option<Vec<String>>,
    /// Kind names; empty for all.
    pub kinds: Vec<String>,
    /// Key tasks only.
    pub key_tasks_only: bool,
    /// "directives/{id}", or empty for any.
    pub directive: String,
}

impl StreamFilter {
    /// Whether the filter selects `n`: the same rule as the SQL of
    /// [`read_filtered`], for notifications dispatched in memory (a test
    /// checks the two agree).
    pub fn matches(&self, n: &StoredNotification) -> bool {
        self.recipients
            .as_ref()
            .is_none_or(|list| list.contains(&n.recipient))
            && (self.kinds.is_empty() || self.kinds.contains(&n.kind))
            && (!self.key_tasks_only || n.key_task)
            && (self.directive.is_empty() || self.directive == n.directive)
    }

    /// Whether the filter selects every notification of one recipient and
    /// nothing else.
    pub fn selects_everything_for_one_recipient(&self) -> bool {
        self.recipients.as_ref().is_some_and(|list| list.len() == 1)
            && self.kinds.is_empty()
            && !self.key_tasks_only
            && self.directive.is_empty()
    }
}

/// Reads a recipient's notifications after `after`, gap-free.
pub async fn read(
    pool: &PgPool,
    recipient: &str,
    after: Cursor,
    limit: i64,
) -> Result<Page<StoredNotification>, sqlx::Error> {
    let filter = StreamFilter {
        recipients: Some(vec![recipient.to_string()]),
        ..Default::default()
    };
    read_filtered(pool, &filter, after, limit).await
}

/// Reads the notifications a filter selects after `after`, gap-free. A
/// partial page has scanned everything below the window's xmin, so a
/// stream's cursor moves past rows the filter left out.
pub async fn read_filtered(
    pool: &PgPool,
    filter: &StreamFilter,
    after: Cursor,
    limit: i64,
) -> Result<Page<StoredNotification>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let window = Window::open(&mut conn, after).await?;
    let (tx, id, xmin) = window.binds();
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE {WINDOW_CONDITION} \
         AND ($4::text[] IS NULL OR recipient = ANY($4)) \
         AND (cardinality($5::text[]) = 0 OR kind = ANY($5)) \
         AND (NOT $6 OR key_task) AND ($7 = '' OR directive = $7) \
         ORDER BY tx_id, id LIMIT $8"
    ))
    .bind(tx)
    .bind(id)
    .bind(xmin)
    .bind(&filter.recipients)
    .bind(&filter.kinds)
    .bind(filter.key_tasks_only)
    .bind(&filter.directive)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .iter()
        .map(|row| from_row(row).map(|n| (n.cursor, n)))
        .collect::<Result<Vec<_>, _>>()?;
    let full = items.len() as i64 == limit;
    let scanned_to = window.scanned_to(items.last().map(|(c, _)| *c), full);
    Ok(Page {
        items,
        scanned_to,
        full,
    })
}

/// One notification by its id.
pub async fn get(
    conn: &mut PgConnection,
    notification_id: Uuid,
) -> Result<Option<StoredNotification>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE notification_id = $1"
    ))
    .bind(notification_id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)?;
    row.as_ref()
        .map(|r| from_row(r).map_err(storage_error))
        .transpose()
}

/// The inbox: newest first, before `before` (a row id).
pub async fn inbox(
    conn: &mut PgConnection,
    recipient: &str,
    unread_only: bool,
    before: Option<(String, i64)>,
    limit: i64,
) -> Result<Vec<StoredNotification>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient = $1 AND (NOT $2 OR read_at IS NULL) \
         AND ($3::text IS NULL OR (tx_id, id) < ($3::text::xid8, $4)) ORDER BY tx_id DESC, id DESC LIMIT $5"
    ))
    .bind(recipient)
    .bind(unread_only)
    .bind(before.as_ref().map(|b| b.0.clone()))
    .bind(before.as_ref().map(|b| b.1).unwrap_or(0))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(storage_error)?;
    rows.iter()
        .map(|r| from_row(r).map_err(storage_error))
        .collect()
}

/// Marks notifications of `recipient` read; returns how many changed.
pub async fn mark_read(
    conn: &mut PgConnection,
    recipient: Option<&str>,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = $3 WHERE notification_id = ANY($1) AND read_at IS NULL \
         AND ($2::text IS NULL OR recipient = $2)",
    )
    .bind(ids)
    .bind(recipient)
    .bind(at)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected())
}
