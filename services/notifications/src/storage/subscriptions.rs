//! Saved subscriptions: a subscriber, a filter and a channel, with the
//! health of webhook endpoints.

use chrono::{DateTime, Utc};
use dondoc_database::storage_error;
use dondoc_errors::Error;
use sqlx::PgConnection;

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredSubscription {
    /// Id.
    pub id: i64,
    /// Subscribing agency code.
    pub subscriber: String,
    /// Created by a principal that reads every agency.
    pub scope_all: bool,
    /// Filter: recipient agency codes.
    pub agencies: Vec<String>,
    /// Filter: kind names.
    pub kinds: Vec<String>,
    /// Filter: key tasks only.
    pub key_tasks_only: bool,
    /// Filter: "directives/{id}".
    pub directive: String,
    /// "STREAM", "WEBHOOK" or "EMAIL".
    pub channel: String,
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// Current webhook secret.
    pub secret: Option<String>,
    /// The secret before the last rotation.
    pub previous_secret: Option<String>,
    /// Until when the previous secret still signs.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// E-mail addresses.
    pub email_addresses: Vec<String>,
    /// Disabled after failing.
    pub disabled: bool,
    /// Why.
    pub disabled_reason: String,
    /// First failure of the current run of failures.
    pub failing_since: Option<DateTime<Utc>>,
    /// Dead letters in a row.
    pub consecutive_dead_letters: i32,
    /// Creator subject.
    pub created_by: String,
    /// Creator agency.
    pub created_agency: Option<String>,
    /// Creation time (injected clock).
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, subscriber, scope_all, agencies, kinds, key_tasks_only, directive, channel, webhook_url, \
    secret, previous_secret, previous_valid_until, email_addresses, disabled, disabled_reason, failing_since, \
    consecutive_dead_letters, created_by, created_agency, created_at";

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// Subscribing agency code.
    pub subscriber: String,
    /// Reads every agency.
    pub scope_all: bool,
    /// Filter.
    pub agencies: Vec<String>,
    /// Filter.
    pub kinds: Vec<String>,
    /// Filter.
    pub key_tasks_only: bool,
    /// Filter.
    pub directive: String,
    /// Channel.
    pub channel: &'static str,
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// Webhook secret.
    pub secret: Option<String>,
    /// E-mail addresses.
    pub email_addresses: Vec<String>,
    /// Creator.
    pub created_by: String,
    /// Creator agency.
    pub created_agency: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Creates a subscription.
pub async fn create(
    conn: &mut PgConnection,
    s: &NewSubscription,
) -> Result<StoredSubscription, Error> {
    sqlx::query_as::<_, StoredSubscription>(&format!(
        "INSERT INTO subscriptions (subscriber, scope_all, agencies, kinds, key_tasks_only, directive, channel, \
         webhook_url, secret, email_addresses, created_by, created_agency, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
    ))
    .bind(&s.subscriber)
    .bind(s.scope_all)
    .bind(&s.agencies)
    .bind(&s.kinds)
    .bind(s.key_tasks_only)
    .bind(&s.directive)
    .bind(s.channel)
    .bind(&s.webhook_url)
    .bind(&s.secret)
    .bind(&s.email_addresses)
    .bind(&s.created_by)
    .bind(&s.created_agency)
    .bind(s.created_at)
    .fetch_one(conn)
    .await
    .map_err(storage_error)
}

/// One subscription, unless deleted.
pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<StoredSubscription>, Error> {
    sqlx::query_as::<_, StoredSubscription>(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = $1 AND NOT deleted"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// One subscription, locked, unless deleted.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Option<StoredSubscription>, Error> {
    sqlx::query_as::<_, StoredSubscription>(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = $1 AND NOT deleted FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Subscriptions of `subscriber` (every one when `None`) after id `after`.
pub async fn list(
    conn: &mut PgConnection,
    subscriber: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredSubscription>, Error> {
    sqlx::query_as::<_, StoredSubscription>(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE NOT deleted AND ($1::text IS NULL OR subscriber = $1) \
         AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(subscriber)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(storage_error)
}

/// Deletes a subscription; its pending deliveries end as dead letters.
pub async fn delete(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
    let deleted =
        sqlx::query("UPDATE subscriptions SET deleted = true WHERE id = $1 AND NOT deleted")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(storage_error)?
            .rows_affected();
    if deleted == 1 {
        super::deliveries::dead_letter_pending(conn, id, "subscription deleted", now).await?;
    }
    Ok(deleted == 1)
}

/// Rotates the webhook secret: the current one becomes the previous one,
/// valid until `previous_valid_until`.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    id: i64,
    secret: &str,
    previous_valid_until: DateTime<Utc>,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE subscriptions SET previous_secret = secret, secret = $2, previous_valid_until = $3 \
         WHERE id = $1 AND NOT deleted AND channel = 'WEBHOOK'",
    )
    .bind(id)
    .bind(secret)
    .bind(previous_valid_until)
    .execute(conn)
    .await
    .map_err(storage_error)?
    .rows_affected()
        == 1)
}

/// Records a successful delivery: the endpoint is healthy.
pub async fn record_success(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE subscriptions SET failing_since = NULL, consecutive_dead_letters = 0 \
         WHERE id = $1 AND (failing_since IS NOT NULL OR consecutive_dead_letters <> 0)",
    )
    .bind(id)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}

/// Records a failed attempt (and a dead letter, when it was the last);
/// returns the subscription as it is now.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: i64,
    dead_letter: bool,
    now: DateTime<Utc>,
) -> Result<Option<StoredSubscription>, Error> {
    sqlx::query_as::<_, StoredSubscription>(&format!(
        "UPDATE subscriptions SET failing_since = COALESCE(failing_since, $2), \
         consecutive_dead_letters = consecutive_dead_letters + CASE WHEN $3 THEN 1 ELSE 0 END \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(now)
    .bind(dead_letter)
    .fetch_optional(conn)
    .await
    .map_err(storage_error)
}

/// Disables an endpoint; false when it already was. Its pending deliveries
/// end as dead letters (replay re-enables it).
pub async fn disable(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let changed = sqlx::query(
        "UPDATE subscriptions SET disabled = true, disabled_reason = $2 WHERE id = $1 AND NOT disabled",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *conn)
    .await
    .map_err(storage_error)?
    .rows_affected();
    if changed == 1 {
        super::deliveries::dead_letter_pending(
            conn,
            id,
            &format!("endpoint disabled: {reason}"),
            now,
        )
        .await?;
    }
    Ok(changed == 1)
}

/// Enables an endpoint again and forgets its failures.
pub async fn enable(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE subscriptions SET disabled = false, disabled_reason = '', failing_since = NULL, \
         consecutive_dead_letters = 0 WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await
    .map_err(storage_error)?;
    Ok(())
}
