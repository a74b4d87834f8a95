//! `request_id` support: a mutation that carries one stores its answer in the
//! same transaction as its effects; a retry with the same id (from the same
//! principal, to the same method) gets that first answer back and changes
//! nothing.

use sqlx::PgConnection;

/// Identifies one idempotent request.
#[derive(Debug, Clone)]
pub struct RequestKey<'a> {
    /// Full gRPC method, e.g. "/dondoc.directives.v1.DirectiveService/IssueDirective".
    pub method: &'a str,
    /// The caller's subject: two callers' ids never collide.
    pub principal: &'a str,
    /// The caller's request id.
    pub request_id: &'a str,
}

/// Locks the key for this transaction and returns the stored answer, if any.
/// A concurrent duplicate waits here until the first one commits or aborts.
pub async fn recall(
    tx: &mut PgConnection,
    key: &RequestKey<'_>,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0))")
        .bind(key.method)
        .bind(key.principal)
        .bind(key.request_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query_scalar(
        "SELECT response FROM idempotency_keys WHERE method = $1 AND principal = $2 AND request_id = $3",
    )
    .bind(key.method)
    .bind(key.principal)
    .bind(key.request_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Stores the answer to a request in the transaction that made its effects.
pub async fn remember(
    tx: &mut PgConnection,
    key: &RequestKey<'_>,
    response: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_keys (method, principal, request_id, response) VALUES ($1, $2, $3, $4)",
    )
    .bind(key.method)
    .bind(key.principal)
    .bind(key.request_id)
    .bind(response)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
